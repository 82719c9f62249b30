/**
 * Redis paths against raw ioredis on the same server, and BullMQ: stampedes and the time
 * from a stale read to the refreshed value.
 */
import { Clock, Effect, Layer, Metric, Option, Schema } from "effect"
import { Redis } from "ioredis"
import { Job } from "effect-cacheback"
import { BullRefreshQueue, RedisCacheStore, RefreshWorker } from "effect-cacheback/redis"
import { compare, floorRow, record, staleStorm } from "./harness.js"

const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"
const prefix = `bench:${process.pid}`
const keys = Array.from({ length: 1_000 }, (_, i) => `user:${i}`)
const profile = (key: string) => ({ key, name: `name of ${key}`, followers: key.length * 37, tags: ["a", "b"] })

const job = Job.make({ name: "bench.redis", fetch: (key: string) => Effect.succeed(profile(key)) })
/** The same job with a 4-field value schema, as most users of Redis give one. */
const schemaJob = Job.make({ name: "bench.redis.schema", fetch: (key: string) => Effect.succeed(profile(key)) }).pipe(
  Job.withSchema({
    value: Schema.Struct({ key: Schema.String, name: Schema.String, followers: Schema.Number, tags: Schema.Array(Schema.String) })
  })
)
type ProfileJob = typeof job | typeof schemaJob

/** A raw client as users would make one, and one with auto-pipelining. */
const rawClient = (autoPipelining: boolean) =>
  Effect.acquireRelease(
    Effect.sync(() => new Redis(url, { enableAutoPipelining: autoPipelining })),
    (client) => Effect.promise(() => client.quit())
  )

const ratioRow = (what: string, ours: number, baseline: number, target: number) =>
  floorRow("redis", what, ours, baseline, target)

/** `count` reads, `inFlight` at a time, each of the next key in turn. */
const concurrently = (count: number, inFlight: number, read: (key: string) => Promise<unknown>) =>
  Effect.promise(async () => {
    let next = 0
    const worker = async () => {
      while (next < count) await read(keys[next++ % keys.length]!)
    }
    await Promise.all(Array.from({ length: inFlight }, worker))
  })

const inFlight = 100_000

/** `inFlight` reads by 64 fibers, each reading the next key in turn: the baseline's 64 async loops, in Effect. */
const reading64 = (job: ProfileJob) =>
  Effect.suspend(() => {
    let next = 0
    const reader = Effect.whileLoop({
      while: () => next < inFlight,
      body: () => Job.get(job, keys[next++ % keys.length]!),
      step: () => {}
    })
    return Effect.all(Array.from({ length: 64 }, () => reader), { concurrency: "unbounded", discard: true })
  })

/**
 * `job`'s hits against raw ioredis. The baselines read the same entries' JSON as a user of
 * plain ioredis would store it, at keys of their own (the store's text has a header).
 */
const hitsOf = (job: ProfileJob, label: string) => Effect.gen(function*() {
  const redisKey = (key: string) => `${prefix}:${Option.getOrThrow(Option.getRight(job.key(key)))}`
  const plainKey = (key: string) => `${prefix}:plain:${job.name}:${key}`
  yield* Effect.forEach(keys, (key) => Job.set(job, key, profile(key)), { discard: true, concurrency: 64 })
  const raw = yield* rawClient(false)
  const pipelined = yield* rawClient(true)
  yield* Effect.promise(() =>
    Promise.all(keys.map((key) => raw.get(redisKey(key)).then((text) => raw.set(plainKey(key), text!.slice(text!.indexOf("|", 3) + 1)))))
  )
  const rawGet = (client: Redis) => (key: string) => client.get(plainKey(key)).then((text) => JSON.parse(text!))

  const sequential = 20_000
  const one = yield* compare({
    ops: sequential,
    ours: Effect.gen(function*() {
      for (let i = 0; i < sequential; i++) yield* Job.get(job, keys[i % keys.length]!)
    }),
    baseline: concurrently(sequential, 1, rawGet(raw))
  })
  ratioRow(`hit, sequential: Job.get vs raw GET + JSON.parse${label}`, one.ours, one.baseline, 0.9)

  const ours64 = reading64(job)
  const many = yield* compare({ ops: inFlight, ours: ours64, baseline: concurrently(inFlight, 64, rawGet(raw)) })
  ratioRow(`hits, 64 in flight over 1,000 keys: Job.get vs raw GETs${label}`, many.ours, many.baseline, 1.5)
  const auto = yield* compare({ ops: inFlight, ours: ours64, baseline: concurrently(inFlight, 64, rawGet(pipelined)) })
  ratioRow(`hits, 64 in flight: Job.get vs raw GETs with auto-pipelining${label}`, auto.ours, auto.baseline, 1)

  const batches = 2_000
  const hundred = keys.slice(0, 100)
  const batch = yield* compare({
    ops: batches * hundred.length,
    ours: Effect.gen(function*() {
      for (let i = 0; i < batches; i++) yield* Job.getMany(job, hundred)
    }),
    baseline: Effect.promise(async () => {
      const plainKeys = hundred.map(plainKey)
      for (let i = 0; i < batches; i++) (await raw.mget(plainKeys)).map((text) => JSON.parse(text!))
    })
  })
  ratioRow(`getMany of 100 keys vs raw MGET of 100 (keys/s)${label}`, batch.ours, batch.baseline, 0.8)
})

const hits = Effect.zipRight(hitsOf(job, ""), hitsOf(schemaJob, ", 4-field value schema"))

/**
 * A tagged hit against an untagged one on Redis (the tag check's cost, DESIGN.md §8.3):
 * the tags' tokens are one more round trip, sequentially; in flight, the checks share
 * round trips with the other reads.
 */
const taggedHits = Effect.gen(function*() {
  const tagged = Job.make({ name: "bench.redis.tagged", fetch: (key: string) => Effect.succeed(profile(key)) }).pipe(
    Job.withTags((key) => [`user:${key}`, "users"])
  )
  yield* Effect.forEach(keys, (key) => Effect.zipRight(Job.set(job, key, profile(key)), Job.set(tagged, key, profile(key))), {
    discard: true,
    concurrency: 64
  })
  const sequential = 20_000
  const loop = (which: typeof job) =>
    Effect.gen(function*() {
      for (let i = 0; i < sequential; i++) yield* Job.get(which, keys[i % keys.length]!)
    })
  const one = yield* compare({ ops: sequential, ours: loop(tagged), baseline: loop(job) })
  ratioRow("tagged hit (2 tags), sequential: vs an untagged hit (one round trip more)", one.ours, one.baseline, 0.4)
  const many = yield* compare({ ops: inFlight, ours: reading64(tagged), baseline: reading64(job) })
  ratioRow("tagged hits (2 tags), 64 in flight: vs untagged hits (checks batched with reads)", many.ours, many.baseline, 0.4)
})

// Jobs whose refreshes go to BullMQ need an input schema (without one the enqueue is
// refused and the read refreshes synchronously).
const staleJob = Job.make({ name: "bench.bull", fetch: (_: string) => Effect.succeed(1) }).pipe(
  Job.withLifetime(0),
  Job.withRefreshTimeout("1 minute"),
  Job.withSchema({ input: Schema.String })
)

const bullStorm = staleStorm("bullmq", "storm: 10,000 concurrent stale reads of one key", staleJob, Job.set(staleJob, "hot", 0))

/** From a stale read to the refreshed value being readable, with a worker in this process. */
const refreshLatency = Effect.gen(function*() {
  const latencyJob = Job.make({ name: "bench.latency", fetch: (_: string) => Effect.succeed(1) }).pipe(
    Job.withLifetime(0),
    Job.withRefreshTimeout("1 minute"),
    Job.withSchema({ input: Schema.String })
  )
  const enqueued = Job.metrics(latencyJob).enqueued
  yield* RefreshWorker.start({ jobs: [latencyJob], concurrency: 8 })
  const samples: Array<number> = []
  for (let i = 0; i < 300; i++) {
    const key = `k${i}`
    yield* Job.set(latencyJob, key, 0)
    yield* Effect.sleep("3 millis") // past the stored value's expiry, on a millisecond clock
    const start = yield* Clock.currentTimeMillis
    const { status } = yield* Job.lookup(latencyJob, key)
    if (status !== "stale") return yield* Effect.dieMessage(`expected a stale read, got ${status}`)
    let refreshed = false
    while (!refreshed) {
      const entry = yield* Job.rawGet(latencyJob, key)
      refreshed = Option.isSome(entry) && entry.value._tag === "Value" && entry.value.fetchedAt >= start
      if (!refreshed) yield* Effect.sleep("1 millis")
    }
    samples.push((yield* Clock.currentTimeMillis) - start)
  }
  // Every sample must have gone through BullMQ, not the synchronous fallback.
  const viaQueue = (yield* Metric.value(enqueued)).count
  samples.sort((a, b) => a - b)
  const p50 = samples[Math.floor(samples.length * 0.5)]!
  const p99 = samples[Math.floor(samples.length * 0.99)]!
  record({
    section: "bullmq",
    what: "refresh latency, 0 ms fetch, stale read → refreshed value readable (300 samples through BullMQ, 1 ms polling)",
    ours: `p50 ${p50} ms, p99 ${p99} ms`,
    baseline: "—",
    ratio: "—",
    target: "p50 ≤ 20 ms, p99 ≤ 100 ms",
    met: p50 <= 20 && p99 <= 100 && viaQueue === samples.length
  })
})

const queueName = `bench-${process.pid}`

export const redis = Effect.gen(function*() {
  yield* hits
  yield* taggedHits
  yield* Effect.scoped(Effect.all([bullStorm, refreshLatency], { discard: true }))
  const cleanup = yield* rawClient(false)
  for (const pattern of [`${prefix}:*`, `bull:${queueName}:*`]) {
    const found = yield* Effect.promise(() => cleanup.keys(pattern))
    if (found.length > 0) yield* Effect.promise(() => cleanup.del(...found))
  }
}).pipe(
  Effect.scoped,
  Effect.provide(Layer.mergeAll(
    RedisCacheStore.layer({ url, prefix }),
    BullRefreshQueue.layer({ connection: { url }, queueName })
  ))
)
