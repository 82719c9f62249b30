/**
 * Every fetch has a deadline (`Job.withFetchTimeout`, by default the refresh
 * timeout). A fetch that never completes frees its key at the deadline, fails its callers
 * with a typed `FetchTimeout`, and never stops a queue.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Layer, Metric, TestClock } from "effect"
import { CacheStore, FetchTimeout, Job, RefreshQueue, TestRefreshQueue } from "effect-cacheback"
import { captureLogs } from "./support/kit.js"

/** A fetch that hangs while `hang` says so, and counts its calls. */
const hanging = () => {
  const state = { hang: true, calls: 0 }
  return {
    state,
    fetch: (input: string) => Effect.suspend(() => (++state.calls, state.hang ? Effect.never : Effect.succeed(`${input}#${state.calls}`)))
  }
}

const count = (counter: Metric.Metric.Counter<number>) => Effect.map(Metric.value(counter), (state) => state.count)

const memory = CacheStore.layerMemory({ capacity: 100 })

describe("Job.withFetchTimeout", () => {
  it.effect("a hung synchronous fetch fails its callers with FetchTimeout at the refresh timeout, and frees the key", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const h = hanging()
      const job = Job.make({ name: "hungSync", fetch: h.fetch })
      const first = yield* Effect.fork(Effect.either(Job.get(job, "k")))
      yield* TestClock.adjust("30 seconds")
      // A read while the fetch hangs joins it: still one fetch.
      const joined = yield* Effect.fork(Effect.either(Job.get(job, "k")))
      yield* TestClock.adjust("29 seconds")
      expect(first.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 second")
      const [a, b] = [yield* Fiber.join(first), yield* Fiber.join(joined)]
      expect(a._tag === "Left" && a.left).toBeInstanceOf(FetchTimeout)
      expect(b._tag === "Left" && b.left).toBeInstanceOf(FetchTimeout)
      expect(h.state.calls).toBe(1)
      expect(yield* count(Job.metrics(job).fetchTimeouts)).toBe(1)
      expect(logs.lines.some((line) => line.startsWith("WARN") && line.includes("Job.withFetchTimeout"))).toBe(true)
      // The key is free: the next read fetches again, and succeeds now.
      h.state.hang = false
      expect(yield* Job.get(job, "k")).toBe("k#2")
    }).pipe(Effect.provide(Layer.mergeAll(memory, TestRefreshQueue.layer, logs.layer)))
  })

  it.effect("its message names the job, the key, the deadline and what to do", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "hungMessage", fetch: hanging().fetch }).pipe(Job.withFetchTimeout("2 seconds"))
      const fiber = yield* Effect.fork(Effect.flip(Job.get(job, "k")))
      yield* TestClock.adjust("2 seconds")
      const error = yield* Fiber.join(fiber)
      expect(error).toBeInstanceOf(FetchTimeout)
      expect(error.message).toMatch(/job "hungMessage": the fetch of "hungMessage:.*" did not complete within 2000 ms/)
      expect(error.message).toMatch(/Job\.withFetchTimeout\(duration\), or Duration\.infinity/)
    }).pipe(Effect.provide(Layer.merge(memory, TestRefreshQueue.layer))))

  it.effect("a deadline per input; Duration.infinity turns it off", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "perInputDeadline", fetch: hanging().fetch }).pipe(
        Job.withFetchTimeout((input: string) => input === "slow" ? Duration.infinity : Duration.seconds(1))
      )
      const fast = yield* Effect.fork(Effect.exit(Job.get(job, "fast")))
      const slow = yield* Effect.fork(Effect.exit(Job.get(job, "slow")))
      yield* TestClock.adjust("1 hour")
      expect(Exit.isFailure(yield* Fiber.join(fast))).toBe(true)
      expect(slow.unsafePoll()).toBeNull()
      yield* Fiber.interrupt(slow)
    }).pipe(Effect.provide(Layer.merge(memory, TestRefreshQueue.layer))))

  it("throws at once for a negative deadline, naming the combinator; Job.cached takes fetchTimeout", () => {
    const job = Job.make({ name: "badDeadline", fetch: (_: string) => Effect.succeed(1) })
    expect(() => Job.withFetchTimeout(job, -1)).toThrow(/Job\.withFetchTimeout: expected a non-negative duration/)
    const cached = Job.cached("cachedDeadline", (_: string) => Effect.succeed(1), { fetchTimeout: "3 seconds" })
    expect(Duration.toMillis(cached.job.fetchTimeout!("x"))).toBe(3_000)
  })

  it.scoped("four hung background refreshes do not stop the memory queue (concurrency 4): each is interrupted at its deadline and retried", () =>
    Effect.gen(function*() {
      const h = hanging()
      const hung = Job.make({ name: "hungBackground", fetch: h.fetch }).pipe(
        Job.withFetchTimeout("5 seconds"),
        Job.withQueueOptions({ attempts: 2, backoff: { type: "fixed", delay: "1 second" } })
      )
      let healthyCalls = 0
      const healthy = Job.make({ name: "healthyBackground", fetch: (input: string) => Effect.sync(() => `${input}#${++healthyCalls}`) })
      for (const key of ["a", "b", "c", "d"]) yield* Job.asyncRefresh(hung, key)
      yield* Job.asyncRefresh(healthy, "x")
      yield* TestClock.adjust("1 second")
      expect(healthyCalls).toBe(0) // four workers hang
      yield* TestClock.adjust("4 seconds") // the deadline: the four are interrupted, freeing their workers
      for (let i = 0; i < 20 && healthyCalls === 0; i++) yield* Effect.yieldNow()
      expect(healthyCalls).toBe(1)
      expect(h.state.calls).toBe(4)
      yield* TestClock.adjust("1 second") // backoff: the second attempts start
      for (let i = 0; i < 20 && h.state.calls < 8; i++) yield* Effect.yieldNow()
      expect(h.state.calls).toBe(8)
      yield* TestClock.adjust("5 seconds")
      for (let i = 0; i < 20 && (yield* count(Job.metrics(hung).refreshFailures)) < 4; i++) yield* Effect.yieldNow()
      expect(yield* count(Job.metrics(hung).refreshFailures)).toBe(4)
      expect(yield* count(Job.metrics(hung).fetchTimeouts)).toBe(8)
    }).pipe(Effect.provide(Layer.merge(memory, RefreshQueue.layerMemory({ concurrency: 4 })))))

  it.effect("TestRefreshQueue.drain returns for a hung refresh: its attempts time out back to back", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "hungDrain", fetch: hanging().fetch }).pipe(
        Job.withFetchTimeout("1 second"),
        Job.withQueueOptions({ attempts: 2 })
      )
      yield* Job.asyncRefresh(job, "k")
      const drained = yield* Effect.fork(TestRefreshQueue.drain)
      yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(drained)).toBe(1)
      const [failure] = yield* TestRefreshQueue.failures
      expect(failure?.key).toMatch(/^hungDrain:/)
    }).pipe(Effect.provide(Layer.merge(memory, TestRefreshQueue.layer))))

  it.effect("layerInline: a hung refresh is interrupted at its deadline", () =>
    Effect.gen(function*() {
      const h = hanging()
      const job = Job.make({ name: "hungInline", fetch: h.fetch }).pipe(
        Job.withFetchTimeout("1 second"),
        Job.withQueueOptions({ attempts: 1 })
      )
      const refresh = yield* Effect.fork(Job.asyncRefresh(job, "k"))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(refresh)
      expect(h.state.calls).toBe(1)
      expect(yield* count(Job.metrics(job).refreshFailures)).toBe(1)
    }).pipe(Effect.provide(Layer.merge(memory, RefreshQueue.layerInline))))
})
