/**
 * State per runtime: two runtimes in one process share nothing but what they share on
 * purpose. One whose store hangs, holding its whole background budget, changes nothing for
 * the other, and disposing it frees what it held.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, ManagedRuntime, Metric, Option } from "effect"
import { CacheStore, Job, RefreshQueue, StoreError } from "effect-cacheback"
import { captureLogs, counting } from "./support/kit.js"

/** A memory store whose writes never finish (until interrupted, counted) and whose reads may fail. */
const hangingStore = (state: { interrupted: number; failReads: boolean }) =>
  Effect.flatMap(CacheStore.makeMemory({ capacity: 100_000 }), (inner) =>
    CacheStore.make({
      delete: inner.delete,
      getMany: inner.getMany,
      get: (key, schema) =>
        state.failReads ? Effect.fail(new StoreError({ operation: "get", key, cause: new Error("A is down") })) : inner.get(key, schema),
      set: () => Effect.onInterrupt(Effect.never, () => Effect.sync(() => void state.interrupted++)),
      compareAndSet: () => Effect.onInterrupt(Effect.never, () => Effect.sync(() => void state.interrupted++))
    }, { closeTimeout: "10 millis" }))

describe("two runtimes in one process", () => {
  it.live("A's hung store holds A's background budget only: B stores its misses, refreshes its stale reads and logs its own faults; disposing A frees its fibers", () =>
    Effect.gen(function*() {
      const a = { interrupted: 0, failReads: false }
      const b = { failReads: false }
      const logsA = captureLogs()
      const logsB = captureLogs()
      const runtimeA = ManagedRuntime.make(Layer.mergeAll(
        Layer.scoped(CacheStore.CacheStore, hangingStore(a)),
        RefreshQueue.layerMemory({ concurrency: 2 }),
        logsA.layer
      ))
      const runtimeB = ManagedRuntime.make(Layer.mergeAll(
        Layer.scoped(CacheStore.CacheStore, Effect.flatMap(CacheStore.makeMemory({ capacity: 10_000 }), (inner) =>
          CacheStore.make({
            set: inner.set,
            compareAndSet: inner.compareAndSet!,
            delete: inner.delete,
            getMany: inner.getMany,
            get: (key, schema) =>
              b.failReads ? Effect.fail(new StoreError({ operation: "get", key, cause: new Error("B is down") })) : inner.get(key, schema)
          }))),
        RefreshQueue.layerMemory({ concurrency: 2 }),
        logsB.layer
      ))
      // One job name in both runtimes: warnings are throttled per job, and per runtime.
      const fa = counting()
      const fb = counting()
      const jobA = Job.make({ name: "shared", fetch: fa.fetch })
      const jobB = Job.make({ name: "shared", fetch: fb.fetch }).pipe(Job.withLifetime("50 millis"))

      // 1,200 misses on A: each answers, its store hangs; 1,000 hold A's whole budget.
      const answered = yield* Effect.promise(() =>
        runtimeA.runPromise(Effect.forEach(Array.from({ length: 1_200 }, (_, i) => `a${i}`), (key) => Job.get(jobA, key)))
      )
      expect(answered).toHaveLength(1_200)
      const storeA = yield* Effect.promise(() => runtimeA.runPromise(CacheStore.CacheStore))
      expect(storeA.engine.backgroundRunning).toBe(1_000)

      // B: its misses are stored (a second read is a hit, fetched once) ...
      const first = yield* Effect.promise(() => runtimeB.runPromise(Job.lookup(jobB, "k")))
      expect(first.status).toBe("miss")
      yield* Effect.sleep("5 millis")
      const second = yield* Effect.promise(() => runtimeB.runPromise(Job.lookup(jobB, "k")))
      expect(second).toEqual({ value: first.value, status: "hit", syncFetch: undefined })
      // ... and a stale read queues a refresh that runs at once.
      yield* Effect.sleep("60 millis")
      const stale = yield* Effect.promise(() => runtimeB.runPromise(Job.lookup(jobB, "k")))
      expect(stale.status).toBe("stale")
      yield* Effect.promise(() =>
        runtimeB.runPromise(Effect.repeat(Job.lookup(jobB, "k"), { until: (found) => found.value !== first.value, times: 200 }))
      )
      expect(fb.calls()).toBe(2)

      // A store fault in A is logged in A; the same fault in B, just after, is logged in B.
      a.failReads = true
      b.failReads = true
      yield* Effect.promise(() => runtimeA.runPromise(Job.get(jobA, "down")))
      yield* Effect.promise(() => runtimeB.runPromise(Job.get(jobB, "down")))
      expect(logsA.lines.filter((line) => line.includes("A is down"))).toHaveLength(1)
      expect(logsB.lines.filter((line) => line.includes("B is down"))).toHaveLength(1)

      // Disposing A interrupts its hung writes and frees its budget; B goes on.
      yield* Effect.promise(() => runtimeA.dispose())
      expect(a.interrupted).toBeGreaterThanOrEqual(1_000)
      expect(storeA.engine.backgroundRunning).toBe(0)
      expect(storeA.engine.fibersRunning).toBe(0)
      b.failReads = false
      expect(Option.isSome(yield* Effect.promise(() => runtimeB.runPromise(Job.rawGet(jobB, "k"))))).toBe(true)
      yield* Effect.promise(() => runtimeB.dispose())
    }), 30_000)
})

describe("every unit of background work has a deadline", () => {
  it.live("a store whose writes hang holds its slots only until backgroundTimeout: then they are interrupted, freed and counted", () =>
    Effect.gen(function*() {
      const state = { interrupted: 0, failReads: false }
      const logs = captureLogs()
      const f = counting()
      const job = Job.make({ name: "hungWrites", fetch: f.fetch })
      const timeouts = Job.metrics(job).backgroundTimeouts
      const before = (yield* Metric.value(timeouts)).count
      yield* Effect.gen(function*() {
        const store = yield* CacheStore.CacheStore
        // Two misses fill the budget of 2 with writes that never finish.
        yield* Job.get(job, "a")
        yield* Job.get(job, "b")
        expect(store.engine.backgroundRunning).toBe(2)
        yield* Effect.sleep("250 millis")
        expect(store.engine.backgroundRunning).toBe(0)
        expect(state.interrupted).toBe(2)
        expect((yield* Metric.value(timeouts)).count - before).toBe(2)
        expect(logs.lines.some((line) => line.includes("did not finish within backgroundTimeout (100 ms)"))).toBe(true)
        // The budget is free again: the next miss's write is taken, not skipped.
        yield* Job.get(job, "c")
        expect(store.engine.backgroundRunning).toBe(1)
      }).pipe(
        Effect.provide(Layer.mergeAll(
          Layer.scoped(
            CacheStore.CacheStore,
            Effect.flatMap(CacheStore.makeMemory({ capacity: 100 }), (inner) =>
              CacheStore.make({
                delete: inner.delete,
                getMany: inner.getMany,
                get: inner.get,
                set: () => Effect.onInterrupt(Effect.never, () => Effect.sync(() => void state.interrupted++)),
                compareAndSet: () => Effect.onInterrupt(Effect.never, () => Effect.sync(() => void state.interrupted++))
              }, { maxBackground: 2, backgroundTimeout: "100 millis", closeTimeout: "10 millis" }))
          ),
          RefreshQueue.layerMemory({ concurrency: 1 }),
          logs.layer
        )),
        Effect.scoped
      )
    }))
})
