import { describe, expect, it } from "@effect/vitest"
import { Cause, Context, Deferred, Effect, Exit, Fiber, Layer, Option, Ref, Scope, TestClock } from "effect"
import { RefreshQueue, TestRefreshQueue } from "effect-cacheback"

const task = (key: string, refresh: Effect.Effect<void, unknown>): RefreshQueue.Task => ({
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
      for (let i = 0; i < 10 && (yield* Ref.get(runs)) < 1; i++) yield* Effect.yieldNow()
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
      const queue = Context.get(context, RefreshQueue.RefreshQueue)
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

  it.scoped("the owed run uses the newest task, with its own input", () =>
    Effect.gen(function*() {
      const queue = yield* RefreshQueue.RefreshQueue
      const inputs: Array<unknown> = []
      const gate = yield* Deferred.make<void>()
      const first = { ...task("k", Effect.zipRight(Effect.sync(() => inputs.push("first")), Deferred.await(gate))), input: "first" }
      const second = { ...task("k", Effect.sync(() => void inputs.push("second"))), input: "second" }
      yield* queue.enqueue(first)
      yield* Effect.yieldNow()
      expect(yield* queue.enqueue(second)).toBe("enqueued")
      yield* Deferred.succeed(gate, undefined)
      for (let i = 0; i < 10 && inputs.length < 2; i++) yield* Effect.yieldNow()
      expect(inputs).toEqual(["first", "second"])
    }).pipe(Effect.provide(RefreshQueue.layerMemory({ concurrency: 1 }))))

  it.scoped("a refresh waiting to retry holds no slot: other keys go on", () =>
    Effect.gen(function*() {
      const queue = yield* RefreshQueue.RefreshQueue
      const ran: Array<string> = []
      const flaky = { ...task("flaky", Effect.zipRight(Effect.sync(() => ran.push("flaky")), Effect.fail("down"))), options: { attempts: 3, backoff: { type: "fixed" as const, delay: 10_000 } } }
      yield* queue.enqueue(flaky)
      for (let i = 0; i < 5 && ran.length < 1; i++) yield* Effect.yieldNow()
      yield* queue.enqueue(task("healthy", Effect.sync(() => void ran.push("healthy"))))
      for (let i = 0; i < 5 && ran.length < 2; i++) yield* Effect.yieldNow()
      expect(ran).toEqual(["flaky", "healthy"])
    }).pipe(Effect.provide(RefreshQueue.layerMemory({ concurrency: 1 }))))

  it.scoped("beyond its capacity an enqueue fails (the caller then refreshes synchronously)", () =>
    Effect.gen(function*() {
      const queue = yield* RefreshQueue.RefreshQueue
      yield* queue.enqueue(task("a", Effect.never))
      yield* queue.enqueue(task("b", Effect.never))
      const error = yield* Effect.flip(queue.enqueue(task("c", Effect.void)))
      expect(error.message).toMatch(/the refresh queue is full \(2 keys wait or run\)/)
    }).pipe(Effect.provide(RefreshQueue.layerMemory({ concurrency: 1, capacity: 2 }))))

  it.live("an enqueue interrupted at any step never leaves its key collapsed into nothing", () =>
    Effect.gen(function*() {
      const queue = yield* RefreshQueue.RefreshQueue
      for (const ops of [10, 11, 12, 16]) {
        for (let steps = 0; steps < 30; steps++) {
          const ran = yield* Deferred.make<void>()
          const key = `k${ops}-${steps}`
          const signal = task(key, Deferred.succeed(ran, undefined))
          const enqueuing = yield* Effect.fork(queue.enqueue(signal).pipe(Effect.withMaxOpsBeforeYield(ops)))
          for (let i = 0; i < steps; i++) yield* Effect.yieldNow()
          yield* Fiber.interrupt(enqueuing)
          // Whatever the interrupted enqueue left, after a second one a refresh of the key runs.
          yield* queue.enqueue(signal)
          expect(Option.isSome(yield* Effect.timeoutOption(Deferred.await(ran), "2 seconds")), key).toBe(true)
        }
      }
    }).pipe(Effect.scoped, Effect.provide(RefreshQueue.layerMemory({ concurrency: 4 }))))

  it.effect("a refresh queued from an uninterruptible region still stops when the layer closes", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(RefreshQueue.layerMemory({ concurrency: 1 }), scope)
      const queue = Context.get(context, RefreshQueue.RefreshQueue)
      const started = yield* Deferred.make<void>()
      const interrupted = yield* Deferred.make<void>()
      const hang = Effect.zipRight(Deferred.succeed(started, undefined), Effect.never).pipe(
        Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined))
      )
      yield* Effect.uninterruptible(queue.enqueue(task("k", hang)))
      yield* Deferred.await(started)
      yield* Scope.close(scope, Exit.void)
      // Closing returned, and the refresh was interrupted rather than left running.
      expect(yield* Deferred.isDone(interrupted)).toBe(true)
    }))

  it.scoped("collapsing into a waiting key keeps the newest task: its input runs", () =>
    Effect.gen(function*() {
      const queue = yield* RefreshQueue.RefreshQueue
      const inputs: Array<unknown> = []
      const blocker = yield* Deferred.make<void>()
      yield* queue.enqueue(task("busy", Deferred.await(blocker)))
      const record = (input: string) => ({ ...task("k", Effect.sync(() => void inputs.push(input))), input })
      expect(yield* queue.enqueue(record("older"))).toBe("enqueued")
      expect(yield* queue.enqueue(record("newer"))).toBe("deduplicated")
      yield* Deferred.succeed(blocker, undefined)
      for (let i = 0; i < 20 && inputs.length < 1; i++) yield* Effect.yieldNow()
      expect(inputs).toEqual(["newer"])
    }).pipe(Effect.provide(RefreshQueue.layerMemory({ concurrency: 1 }))))

  it.scoped("a backlog of 1,000 keys drains in enqueue order, `concurrency` at a time, in N × refresh / concurrency", () =>
    Effect.gen(function*() {
      const queue = yield* RefreshQueue.RefreshQueue
      const order: Array<string> = []
      let running = 0
      let peak = 0
      const refresh = (key: string) =>
        Effect.gen(function*() {
          peak = Math.max(peak, ++running)
          yield* Effect.sleep("1 millis")
          running--
          order.push(key)
        })
      const keys = Array.from({ length: 1_000 }, (_, i) => `k${i}`)
      for (const key of keys) expect(yield* queue.enqueue(task(key, refresh(key)))).toBe("enqueued")
      yield* TestClock.adjust("249 millis")
      expect(order.length).toBeLessThan(1_000)
      yield* TestClock.adjust("1 millis")
      expect(order.length).toBe(1_000)
      expect(peak).toBe(4)
      // Four at a time, each batch in enqueue order.
      expect(order.slice(0, 4).sort()).toEqual(["k0", "k1", "k2", "k3"])
      expect(order.slice(-4).sort()).toEqual(["k996", "k997", "k998", "k999"])
    }).pipe(Effect.provide(RefreshQueue.layerMemory({ concurrency: 4 }))))

  it("rejects a concurrency that is not a positive integer, at once", () => {
    expect(() => RefreshQueue.layerMemory({ concurrency: 0 })).toThrow(/expected concurrency to be a positive integer of at most 10,000, got 0/)
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

describe("TestRefreshQueue.layer", () => {
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
    }).pipe(Effect.provide(TestRefreshQueue.layer)))

  it.effect("drain never waits on the clock: a failing task's attempts run back to back, and failures are reported", () =>
    Effect.gen(function*() {
      const queue = yield* RefreshQueue.RefreshQueue
      let attempts = 0
      const failing = { ...task("down", Effect.suspend(() => Effect.fail(`attempt ${++attempts}`))), options: { attempts: 3 } }
      yield* queue.enqueue(failing)
      yield* queue.enqueue(task("fine", Effect.void))
      // Under TestClock, whose time never moves here: a backoff would wait forever.
      expect(yield* TestRefreshQueue.drain).toBe(2)
      expect(attempts).toBe(3)
      const failures = yield* TestRefreshQueue.failures
      expect(failures.map((failure) => [failure.job, failure.key])).toEqual([["queueTest", "down"]])
      expect(String(Cause.squash(failures[0]!.cause))).toMatch(/attempt 3/)
    }).pipe(Effect.provide(TestRefreshQueue.layer)))

  it.effect("drain also runs what the drained tasks enqueue (burst mode)", () =>
    Effect.gen(function*() {
      const queue = yield* RefreshQueue.RefreshQueue
      const chain = (n: number): Effect.Effect<void> =>
        n === 0 ? Effect.void : Effect.orDie(Effect.asVoid(queue.enqueue(task(`k${n}`, Effect.suspend(() => chain(n - 1))))))
      yield* chain(3)
      expect(yield* TestRefreshQueue.drain).toBe(3)
    }).pipe(Effect.provide(TestRefreshQueue.layer)))
})
