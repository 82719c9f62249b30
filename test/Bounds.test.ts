/**
 * A read answers within one store read plus its fetch (DESIGN.md §3.3, §6). The writes
 * after its decision (the fetched value, a write-back, a pending marker) and its enqueue
 * finish in the background, bounded in number; none of them adds its wait to the caller's.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Metric, TestClock } from "effect"
import { CacheStore, EnqueueError, Job, RefreshQueue, TestRefreshQueue } from "effect-cacheback"

/** A memory store whose writes wait for `gate` once it is closed. */
const gatedStore = Effect.gen(function*() {
  const inner = yield* CacheStore.makeMemory({ capacity: 10_000 })
  const gate = { open: true, release: yield* Deferred.make<void>(), writes: 0 }
  const store = yield* CacheStore.make({
    get: inner.get,
    getMany: inner.getMany,
    delete: inner.delete,
    set: (key, entry, ttl, schema) =>
      Effect.suspend(() => {
        gate.writes++
        return gate.open ? inner.set(key, entry, ttl, schema) : Effect.zipRight(Deferred.await(gate.release), inner.set(key, entry, ttl, schema))
      })
  })
  return { store, gate }
})

const count = (counter: Metric.Metric.Counter<number>) => Effect.map(Metric.value(counter), (state) => state.count)

/** Yields until `done` (background fibers run meanwhile); at most 50 turns. */
const settle = (done: () => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 50 && !done(); i++) yield* Effect.yieldNow()
  })

describe("reads never wait for what follows their decision", () => {
  it.scoped("a miss answers the fetched value while its store is blocked; a read in that gap joins the flight", () =>
    Effect.gen(function*() {
      const { gate, store } = yield* gatedStore
      let fetches = 0
      const job = Job.make({ name: "blockedWrite", fetch: (input: string) => Effect.sync(() => `${input}#${++fetches}`) })
      yield* Effect.gen(function*() {
        gate.open = false
        const first = yield* Effect.fork(Job.get(job, "k"))
        yield* settle(() => first.unsafePoll() !== null)
        expect(first.unsafePoll()).not.toBeNull() // answered while its write waits
        expect(yield* Fiber.join(first)).toBe("k#1")
        // Nothing is stored yet, but the flight lasts until it is: no second fetch.
        expect(yield* Job.get(job, "k")).toBe("k#1")
        expect(fetches).toBe(1)
        yield* Deferred.succeed(gate.release, undefined)
        yield* settle(() => false)
        expect(yield* Job.lookup(job, "k")).toEqual({ value: "k#1", status: "hit", syncFetch: undefined })
        expect(fetches).toBe(1)
      }).pipe(Effect.provideService(CacheStore.CacheStore, store))
    }).pipe(Effect.provide(TestRefreshQueue.layer)))

  it.scoped("a stale read answers at once while its write-back and its enqueue hang; one background task per key", () =>
    Effect.gen(function*() {
      const { gate, store } = yield* gatedStore
      const enqueue = yield* Deferred.make<void>()
      let enqueues = 0
      const hungQueue = RefreshQueue.RefreshQueue.of({
        enqueue: () => Effect.zipRight(Effect.sync(() => enqueues++), Effect.as(Deferred.await(enqueue), "enqueued" as const))
      })
      yield* Effect.gen(function*() {
        const job = Job.make({ name: "hungAfterStale", fetch: (input: string) => Effect.succeed(input) })
        yield* Job.get(job, "k")
        yield* TestClock.adjust("11 minutes")
        gate.open = false
        expect(yield* Job.lookup(job, "k")).toEqual({ value: "k", status: "stale", syncFetch: false })
        // The entry is not written back yet, so this read is stale too: the key's background
        // task is running, and it is left to it.
        expect(yield* Job.lookup(job, "k")).toEqual({ value: "k", status: "stale", syncFetch: false })
        yield* Deferred.succeed(gate.release, undefined)
        yield* settle(() => enqueues > 0)
        expect(enqueues).toBe(1)
        expect(gate.writes).toBe(2) // the first fetch's store, and one write-back
        yield* Deferred.succeed(enqueue, undefined)
      }).pipe(Effect.provideService(CacheStore.CacheStore, store), Effect.provideService(RefreshQueue.RefreshQueue, hungQueue))
    }))

  it.scoped("at most 1,000 background writes at once; beyond, they are skipped and counted", () =>
    Effect.gen(function*() {
      const { gate, store } = yield* gatedStore
      const job = Job.make({ name: "backgroundBound", fetch: (input: number) => Effect.succeed(input) })
      gate.open = false
      yield* Effect.forEach(Array.from({ length: 1_200 }, (_, i) => i), (i) => Job.get(job, i), { discard: true }).pipe(
        Effect.provideService(CacheStore.CacheStore, store)
      )
      expect(yield* count(Job.metrics(job).backgroundSkipped)).toBe(200)
      yield* Deferred.succeed(gate.release, undefined)
      yield* settle(() => gate.writes >= 1_000)
      expect(gate.writes).toBe(1_000)
    }).pipe(Effect.provide(TestRefreshQueue.layer)))

  it.scoped("an enqueue that fails after a stale read is a background refresh; the reader has its answer", () =>
    Effect.gen(function*() {
      let fetches = 0
      const job = Job.make({ name: "refusedThenBackground", fetch: (input: string) => Effect.sync(() => `${input}#${++fetches}`) })
      yield* Job.get(job, "k")
      yield* TestClock.adjust("11 minutes")
      expect(yield* Job.get(job, "k")).toBe("k#1")
      yield* settle(() => fetches === 2)
      expect(fetches).toBe(2)
    }).pipe(Effect.provide(Layer.merge(
      CacheStore.layerMemory({ capacity: 10 }),
      Layer.succeed(RefreshQueue.RefreshQueue, {
        enqueue: (task) => Effect.fail(new EnqueueError({ job: task.job, key: task.key, reason: "full" }))
      })
    ))))
})
