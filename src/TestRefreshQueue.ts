/**
 * The test kit of `RefreshQueue.layerTest`: see what is queued, and run it when the test
 * says so, like rq's burst mode.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type { Task } from "./RefreshQueue.js"

/**
 * @since 0.1.0
 * @category tags
 */
export class TestRefreshQueue extends Context.Tag("effect-cacheback/TestRefreshQueue")<TestRefreshQueue, {
  readonly pending: Effect.Effect<ReadonlyArray<Task>>
  readonly drain: Effect.Effect<number>
}>() {}

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
 * many ran.
 *
 * @since 0.1.0
 * @category accessors
 */
export const drain: Effect.Effect<number, never, TestRefreshQueue> = Effect.flatMap(
  TestRefreshQueue,
  (queue) => queue.drain
)
