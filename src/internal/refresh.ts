/**
 * How a background refresh runs, wherever it runs: the in-process queues run a task's
 * attempts here, a `RefreshWorker` runs one attempt per BullMQ attempt; both trace it as
 * `cacheback.refresh` and report a failed attempt the same way.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type { QueueOptions, Task } from "../RefreshQueue.js"
import * as Metrics from "./metrics.js"

/** Attempts of a job without queue options, the first included. */
export const defaultAttempts = 3

/** Backoff of a job without queue options: exponential from 1 second. */
export const defaultBackoff = { type: "exponential", delay: 1000 } as const

/** The span of one refresh (in-process: all its attempts; a worker: one attempt). */
export const spanName = "cacheback.refresh"

/**
 * A failed attempt, logged; counted in the job's `refreshFailures` when it was the last.
 * `retry` says what happens next otherwise.
 */
export const attemptFailed = (
  task: { readonly job: string; readonly key: string },
  cause: Cause.Cause<unknown>,
  attempt: number,
  attempts: number,
  retry: string
): Effect.Effect<void> => {
  const last = attempt >= attempts
  return Effect.zipRight(
    Effect.sync(() => last && Metrics.bump(Metrics.forJob(task.job).refreshFailures)),
    Effect.logWarning(
      `cacheback: the refresh of "${task.key}" of job "${task.job}" failed (attempt ${attempt} of ${attempts}); ` +
        (last ? "giving up, the entry stays as it was" : retry),
      cause
    )
  )
}

/**
 * Runs a task in this process: `attempt` (the task's refresh, perhaps under a permit) up to
 * the task's attempts, sleeping the backoff between them outside `attempt`. A failure after
 * the last attempt, or a defect, leaves the entry as it was; an interruption goes on being
 * one.
 */
export const run = (
  task: Task,
  attempt: (refresh: Effect.Effect<void, unknown>) => Effect.Effect<void, unknown> = (refresh) => refresh
): Effect.Effect<void> => {
  const attempts = task.options.attempts ?? defaultAttempts
  const loop = (n: number): Effect.Effect<void> =>
    Effect.catchAllCause(attempt(task.refresh), (cause) => {
      if (Cause.isInterruptedOnly(cause)) return Effect.interrupt
      const reported = attemptFailed(task, cause, n, attempts, "retrying after its backoff")
      return n >= attempts
        ? reported
        : Effect.zipRight(Effect.zipRight(reported, Effect.sleep(backoff(task.options, n))), loop(n + 1))
    })
  return loop(1).pipe(
    Effect.withSpan(spanName, { attributes: { "cacheback.job": task.job, "cacheback.key": task.key } })
  )
}

/** The wait after the `failed`-th attempt: fixed, or doubling from the first delay. */
const backoff = (options: QueueOptions, failed: number): number => {
  const { delay, type } = options.backoff ?? defaultBackoff
  return type === "fixed" ? delay : delay * 2 ** (failed - 1)
}
