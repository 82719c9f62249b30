/**
 * A refresh queue for tests: it records tasks and runs nothing until the test says so
 * (`drain`, like rq's burst mode), so a test sees exactly what a read enqueued.
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { run } from "./internal/refresh.js"
import { RefreshQueue, type Task } from "./RefreshQueue.js"

/**
 * @since 0.1.0
 * @category tags
 */
export class TestRefreshQueue extends Context.Tag("effect-cacheback/TestRefreshQueue")<TestRefreshQueue, {
  readonly pending: Effect.Effect<ReadonlyArray<Task>>
  readonly drain: Effect.Effect<number>
  readonly failures: Effect.Effect<ReadonlyArray<Failure>>
}>() {}

/**
 * A task whose last attempt failed while draining, with why.
 *
 * @since 0.1.0
 * @category models
 */
export interface Failure {
  readonly job: string
  readonly key: string
  readonly cause: Cause.Cause<unknown>
}

/**
 * Provides `RefreshQueue` (what reads enqueue to) and `TestRefreshQueue` (what the test
 * inspects and drains). Enqueues of a key collapse while its task waits.
 *
 * `drain` never waits on the clock: a failing refresh's attempts run back to back, with
 * no backoff (a `TestClock` does not move while a test waits for `drain`), and a task
 * whose last attempt fails is recorded in `failures`.
 *
 * @example
 * ```ts
 * import { Effect, Layer, TestClock, TestContext } from "effect"
 * import { CacheStore, Job, TestRefreshQueue } from "effect-cacheback"
 *
 * const rates = Job.make({ name: "rates", fetch: () => Effect.succeed({ eur: 1.08 }) }).pipe(
 *   Job.withLifetime("1 minute")
 * )
 *
 * const program = Effect.gen(function*() {
 *   yield* Job.get(rates) // a miss: fetched
 *   yield* TestClock.adjust("2 minutes")
 *   const { status } = yield* Job.lookup(rates) // stale: answered at once, a refresh queued
 *   assert.strictEqual(status, "stale")
 *   assert.strictEqual((yield* TestRefreshQueue.pending).length, 1)
 *   assert.strictEqual(yield* TestRefreshQueue.drain, 1) // the test runs it now
 * })
 *
 * Effect.runPromise(program.pipe(
 *   Effect.provide(Layer.merge(CacheStore.layerMemory({ capacity: 100 }), TestRefreshQueue.layer)),
 *   Effect.provide(TestContext.TestContext)
 * ))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<RefreshQueue | TestRefreshQueue> = Layer.effectContext(
  Effect.sync(() => {
    let waiting: Array<Task> = []
    const failed: Array<Failure> = []
    const runTask = (task: Task) =>
      Effect.map(run(task, { backoff: false }), (outcome) => {
        if (outcome._tag === "Failed") failed.push({ job: task.job, key: task.key, cause: outcome.cause })
      })
    const drainOnce = Effect.suspend(() => {
      const batch = waiting
      waiting = []
      return Effect.as(Effect.forEach(batch, runTask, { discard: true }), batch.length)
    })
    const drain: Effect.Effect<number> = Effect.flatMap(
      drainOnce,
      (ran) => ran === 0 ? Effect.succeed(0) : Effect.map(drain, (more) => ran + more)
    )
    return Context.make(
      RefreshQueue,
      RefreshQueue.of({
        enqueue: (task) =>
          Effect.sync(() => {
            if (waiting.some((queued) => queued.key === task.key)) return "deduplicated" as const
            waiting.push(task)
            return "enqueued" as const
          })
      })
    ).pipe(
      Context.add(TestRefreshQueue, {
        pending: Effect.sync(() => waiting.slice()),
        drain,
        failures: Effect.sync(() => failed.slice())
      })
    )
  })
)

/**
 * The tasks waiting, oldest first.
 *
 * @since 0.1.0
 * @category accessors
 */
export const pending: Effect.Effect<ReadonlyArray<Task>, never, TestRefreshQueue> = Effect.flatMap(
  TestRefreshQueue,
  (queue) => queue.pending
)

/**
 * Runs every waiting task, and the tasks they enqueue, until none is left; returns how
 * many ran. A failing task's attempts run back to back, never waiting on the clock.
 *
 * @since 0.1.0
 * @category accessors
 */
export const drain: Effect.Effect<number, never, TestRefreshQueue> = Effect.flatMap(
  TestRefreshQueue,
  (queue) => queue.drain
)

/**
 * The tasks whose last attempt failed in a `drain`, oldest first.
 *
 * @since 0.1.0
 * @category accessors
 */
export const failures: Effect.Effect<ReadonlyArray<Failure>, never, TestRefreshQueue> = Effect.flatMap(
  TestRefreshQueue,
  (queue) => queue.failures
)
