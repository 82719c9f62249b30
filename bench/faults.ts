/**
 * A hung Redis, live: through a loopback proxy that stalls, how long a read waits. It is
 * bounded by one store timeout plus its fetch (DESIGN.md §6; here a 0 ms fetch):
 * a miss waits for its read to time out, never for its write; a stale read whose queue
 * hangs answers at once. Medians of 5 reads each.
 */
import { Clock, Duration, Effect, Either, Layer, Schema } from "effect"
import { CacheStore, Entry, Job, TestRefreshQueue } from "effect-cacheback"
import { BullRefreshQueue, RedisCacheStore } from "effect-cacheback/redis"
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

export const faults = Effect.all([missRow, staleRow], { discard: true }).pipe(Effect.orDie)
