import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Fiber, Layer, Metric, Option, Ref, TestClock } from "effect"
import { CacheStore, Entry, Job, RefreshQueue, TestRefreshQueue } from "effect-cacheback"
import { captureLogs, count, counting, faultyStore, refusingQueue, written } from "./support/kit.js"

// Every test names its job after itself: the counters are per job name and global.
const withFaultyStore = <A, E, R>(
  body: (faulty: Effect.Effect.Success<typeof faultyStore>) => Effect.Effect<A, E, R>
) =>
  Effect.flatMap(faultyStore, (faulty) =>
    body(faulty).pipe(Effect.provideService(CacheStore.CacheStore, faulty.store)))

/** Lets background fibers run until `done` holds (or 100 turns have passed). */
const settle = <E = never, R = never>(done: (() => boolean) | Effect.Effect<boolean, E, R>) =>
  Effect.gen(function*() {
    const check = typeof done === "function" ? Effect.sync(done) : done
    for (let i = 0; i < 100 && !(yield* check); i++) yield* Effect.yieldNow()
  })

const stored = <A>(job: Job.Job<string, A, any, any, any, any, any, any>, input: string, value: A) =>
  Effect.map(Job.rawGet(job, input), (entry) => Option.isSome(entry) && entry.value._tag === "Value" && entry.value.value === value)

describe("faults degrade, never break reads", () => {
  it.scoped("a failing store read counts as a miss: the value is fetched and returned", () => {
    const logs = captureLogs()
    return withFaultyStore(({ faults }) =>
      Effect.gen(function*() {
        const f = counting()
        const job = Job.make({ name: "readFails", fetch: f.fetch })
        yield* Job.get(job, "alan")
        yield* Ref.set(faults, { failReads: true, failWrites: false })
        expect(yield* Job.lookup(job, "alan")).toEqual({ value: "alan#2", status: "miss", syncFetch: true })
        expect(yield* count(Job.metrics(job).storeErrors)).toBe(1)
        expect(logs.lines.some((line) => line.startsWith("WARN") && line.includes("connection refused"))).toBe(true)
        yield* Ref.set(faults, { failReads: false, failWrites: false })
        expect((yield* Job.lookup(job, "alan")).status).toBe("hit")
      })
    ).pipe(Effect.provide(Layer.merge(TestRefreshQueue.layer, logs.layer)))
  })

  it.scoped("during an outage a job warns once every 10 seconds, and counts every fault", () => {
    const logs = captureLogs()
    return withFaultyStore(({ faults }) =>
      Effect.gen(function*() {
        yield* Ref.set(faults, { failReads: true, failWrites: true })
        const job = Job.make({ name: "outageLogs", fetch: counting().fetch })
        for (let i = 0; i < 5; i++) yield* Job.get(job, "k")
        yield* TestClock.adjust("10 seconds")
        yield* Job.get(job, "k")
        const warnings = logs.lines.filter((line) => line.includes("outageLogs"))
        expect(warnings).toHaveLength(2)
        expect(warnings[1]).toMatch(/and 9 more store faults since the last warning/)
        expect(yield* count(Job.metrics(job).storeErrors)).toBe(12)
      })
    ).pipe(Effect.provide(Layer.merge(TestRefreshQueue.layer, logs.layer)))
  })

  it.scoped("a failing store write is logged and counted; the fetched value is still returned", () => {
    const logs = captureLogs()
    return withFaultyStore(({ faults }) =>
      Effect.gen(function*() {
        yield* Ref.set(faults, { failReads: false, failWrites: true })
        const job = Job.make({ name: "writeFails", fetch: counting().fetch })
        expect(yield* Job.get(job, "alan")).toBe("alan#1")
        expect(yield* count(Job.metrics(job).storeErrors)).toBe(1)
        expect(logs.lines.filter((line) => line.includes("cache store set")).length).toBe(1)
      })
    ).pipe(Effect.provide(Layer.merge(TestRefreshQueue.layer, logs.layer)))
  })

  it.scoped("a failing read of many counts as misses for all of them", () =>
    withFaultyStore(({ calls, faults }) =>
      Effect.gen(function*() {
        yield* Ref.set(faults, { failReads: true, failWrites: false })
        const job = Job.make({ name: "manyReadFails", fetch: counting().fetch })
        expect(yield* Job.getMany(job, ["a", "b"])).toEqual(["a#1", "b#2"])
        expect(calls.getMany).toBe(1)
        expect(calls.get).toBe(0)
      })
    ).pipe(Effect.provide(TestRefreshQueue.layer)))

  it.scoped("explicit store operations report the store's error", () =>
    withFaultyStore(({ faults }) =>
      Effect.gen(function*() {
        yield* Ref.set(faults, { failReads: true, failWrites: true })
        const job = Job.make({ name: "explicit", fetch: counting().fetch })
        expect((yield* Effect.flip(Job.set(job, "a", "v")))._tag).toBe("StoreError")
        expect((yield* Effect.flip(Job.delete(job, "a")))._tag).toBe("StoreError")
        expect((yield* Effect.flip(Job.rawGet(job, "a")))._tag).toBe("StoreError")
      })
    ).pipe(Effect.provide(TestRefreshQueue.layer)))

  it.scoped("a failing enqueue on a stale read answers at once and refreshes in the background", () =>
    Effect.gen(function*() {
      const f = counting()
      const job = Job.make({ name: "enqueueFailsStale", fetch: f.fetch })
      yield* Job.get(job, "alan")
      yield* TestClock.setTime(600_001)
      expect(yield* Job.lookup(job, "alan")).toEqual({ value: "alan#1", status: "stale", syncFetch: false })
      yield* settle(stored(job, "alan", "alan#2"))
      expect(f.calls()).toBe(2)
      expect(yield* Effect.map(Job.rawGet(job, "alan"), Option.getOrNull)).toEqual(written(Entry.value("alan#2", 600_001, 1_200_001)))
      expect(yield* count(Job.metrics(job).enqueueErrors)).toBe(1)
    }).pipe(Effect.provide(Layer.merge(CacheStore.layerMemory({ capacity: 10 }), refusingQueue))))

  it.scoped("a failing enqueue on an async miss answers the empty value at once and refreshes in the background", () =>
    Effect.gen(function*() {
      const f = counting()
      const job = Job.make({ name: "enqueueFailsMiss", fetch: f.fetch }).pipe(Job.withSyncOnMiss(false))
      expect(yield* Job.lookup(job, "alan")).toEqual({ value: undefined, status: "miss", syncFetch: false })
      yield* settle(stored(job, "alan", "alan#1"))
      expect(yield* Job.lookup(job, "alan")).toEqual({ value: "alan#1", status: "hit", syncFetch: undefined })
    }).pipe(Effect.provide(Layer.merge(CacheStore.layerMemory({ capacity: 10 }), refusingQueue))))

  it.scoped("when the background refresh fails too, the read has answered the stale value and the failure is logged", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      let healthy = true
      const job = Job.make({
        name: "fallbackFails",
        fetch: (_: string) => Effect.suspend(() => healthy ? Effect.succeed("old") : Effect.fail("upstream down"))
      })
      yield* Job.get(job, "alan")
      healthy = false
      yield* TestClock.setTime(600_001)
      expect(yield* Job.lookup(job, "alan")).toEqual({ value: "old", status: "stale", syncFetch: false })
      const failed = () => logs.lines.some((line) => line.includes("the background refresh") && line.includes("failed"))
      yield* settle(failed)
      expect(failed()).toBe(true)
    }).pipe(Effect.provide(Layer.mergeAll(CacheStore.layerMemory({ capacity: 10 }), refusingQueue, logs.layer)))
  })

  it.scoped("enqueue failures are counted exactly and logged once per job every 10 seconds", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const job = Job.make({ name: "enqueueFlood", fetch: counting().fetch }).pipe(Job.withSyncOnMiss(false))
      for (let i = 0; i < 50; i++) yield* Job.get(job, `k${i}`)
      yield* TestClock.adjust("10 seconds")
      yield* Job.get(job, "later")
      const warnings = logs.lines.filter((line) => line.includes("enqueueFlood") && line.includes("cannot enqueue"))
      expect(warnings).toHaveLength(2)
      expect(warnings[1]).toMatch(/and 49 more enqueue faults since the last warning/)
      expect(yield* count(Job.metrics(job).enqueueErrors)).toBe(51)
    }).pipe(Effect.provide(Layer.mergeAll(CacheStore.layerMemory({ capacity: 100 }), refusingQueue, logs.layer)))
  })

  it.scoped("asyncRefresh with a failing enqueue refreshes synchronously, and fails with that fetch's error", () =>
    Effect.gen(function*() {
      const f = counting()
      const job = Job.make({ name: "asyncRefreshFallback", fetch: f.fetch })
      yield* Job.asyncRefresh(job, "alan")
      expect(f.calls()).toBe(1)
      const failing = Job.make({ name: "asyncRefreshFallbackFails", fetch: (_: string) => Effect.fail("boom" as const) })
      expect(yield* Effect.flip(Job.asyncRefresh(failing, "alan"))).toBe("boom")
    }).pipe(Effect.provide(Layer.merge(CacheStore.layerMemory({ capacity: 10 }), refusingQueue))))

  it.scoped("when the queue refuses, concurrent stale reads still share one synchronous refresh", () =>
    withFaultyStore(() =>
      Effect.gen(function*() {
        let fetches = 0
        const job = Job.make({
          name: "refusedStampede",
          fetch: (_: string) => Effect.zipRight(Effect.sleep("100 millis"), Effect.sync(() => ++fetches))
        })
        yield* Job.set(job, "k", 0)
        yield* TestClock.setTime(600_001)
        const readers = yield* Effect.fork(
          Effect.all(Array.from({ length: 50 }, () => Job.get(job, "k")), { concurrency: "unbounded" })
        )
        yield* TestClock.adjust("100 millis")
        // Readers that came after the write-back were answered the stale value as a hit.
        expect((yield* Fiber.join(readers)).every((value) => value === 0 || value === 1)).toBe(true)
        expect(fetches).toBe(1)
        expect(yield* count(Job.metrics(job).syncFetches)).toBe(1)
      })
    ).pipe(Effect.provide(refusingQueue)))

  it.scoped("a refresh whose value cannot be stored fails, is retried, and counts as failed", () =>
    withFaultyStore(({ faults }) =>
      Effect.gen(function*() {
        const f = counting()
        const job = Job.make({ name: "refreshWriteFails", fetch: f.fetch }).pipe(
          Job.withQueueOptions({ attempts: 2, backoff: { type: "fixed", delay: "1 second" } })
        )
        yield* Job.get(job, "k")
        yield* TestClock.setTime(600_001)
        yield* Job.get(job, "k")
        yield* Ref.set(faults, { failReads: false, failWrites: true })
        const exit = yield* Effect.exit(Job.refreshTask(job, "k", Option.getOrThrow(Option.getRight(job.key("k")))))
        expect(exit._tag === "Failure" && Cause.failureOption(exit.cause).pipe(Option.map((e) => (e as { _tag: string })._tag)))
          .toEqual(Option.some("StoreError"))
        const drained = yield* Effect.fork(TestRefreshQueue.drain)
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(drained)
        expect(f.calls()).toBe(4) // the first read, the direct attempt, and two attempts of the queued refresh
        expect(yield* count(Job.metrics(job).refreshed)).toBe(0)
        expect(yield* count(Job.metrics(job).refreshFailures)).toBe(1)
      })
    ).pipe(Effect.provide(TestRefreshQueue.layer)))

  it.scoped("a store that dies (a defect) counts as a miss too", () =>
    Effect.gen(function*() {
      const dying = yield* CacheStore.make({
        get: () => Effect.die(new Error("driver bug")),
        getMany: () => Effect.die(new Error("driver bug")),
        set: () => Effect.die(new Error("driver bug")),
        delete: () => Effect.die(new Error("driver bug"))
      })
      const job = Job.make({ name: "storeDies", fetch: counting().fetch })
      expect(yield* Job.lookup(job, "k").pipe(Effect.provideService(CacheStore.CacheStore, dying)))
        .toEqual({ value: "k#1", status: "miss", syncFetch: true })
      expect(yield* count(Job.metrics(job).storeErrors)).toBe(2)
    }).pipe(Effect.provide(TestRefreshQueue.layer)))

  it.scoped("a background refresh that fails leaves the stale entry, is logged and counted", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      let healthy = true
      const job = Job.make({
        name: "backgroundFails",
        fetch: (_: string) => Effect.suspend(() => healthy ? Effect.succeed("old") : Effect.fail("upstream down"))
      }).pipe(Job.withQueueOptions({ attempts: 1 }))
      yield* Job.get(job, "alan")
      healthy = false
      yield* TestClock.setTime(600_001)
      yield* Job.get(job, "alan")
      yield* TestRefreshQueue.drain
      expect(yield* Effect.map(Job.rawGet(job, "alan"), Option.getOrNull)).toEqual(written(Entry.value("old", 0, 660_001)))
      expect(yield* count(Job.metrics(job).refreshFailures)).toBe(1)
      expect(yield* count(Job.metrics(job).refreshed)).toBe(0)
      expect(logs.lines.some((line) => line.includes("the refresh of") && line.includes("failed"))).toBe(true)
    }).pipe(Effect.provide(Layer.mergeAll(CacheStore.layerMemory({ capacity: 10 }), TestRefreshQueue.layer, logs.layer)))
  })

  it.scoped("a background refresh that dies (a defect) is contained the same way", () =>
    Effect.gen(function*() {
      let healthy = true
      const job = Job.make({
        name: "backgroundDies",
        fetch: (_: string) => Effect.suspend(() => healthy ? Effect.succeed("old") : Effect.die(new Error("bug")))
      }).pipe(Job.withQueueOptions({ attempts: 1 }))
      yield* Job.get(job, "alan")
      healthy = false
      yield* TestClock.setTime(600_001)
      yield* Job.get(job, "alan")
      expect(yield* TestRefreshQueue.drain).toBe(1)
      expect(yield* count(Job.metrics(job).refreshFailures)).toBe(1)
      expect(yield* Job.get(job, "alan")).toBe("old")
    }).pipe(Effect.provide(Layer.merge(CacheStore.layerMemory({ capacity: 10 }), TestRefreshQueue.layer))))

  it.scoped("on the memory queue, a failing background refresh neither crashes nor blocks the next one", () =>
    Effect.gen(function*() {
      let calls = 0
      const job = Job.make({
        name: "memoryQueueFails",
        fetch: (_: string) => Effect.suspend(() => ++calls === 2 ? Effect.fail("flaky") : Effect.succeed(calls))
      }).pipe(Job.withQueueOptions({ attempts: 1 }))
      yield* Job.get(job, "k")
      yield* TestClock.setTime(600_001)
      expect(yield* Job.get(job, "k")).toBe(1)
      yield* settle(() => calls === 2)
      expect(calls).toBe(2)
      yield* settle(Effect.map(Job.metrics(job).refreshFailures.pipe(Metric.value), (state) => state.count === 1))
      yield* TestClock.setTime(700_000)
      expect(yield* Job.get(job, "k")).toBe(1)
      yield* settle(stored(job, "k", 3))
      expect(yield* Job.get(job, "k")).toBe(3)
    }).pipe(Effect.provide(Layer.merge(CacheStore.layerMemory({ capacity: 10 }), RefreshQueue.layerMemory({ concurrency: 1 })))))
})
