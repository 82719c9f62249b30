/**
 * A hung Redis, live: through a loopback proxy that stalls, how long a read waits. It is
 * bounded by one store timeout plus its fetch (DESIGN.md §6; here a 0 ms fetch):
 * a miss waits for its read to time out, never for its write; a stale read whose queue
 * hangs answers at once. Medians of 5 reads each.
 */
import { Clock, Duration, Effect, Either, Layer, Schema } from "effect"
import { CacheStore, Entry, Job, TestRefreshQueue } from "effect-cacheback"
import { BullRefreshQueue, RedisCacheStore } from "effect-cacheback/redis"
import { Queue } from "bullmq"
import { startPrivateRedis } from "../test/integration/fixtures/private-redis.js"
import { startProxy } from "../test/integration/fixtures/proxy.js"
import { record } from "./harness.js"

const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"
const timeout = 200

const job = Job.make({ name: "bench.hung", fetch: (input: string) => Effect.succeed(input) }).pipe(
  Job.withSchema({ input: Schema.String, value: Schema.String })
)

const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const start = performance.now()
    yield* effect
    return performance.now() - start
  })

const proxied = Effect.acquireRelease(Effect.promise(() => startProxy(url)), (proxy) => Effect.promise(proxy.close))

const missRow = Effect.gen(function*() {
  const proxy = yield* proxied
  const store = yield* Layer.build(RedisCacheStore.layer({ url: proxy.url, prefix: `bench-hung:${process.pid}`, commandTimeout: timeout }))
  proxy.stall()
  const waits: Array<number> = []
  for (let i = 0; i < 5; i++) {
    waits.push(yield* timed(Job.get(job, `miss-${i}`).pipe(Effect.provide(Layer.merge(Layer.succeedContext(store), TestRefreshQueue.layer)))))
  }
  const wait = median(waits)
  record({
    section: "faults",
    what: `Redis hung: a miss (read times out, 0 ms fetch, write left to the background), commandTimeout ${timeout} ms`,
    ours: `${wait.toFixed(0)} ms`,
    baseline: `${timeout} ms`,
    ratio: `${(wait / timeout).toFixed(2)}×`,
    target: "< 2× (one timeout)",
    met: wait < 2 * timeout
  })
}).pipe(Effect.scoped)

const staleRow = Effect.gen(function*() {
  const proxy = yield* proxied
  const prefix = `bench-hung-stale:${process.pid}`
  const context = yield* Layer.build(Layer.merge(
    RedisCacheStore.layer({ url, prefix }),
    BullRefreshQueue.layer({ connection: { url: proxy.url }, queueName: `bench-hung-${process.pid}`, enqueueTimeout: timeout })
  ))
  proxy.stall()
  const waits: Array<number> = []
  yield* Effect.gen(function*() {
    const store = yield* CacheStore.CacheStore
    for (let i = 0; i < 5; i++) {
      const now = yield* Clock.currentTimeMillis
      const key = Either.getOrThrow(job.key(`stale-${i}`))
      yield* store.set(key, Entry.value(`stale-${i}`, now - 7_200_000, now - 3_600_000, job.fingerprint), Duration.hours(1), job.valueSchema)
      waits.push(yield* timed(Job.get(job, `stale-${i}`)))
    }
    for (let i = 0; i < 5; i++) yield* Job.delete(job, `stale-${i}`)
  }).pipe(Effect.provide(Layer.succeedContext(context)))
  const wait = median(waits)
  record({
    section: "faults",
    what: `queue hung: a stale read (write-back and enqueue left to the background), enqueueTimeout ${timeout} ms`,
    ours: `${wait.toFixed(1)} ms`,
    baseline: `${timeout} ms`,
    ratio: `${(wait / timeout).toFixed(2)}×`,
    target: "< 0.5× (no timeout)",
    met: wait < timeout / 2
  })
}).pipe(Effect.scoped)

/**
 * 64 readers of cold keys (a 20 ms fetch, one fetch across processes) on a Redis of the
 * bench's own while `CLIENT PAUSE` hangs it for 2 s: the slowest read against one command
 * timeout plus its fetch.
 */
const pausedRow = Effect.gen(function*() {
  const redis = yield* Effect.acquireRelease(Effect.promise(startPrivateRedis), (redis) => Effect.promise(redis.stop))
  const commandTimeout = 1_000
  const fetch = 20
  const paused = Job.make({ name: "bench.paused", fetch: (input: string) => Effect.as(Effect.sleep(fetch), input) }).pipe(
    Job.withSchema({ input: Schema.String, value: Schema.String }),
    Job.withSingleFlight("cluster")
  )
  let slowest = 0
  let reads = 0
  const reader = (id: number) =>
    Effect.gen(function*() {
      const end = performance.now() + 3_500
      for (let n = 0; performance.now() < end; n++) {
        const wait = yield* timed(Job.get(paused, `r${id}-${n}`))
        slowest = Math.max(slowest, wait)
        reads++
      }
    })
  yield* Effect.gen(function*() {
    const readers = yield* Effect.fork(Effect.all(Array.from({ length: 64 }, (_, i) => reader(i)), { concurrency: "unbounded" }))
    yield* Effect.sleep(300)
    yield* Effect.promise(() => redis.admin.call("CLIENT", "PAUSE", "2000", "ALL"))
    yield* Effect.fromFiber(readers)
  }).pipe(Effect.provide(Layer.merge(RedisCacheStore.layer({ url: redis.url, prefix: "paused", commandTimeout }), TestRefreshQueue.layer)))
  const bound = commandTimeout + fetch
  record({
    section: "faults",
    what: `Redis paused 2 s (CLIENT PAUSE), 64 readers of cold keys (${reads} reads): the slowest read, commandTimeout ${commandTimeout} ms + ${fetch} ms fetch`,
    ours: `${slowest.toFixed(0)} ms`,
    baseline: `${bound} ms`,
    ratio: `${(slowest / bound).toFixed(2)}×`,
    target: "≤ baseline + 250 ms (one timeout)",
    met: slowest <= bound + 250
  })
}).pipe(Effect.scoped)

/**
 * Redis's memory per waiting task: 10,000 stale keys read once with no worker, `INFO memory`
 * before and after, on a Redis of the bench's own; against the task's data alone (its JSON).
 */
const taskMemoryRow = Effect.gen(function*() {
  const redis = yield* Effect.acquireRelease(Effect.promise(startPrivateRedis), (redis) => Effect.promise(redis.stop))
  const used = Effect.promise(async () => Number(/used_memory:(\d+)/.exec(await redis.admin.info("memory"))![1]))
  const n = 10_000
  let dataBytes = 0
  yield* Effect.gen(function*() {
    const store = yield* CacheStore.CacheStore
    const now = yield* Clock.currentTimeMillis
    for (let i = 0; i < n; i++) {
      const key = Either.getOrThrow(job.key(`task-${i}`))
      yield* store.set(key, Entry.value(`v${i}`, now - 7_200_000, now - 3_600_000, job.fingerprint), Duration.hours(1), job.valueSchema)
    }
    const entries = yield* used
    for (let i = 0; i < n; i++) yield* Job.get(job, `task-${i}`)
    const queue = new Queue("bench-tasks", { connection: { url: redis.url } })
    while ((yield* Effect.promise(() => queue.getWaitingCount())) < n) yield* Effect.sleep(50)
    const sample = (yield* Effect.promise(() => queue.getJobs(["waiting"], 0, 0)))[0]!
    dataBytes = JSON.stringify(sample.data).length
    yield* Effect.promise(() => queue.close())
    const perTask = ((yield* used) - entries) / n
    record({
      section: "faults",
      what: `BullMQ: Redis memory per waiting task (${n.toLocaleString("en")} stale keys, no worker; maxWaiting bounds their number)`,
      ours: `${perTask.toFixed(0)} B`,
      baseline: `${dataBytes} B of data`,
      ratio: `${(perTask / dataBytes).toFixed(1)}×`,
      target: "—",
      met: undefined
    })
  }).pipe(Effect.provide(Layer.merge(
    RedisCacheStore.layer({ url: redis.url, prefix: "tasks" }),
    BullRefreshQueue.layer({ connection: { url: redis.url }, queueName: "bench-tasks" })
  )))
}).pipe(Effect.scoped)

export const faults = Effect.all([missRow, staleRow, pausedRow, taskMemoryRow], { discard: true }).pipe(Effect.orDie)
