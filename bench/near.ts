/**
 * The near cache (DESIGN.md §7): near hits of a Redis-backed job against memory-store hits,
 * node-redis 6's own client-side cache (RESP3) and sequential raw `GET`s; and the coherence
 * lag from process A's `Job.set` resolving to process B reading the new value.
 */
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { Effect, Layer, Option } from "effect"
import { Redis } from "ioredis"
import { createClient } from "redis"
import { CacheStore, Job, RefreshQueue } from "effect-cacheback"
import { RedisCacheStore } from "effect-cacheback/redis"
import { compare, floorRow, record } from "./harness.js"
import { versions } from "./near-reader.js"

const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"
const prefix = `bench-near:${process.pid}`
const keys = Array.from({ length: 1_000 }, (_, i) => `user:${i}`)
const profile = (key: string) => ({ key, name: `name of ${key}`, followers: key.length * 37, tags: ["a", "b"] })
const job = Job.make({ name: "bench.near", fetch: (key: string) => Effect.succeed(profile(key)) })
const redisKey = (key: string) => `${prefix}:${Option.getOrThrow(Option.getRight(job.key(key)))}`

const ratioRow = (what: string, ours: number, baseline: number, target: number) =>
  floorRow("near", what, ours, baseline, target)

const nearLayer = Layer.merge(
  RedisCacheStore.layer({ url, prefix, nearCache: { capacity: 10_000 } }),
  RefreshQueue.layerMemory({ concurrency: 1 })
)
const memoryLayer = Layer.merge(CacheStore.layerMemory({ capacity: 10_000 }), RefreshQueue.layerMemory({ concurrency: 1 }))

/** `passes` reads of every key, in one Effect program, as the memory bench reads. */
const loop = (passes: number) =>
  Effect.gen(function*() {
    for (let pass = 0; pass < passes; pass++) yield* Effect.forEach(keys, (key) => Job.get(job, key), { discard: true })
  })

const hits = Effect.gen(function*() {
  const nearContext = yield* Layer.build(nearLayer)
  const memoryContext = yield* Layer.build(memoryLayer)
  const viaNear = <A, E>(effect: Effect.Effect<A, E, CacheStore.CacheStore | RefreshQueue.RefreshQueue>) =>
    Effect.provide(effect, nearContext)
  yield* viaNear(Effect.forEach(keys, (key) => Job.set(job, key, profile(key)), { discard: true }))
  yield* Effect.sleep("300 millis") // tracking confirmed
  // Fill both: the first read of a key goes to Redis (or fetches, in memory).
  yield* viaNear(loop(1))
  yield* Effect.provide(loop(1), memoryContext)

  const passes = 200
  const memory = yield* compare({ ops: passes * keys.length, ours: viaNear(loop(passes)), baseline: Effect.provide(loop(passes), memoryContext) })
  ratioRow("near hit vs memory-store hit: Job.get, one program, 1,000 keys", memory.ours, memory.baseline, 0.8)

  const client = createClient({ url, RESP: 3, clientSideCache: { ttl: 0, maxEntries: 10_000, evictPolicy: "LRU" } })
  yield* Effect.acquireRelease(Effect.promise(() => client.connect()), () => Effect.promise(() => client.quit()))
  const nodeRedis = (rounds: number) =>
    Effect.promise(async () => {
      for (let round = 0; round < rounds; round++) for (const key of keys) await client.get(redisKey(key))
    })
  yield* nodeRedis(1)
  const csc = yield* compare({ ops: 20 * keys.length, ours: viaNear(loop(20)), baseline: nodeRedis(20) })
  ratioRow("near hit vs node-redis 6 client-side cache hit (RESP3, await client.get, no JSON.parse)", csc.ours, csc.baseline, 2)

  // The baseline reads the same JSON as a user of plain ioredis would store it (no header).
  const raw = yield* Effect.acquireRelease(Effect.sync(() => new Redis(url)), (client) => Effect.promise(() => client.quit()))
  const plainKey = (key: string) => `${prefix}:plain:${key}`
  yield* Effect.promise(() => Promise.all(keys.map((key) => raw.get(redisKey(key)).then((text) => raw.set(plainKey(key), text!.slice(text!.indexOf("|", 3) + 1))))))
  const sequential = (passes: number) =>
    Effect.promise(async () => {
      for (let pass = 0; pass < passes; pass++) for (const key of keys) JSON.parse((await raw.get(plainKey(key)))!)
    })
  // 20,000 reads a round: near hits of one pass take about a millisecond, too short to time.
  const get = yield* compare({ ops: 20 * keys.length, ours: viaNear(loop(20)), baseline: sequential(20) })
  ratioRow("near hit vs sequential raw GET + JSON.parse", get.ours, get.baseline, 50)
})

/** From A's `Job.set` resolving to B (another process) reading the new value. */
const lag = Effect.gen(function*() {
  const reader = spawn(process.execPath, ["--import", "tsx", fileURLToPath(new URL("./near-reader.ts", import.meta.url))], {
    env: { ...process.env, REDIS_URL: url, CACHEBACK_PREFIX: prefix, CACHEBACK_BENCH_READER: "1" },
    stdio: ["ignore", "inherit", "inherit", "ipc"]
  })
  yield* Effect.addFinalizer(() => Effect.sync(() => reader.connected && reader.disconnect()))
  const seen: Array<{ n: number; at: number }> = []
  yield* Effect.async<void>((resume) => {
    reader.on("message", (message: { type: string; n: number; at: number }) => {
      if (message.type === "ready") resume(Effect.void)
      else seen.push(message)
    })
  })
  const writes = 1_000
  const written: Array<number> = []
  yield* Effect.provide(
    Effect.gen(function*() {
      for (let n = 1; n <= writes; n++) {
        yield* Job.set(versions, "lag", { n })
        written[n] = performance.timeOrigin + performance.now()
        yield* Effect.sleep(`${2 + Math.floor(Math.random() * 4)} millis`)
      }
      while (seen.at(-1)?.n !== writes) yield* Effect.sleep("10 millis")
    }).pipe(Effect.timeout("60 seconds")),
    Layer.merge(RedisCacheStore.layer({ url, prefix }), RefreshQueue.layerMemory({ concurrency: 1 }))
  )
  const lags: Array<number> = []
  let i = 0
  for (let n = 1; n <= writes; n++) {
    while (i < seen.length && seen[i]!.n < n) i++
    lags.push(i < seen.length ? seen[i]!.at - written[n]! : Number.POSITIVE_INFINITY)
  }
  lags.sort((a, b) => a - b)
  const at = (q: number) => lags[Math.min(lags.length - 1, Math.floor(lags.length * q))]!
  record({
    section: "near",
    what: "coherence lag: A's Job.set resolved → B (another process, near cache) reads the new value, 1,000 writes 2–5 ms apart",
    ours: `p50 ${at(0.5).toFixed(2)} ms, p99 ${at(0.99).toFixed(2)} ms, max ${lags.at(-1)!.toFixed(2)} ms`,
    baseline: "—",
    ratio: "—",
    target: "p99 ≤ 5 ms",
    met: at(0.99) <= 5
  })
})

export const near = Effect.gen(function*() {
  yield* hits
  yield* lag
  const cleanup = yield* Effect.acquireRelease(Effect.sync(() => new Redis(url)), (client) => Effect.promise(() => client.quit()))
  const found = yield* Effect.promise(() => cleanup.keys(`${prefix}:*`))
  if (found.length > 0) yield* Effect.promise(() => cleanup.del(...found))
}).pipe(Effect.scoped)
