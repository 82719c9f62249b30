/**
 * The near cache (DESIGN.md §7): entries kept in process memory in front of
 * Redis, coherent through Redis's client-side caching. Process A is this test process,
 * writing through a store without a near cache; process B is a reader process with one.
 * Redis is a private `redis-server` of the suite, so that it may kill connections, flush,
 * and count the commands B sends.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { Effect, Layer, Metric } from "effect"
import { type CacheStore, Job, RefreshQueue } from "effect-cacheback"
import { RedisCacheStore } from "effect-cacheback/redis"
import { Redis } from "ioredis"
import { captureLogs } from "../support/kit.js"
import { requireService } from "../support/services.js"
import { type PrivateRedis, startPrivateRedis } from "./fixtures/private-redis.js"
import { eventually, unique } from "./fixtures/redis.js"
import { version } from "./fixtures/store-jobs.js"
import { endStoreHost, spawnStoreHost, type StoreHost } from "./fixtures/store-hosts.js"

const up = await requireService("redis")

/** The value of `cacheback_near_cache_on{store=prefix}`, from the metric registry. */
const nearGauge = (prefix: string) =>
  Effect.map(Metric.snapshot, (pairs) => {
    const pair = pairs.find((pair) =>
      pair.metricKey.name === "cacheback_near_cache_on" && pair.metricKey.tags.some((tag) => tag.key === "store" && tag.value === prefix)
    )
    return pair === undefined ? undefined : (pair.metricState as unknown as { readonly value: number }).value
  })

describe.skipIf(!up)("near cache", () => {
  let redis: PrivateRedis
  let reader: StoreHost

  beforeAll(async () => {
    ;[redis, reader] = await Promise.all([startPrivateRedis(), spawnStoreHost("reader")])
  }, 60_000)
  afterAll(async () => {
    await endStoreHost(reader)
    await redis.stop()
  }, 30_000)
  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => console.log(`--- output of the reader ---\n${reader.output.join("")}`))
  })

  /** A store for this process (A) on the suite's Redis. */
  const writer = (prefix: string, near?: { capacity: number; maxBytes?: number }) =>
    Layer.merge(
      RedisCacheStore.layer({ url: redis.url, prefix, ...(near === undefined ? {} : { nearCache: near }) }),
      RefreshQueue.layerMemory({ concurrency: 1 })
    )
  const run = <A, E>(effect: Effect.Effect<A, E, CacheStore.CacheStore | RefreshQueue.RefreshQueue>, layer: Layer.Layer<CacheStore.CacheStore | RefreshQueue.RefreshQueue>) =>
    Effect.runPromise(Effect.provide(effect, layer))

  /**
   * A writes versions 1..count of `input` one after another while B reads it in a loop, and
   * `during(v)` runs after write `v`. Answers when each write resolved in A.
   */
  const writeVersions = (
    prefix: string,
    input: string,
    count: number,
    during: (n: number) => Promise<void> = async () => {}
  ) =>
    run(Effect.gen(function*() {
      const written: Array<number> = []
      for (let n = 1; n <= count; n++) {
        yield* Job.set(version, input, { n })
        written[n] = performance.timeOrigin + performance.now()
        yield* Effect.promise(() => during(n))
      }
      return written
    }), writer(prefix))

  /** For each write: how long after it resolved B first read it or a newer version. */
  const lags = (written: ReadonlyArray<number>, seen: ReadonlyArray<{ version: number; at: number }>) => {
    const out: Array<number> = []
    let i = 0
    for (let n = 1; n < written.length; n++) {
      while (i < seen.length && seen[i]!.version < n) i++
      out.push(i < seen.length ? seen[i]!.at - written[n]! : Number.POSITIVE_INFINITY)
    }
    return out
  }

  it("a client of the user's made with protocol: 3 (RESP3) still gets invalidations: its near tier serves, then sees a write", async () => {
    const prefix = unique("near-resp3")
    // ioredis 6's option; ioredis 5 has no RESP3 and ignores it (typed boundary: its types lack it).
    const client = new Redis(redis.url, { protocol: 3 } as never)
    try {
      await run(Job.set(version, "x", { n: 1 }), writer(prefix))
      const reads = async () => (await redis.calls("get")) + (await redis.calls("mget"))
      await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const context = yield* Layer.build(Layer.merge(
          RedisCacheStore.layer({ client, prefix, nearCache: { capacity: 100 } }),
          RefreshQueue.layerMemory({ concurrency: 1 })
        ))
        const read = () => Effect.runPromise(Effect.provide(Job.get(version, "x"), context))
        // The near tier is up once 50 reads send nothing to Redis.
        yield* Effect.promise(() =>
          eventually("the near tier serves", 10_000, async () => {
            const before = await reads()
            for (let i = 0; i < 50; i++) expect(await read()).toEqual({ n: 1 })
            return (await reads()) === before ? true : undefined
          }))
        yield* Effect.promise(() => run(Job.set(version, "x", { n: 2 }), writer(prefix)))
        yield* Effect.promise(() => eventually("the write's invalidation reaches it", 2_000, async () => ((await read()).n === 2 ? true : undefined)))
      })))
    } finally {
      client.disconnect()
    }
  })

  it("a server that refuses CLIENT TRACKING: reads stay right, a warning names the cause and the fix, the gauge says off, sentinel writes back off", async () => {
    const prefix = unique("near-refused")
    // A server of its own: its default user may not turn tracking on.
    const refusing = await startPrivateRedis()
    try {
      await refusing.admin.call("ACL", "SETUSER", "default", "-client|tracking")
      const logs = captureLogs()
      const layer = Layer.merge(
        RedisCacheStore.layer({ url: refusing.url, prefix, nearCache: { capacity: 100 } }).pipe(Layer.provide(logs.layer)),
        RefreshQueue.layerMemory({ concurrency: 1 })
      )
      await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const context = yield* Layer.build(layer)
        const set = (n: number) => Effect.runPromise(Effect.provide(Job.set(version, "x", { n }), context))
        const read = () => Effect.runPromise(Effect.provide(Job.get(version, "x"), context))
        const before = yield* Effect.promise(() => refusing.calls("set"))
        for (let n = 1; n <= 20; n++) {
          yield* Effect.promise(() => set(n))
          expect(yield* Effect.promise(read)).toEqual({ n })
          yield* Effect.sleep("150 millis")
        }
        // 3 s of attempts: 200, 400, 800, 1600 ms apart, never a sentinel each 200 ms.
        const attempts = (yield* Effect.promise(() => refusing.calls("set"))) - before - 20
        expect(attempts).toBeLessThanOrEqual(5)
        const warnings = logs.lines.filter((line) => line.startsWith("WARN") && line.includes("near cache"))
        expect(warnings).toHaveLength(1)
        expect(warnings[0]).toMatch(/is off \(reads go to Redis\): tracking could not be confirmed after 3 attempts .*NOPERM.*CLIENT TRACKING/)
        expect(yield* nearGauge(prefix)).toBe(0)
      })))
    } finally {
      await refusing.stop()
    }
  })

  it("the gauge of near tiers says on while the near cache answers", async () => {
    const prefix = unique("near-gauge")
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const context = yield* Layer.build(Layer.merge(
        RedisCacheStore.layer({ url: redis.url, prefix, nearCache: { capacity: 100 } }),
        RefreshQueue.layerMemory({ concurrency: 1 })
      ))
      yield* Effect.provide(Job.set(version, "g", { n: 1 }), context)
      yield* Effect.promise(() => eventually("the gauge says on", 5_000, () => Effect.runPromise(Effect.map(nearGauge(prefix), (on) => on === 1 || undefined))))
    })))
  })

  it("over 10,000 interleaved writes and reads, B sees every write within 1 s and never an older version after a newer one", async () => {
    const prefix = unique("near-order")
    await reader.open({ url: redis.url, prefix, near: { capacity: 1_000 } })
    const input = "order"
    // Stored before B reads: B never fetches (its fetch is another writer, of version 0).
    await run(Job.set(version, input, { n: 0 }), writer(prefix))
    reader.seen.length = 0
    await reader.watch(input)
    const getsBefore = await redis.calls("get")
    const written = await writeVersions(prefix, input, 10_000)
    await eventually("B reads the last version", 1_000, () => reader.seen.at(-1)?.version === 10_000 ? true : undefined)
    const { reads, regressions } = await reader.unwatch()
    expect(regressions).toBe(0)
    expect(Math.max(...lags(written, reader.seen))).toBeLessThanOrEqual(1_000)
    // B's reads were mostly near hits: far fewer GETs reached Redis than B read.
    expect(reads).toBeGreaterThan(10_000)
    expect((await redis.calls("get")) + (await redis.calls("mget")) - getsBefore).toBeLessThan(reads / 2)
  }, 60_000)

  it("the subscriber killed mid-run (CLIENT KILL): no read staler than the bound, near hits again once tracking is back", async () => {
    const prefix = unique("near-kill")
    await reader.open({ url: redis.url, prefix, near: { capacity: 1_000 } })
    const input = "kill"
    await run(Job.set(version, input, { n: 0 }), writer(prefix))
    reader.seen.length = 0
    await reader.watch(input)
    let killed = 0
    const written = await writeVersions(prefix, input, 1_500, async (n) => {
      // The only pub/sub connection on this Redis is B's subscriber.
      if (n === 500) killed = Number(await redis.admin.call("CLIENT", "KILL", "TYPE", "pubsub"))
      await new Promise((resolve) => setTimeout(resolve, 1))
    })
    await eventually("B reads the last version", 1_000, () => reader.seen.at(-1)?.version === 1_500 ? true : undefined)
    const { regressions } = await reader.unwatch()
    expect(killed).toBe(1)
    expect(regressions).toBe(0)
    expect(Math.max(...lags(written, reader.seen))).toBeLessThanOrEqual(1_000)
    // Tracking is back (a new subscriber): 1,000 reads of the key cost (almost) no GET.
    await eventually("B's reads are near hits again", 5_000, async () => {
      const before = await redis.calls("get")
      const values = await reader.reads(input, 1_000)
      const gets = (await redis.calls("get")) - before
      expect(values.every((n) => n === 1_500)).toBe(true)
      return gets <= 2 ? true : undefined
    }, 200)
    expect(Number(await redis.admin.call("CLIENT", "KILL", "TYPE", "pubsub"))).toBe(1)
  }, 60_000)

  it("a flush empties it: the next read is a miss, not the flushed value", async () => {
    const prefix = unique("near-flush")
    await reader.open({ url: redis.url, prefix, near: { capacity: 1_000 } })
    await run(Job.set(version, "flushed", { n: 7 }), writer(prefix))
    await eventually("B holds version 7", 1_000, async () => (await reader.reads("flushed", 1))[0] === 7 ? true : undefined)
    await redis.admin.flushall()
    // The job's fetch answers version 0: B fetched, rather than serving 7 from memory.
    await eventually("B reads what Redis has after the flush", 1_000, async () => (await reader.reads("flushed", 1))[0] === 0 ? true : undefined)
  }, 30_000)

  it("the reader's store connection killed: tracking is lost with it, and a write made meanwhile is read within 1 s", async () => {
    const prefix = unique("near-data")
    await reader.open({ url: redis.url, prefix, near: { capacity: 1_000 } })
    await run(Job.set(version, "data", { n: 7 }), writer(prefix))
    await eventually("B holds version 7", 1_000, async () => (await reader.reads("data", 1))[0] === 7 ? true : undefined)
    // The only ordinary connection on this Redis besides the admin's is B's store connection.
    expect(Number(await redis.admin.call("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"))).toBe(1)
    await run(Job.set(version, "data", { n: 8 }), writer(prefix))
    await eventually("B reads version 8", 1_000, async () => (await reader.reads("data", 1))[0] === 8 ? true : undefined)
  }, 30_000)

  it("the byte cap holds: entries past maxBytes are evicted, and one larger than it is never kept", async () => {
    const prefix = unique("near-bytes")
    // Entries of about 1,100 characters of stored text; at most 3 fit in 4,000.
    const big = (n: number) => ({ n, pad: "x".repeat(1_000) })
    const padded = Job.make({ name: "near.padded", fetch: (n: number) => Effect.succeed(big(n)) })
    await run(Effect.gen(function*() {
      yield* Effect.sleep("200 millis") // tracking confirmed
      const inputs = Array.from({ length: 10 }, (_, i) => i)
      yield* Effect.forEach(inputs, (n) => Job.set(padded, n, big(n)), { discard: true })
      yield* Effect.forEach(inputs, (n) => Job.get(padded, n), { discard: true })
      const before = yield* Effect.promise(() => redis.calls("get"))
      yield* Effect.forEach(inputs, (n) => Job.get(padded, n), { discard: true })
      expect((yield* Effect.promise(() => redis.calls("get"))) - before).toBeGreaterThanOrEqual(7)
      // Two that fit are near hits when read again at once.
      yield* Job.get(padded, 0)
      yield* Job.get(padded, 1)
      const fit = yield* Effect.promise(() => redis.calls("get"))
      yield* Job.get(padded, 0)
      yield* Job.get(padded, 1)
      expect((yield* Effect.promise(() => redis.calls("get"))) - fit).toBe(0)
    }).pipe(Effect.scoped), writer(prefix, { capacity: 100, maxBytes: 4_000 }))
    await run(Effect.gen(function*() {
      yield* Effect.sleep("200 millis")
      yield* Job.set(padded, 99, big(99))
      yield* Job.get(padded, 99)
      const before = yield* Effect.promise(() => redis.calls("get"))
      yield* Job.get(padded, 99)
      expect((yield* Effect.promise(() => redis.calls("get"))) - before).toBe(1)
    }).pipe(Effect.scoped), writer(prefix, { capacity: 100, maxBytes: 500 }))
  }, 30_000)

  it("a process's own write replaces what its near cache held before the write resolves; entry caps hold", async () => {
    const prefix = unique("near-own")
    const layer = writer(prefix, { capacity: 10 })
    await run(Effect.gen(function*() {
      yield* Effect.sleep("200 millis") // tracking confirmed
      yield* Job.set(version, "own", { n: 1 })
      yield* Effect.sleep("20 millis")
      expect(yield* Job.get(version, "own")).toEqual({ n: 1 })
      expect(yield* Job.get(version, "own")).toEqual({ n: 1 })
      for (let n = 2; n <= 50; n++) {
        yield* Job.set(version, "own", { n })
        expect(yield* Job.get(version, "own")).toEqual({ n })
      }
      // 20 keys through a near cache of 10: a second pass reads at least 10 from Redis.
      const keys = Array.from({ length: 20 }, (_, i) => `cap${i}`)
      yield* Effect.forEach(keys, (key) => Job.set(version, key, { n: 1 }), { discard: true })
      yield* Effect.sleep("50 millis")
      yield* Effect.forEach(keys, (key) => Job.get(version, key), { discard: true })
      const before = yield* Effect.promise(() => redis.calls("get"))
      yield* Effect.forEach(keys, (key) => Job.get(version, key), { discard: true })
      const gets = (yield* Effect.promise(() => redis.calls("get"))) - before
      expect(gets).toBeGreaterThanOrEqual(10)
      // Ten keys fit: read twice, the second pass is all near hits.
      const few = keys.slice(0, 10)
      yield* Effect.forEach(few, (key) => Job.get(version, key), { discard: true })
      const again = yield* Effect.promise(() => redis.calls("get"))
      yield* Effect.forEach(few, (key) => Job.get(version, key), { discard: true })
      expect((yield* Effect.promise(() => redis.calls("get"))) - again).toBe(0)
    }).pipe(Effect.scoped), layer)
  }, 30_000)
})
