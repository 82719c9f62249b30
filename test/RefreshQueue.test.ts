import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Layer, Ref, Scope, TestClock } from "effect"
import { RefreshQueue, TestRefreshQueue } from "effect-cacheback"

const task = (key: string, refresh: Effect.Effect<void>): RefreshQueue.Task => ({
  job: "queueTest",
  key,
  input: key,
  inputSchema: undefined,
  options: {},
  refresh
})

describe("RefreshQueue.layerMemory", () => {
  it.scoped("runs refreshes in the background, at most `concurrency` at once", () =>
    Effect.gen(function*() {
      const queue = yield* RefreshQueue.RefreshQueue
      const running = yield* Ref.make(0)
      const peak = yield* Ref.make(0)
      const done = yield* Ref.make(0)
      const work = Effect.gen(function*() {
        const now = yield* Ref.updateAndGet(running, (n) => n + 1)
        yield* Ref.update(peak, (p) => Math.max(p, now))
        yield* Effect.sleep("1 second")
        yield* Ref.update(running, (n) => n - 1)
        yield* Ref.update(done, (n) => n + 1)
      })
      for (let i = 0; i < 5; i++) expect(yield* queue.enqueue(task(`k${i}`, work))).toBe("enqueued")
      expect(yield* Ref.get(done)).toBe(0)
      for (let i = 0; i < 3; i++) yield* TestClock.adjust("1 second")
      expect(yield* Ref.get(done)).toBe(5)
      expect(yield* Ref.get(peak)).toBe(2)
    }).pipe(Effect.provide(RefreshQueue.layerMemory({ concurrency: 2 }))))

  it.scoped("collapses enqueues of a key while its task waits; one more may wait while it runs", () =>
    Effect.gen(function*() {
      const queue = yield* RefreshQueue.RefreshQueue
      const runs = yield* Ref.make(0)
      const blocker = yield* Deferred.make<void>()
      yield* queue.enqueue(task("busy", Deferred.await(blocker)))
      const refresh = Effect.zipRight(Ref.update(runs, (n) => n + 1), Effect.sleep("1 second"))
      expect(yield* queue.enqueue(task("k", refresh))).toBe("enqueued")
      expect(yield* queue.enqueue(task("k", refresh))).toBe("deduplicated")
      yield* Deferred.succeed(blocker, undefined)
      yield* Effect.yieldNow()
      expect(yield* Ref.get(runs)).toBe(1)
      expect(yield* queue.enqueue(task("k", refresh))).toBe("enqueued")
      expect(yield* queue.enqueue(task("k", refresh))).toBe("deduplicated")
      yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("1 second")
      expect(yield* Ref.get(runs)).toBe(2)
      expect(yield* queue.enqueue(task("k", refresh))).toBe("enqueued")
    }).pipe(Effect.provide(RefreshQueue.layerMemory({ concurrency: 1 }))))

  it.effect("closing the layer's scope interrupts running refreshes; later enqueues fail", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(RefreshQueue.layerMemory({ concurrency: 1 }), scope)
      const queue = context.pipe((ctx) => ctx.unsafeMap.get(RefreshQueue.RefreshQueue.key) as RefreshQueue.Service)
      const interrupted = yield* Deferred.make<void>()
      const started = yield* Deferred.make<void>()
      yield* queue.enqueue(task("k", Deferred.succeed(started, undefined).pipe(
        Effect.zipRight(Effect.never),
        Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined))
      )))
      yield* Deferred.await(started)
      yield* Scope.close(scope, Exit.void)
      yield* Deferred.await(interrupted)
      const error = yield* Effect.flip(queue.enqueue(task("k", Effect.void)))
      expect(error.message).toMatch(/the refresh queue is shut down/)
    }))

  it("rejects a concurrency that is not a positive integer, at once", () => {
    expect(() => RefreshQueue.layerMemory({ concurrency: 0 })).toThrow(/expected a positive integer concurrency, got 0/)
  })
})

describe("RefreshQueue.layerInline", () => {
  it.effect("the refresh has run when enqueue returns", () =>
    Effect.gen(function*() {
      const queue = yield* RefreshQueue.RefreshQueue
      const ran = yield* Ref.make(false)
      yield* queue.enqueue(task("k", Ref.set(ran, true)))
      expect(yield* Ref.get(ran)).toBe(true)
    }).pipe(Effect.provide(RefreshQueue.layerInline)))
})

describe("RefreshQueue.layerTest", () => {
  it.effect("records tasks, collapses a waiting key, runs nothing until drained", () =>
    Effect.gen(function*() {
      const queue = yield* RefreshQueue.RefreshQueue
      const ran = yield* Ref.make<Array<string>>([])
      const record = (key: string) => Ref.update(ran, (keys) => [...keys, key])
      yield* queue.enqueue(task("a", record("a")))
      expect(yield* queue.enqueue(task("a", record("a")))).toBe("deduplicated")
      yield* queue.enqueue(task("b", record("b")))
      expect((yield* TestRefreshQueue.pending).map((t) => t.key)).toEqual(["a", "b"])
      expect(yield* Ref.get(ran)).toEqual([])
      expect(yield* TestRefreshQueue.drain).toBe(2)
      expect(yield* Ref.get(ran)).toEqual(["a", "b"])
      expect(yield* TestRefreshQueue.pending).toEqual([])
    }).pipe(Effect.provide(RefreshQueue.layerTest)))

  it.effect("drain also runs what the drained tasks enqueue (burst mode)", () =>
    Effect.gen(function*() {
      const queue = yield* RefreshQueue.RefreshQueue
      const chain = (n: number): Effect.Effect<void> =>
        n === 0 ? Effect.void : Effect.orDie(Effect.asVoid(queue.enqueue(task(`k${n}`, Effect.suspend(() => chain(n - 1))))))
      yield* chain(3)
      expect(yield* TestRefreshQueue.drain).toBe(3)
    }).pipe(Effect.provide(RefreshQueue.layerTest)))
})
