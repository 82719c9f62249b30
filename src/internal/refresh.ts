/**
 * How a background refresh runs, wherever it runs: the in-process queues run a task's
 * attempts here, a `RefreshWorker` runs one attempt per BullMQ attempt; each attempt is a
 * `cacheback.refresh` span, and a failed one is reported the same way everywhere.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type { QueueOptions, Task } from "../RefreshQueue.js"
import * as Metrics from "./metrics.js"

/** Attempts of a job without queue options, the first included. */
export const defaultAttempts = 3

/** Backoff of a job without queue options: exponential from 1 second. */
export const defaultBackoff = { type: "exponential", delay: 1000 } as const

/** The span of one attempt at a refresh. */
export const spanName = "cacheback.refresh"

/** How many attempts a task gets, the first included. */
export const attemptsOf = (options: QueueOptions): number => options.attempts ?? defaultAttempts

/** The wait after the `failed`-th attempt: fixed, or doubling from the first delay. */
export const backoff = (options: QueueOptions, failed: number): number => {
  const { delay, type } = options.backoff ?? defaultBackoff
  return type === "fixed" ? delay : delay * 2 ** (failed - 1)
}

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

/** How an attempt ended: done, or failed with its cause (already reported). */
export type Outcome = { readonly _tag: "Done" } | { readonly _tag: "Failed"; readonly cause: Cause.Cause<unknown> }

const done: Outcome = { _tag: "Done" }

/**
 * The `attempt`-th attempt at a task in this process. A failure is reported, and the entry
 * stays as it was; an interruption goes on being one.
 */
export const attempt = (task: Task, attempt: number, retry: string): Effect.Effect<Outcome> =>
  task.refresh.pipe(
    Effect.as(done),
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.failCause(cause as Cause.Cause<never>)
        : Effect.as(attemptFailed(task, cause, attempt, attemptsOf(task.options), retry), { _tag: "Failed", cause } as const)
    ),
    Effect.withSpan(spanName, {
      attributes: { "cacheback.job": task.job, "cacheback.key": task.key, "cacheback.attempt": attempt },
      // A trace of its own, linked to the request that asked for it (long ended by now).
      root: true,
      links: task.span === undefined ? [] : [{ _tag: "SpanLink", span: task.span, attributes: {} }],
      // The library's own frames say nothing to a user, and capturing them costs per task.
      captureStackTrace: false
    })
  )

/**
 * Runs a task's attempts one after another: after a failed one, waits its backoff on the
 * `Clock` (or, with `backoff: false`, goes on at once, as a test queue does so that a test
 * clock that never moves cannot hold it). Answers how the last attempt ended.
 */
export const run = (task: Task, options: { readonly backoff: boolean }): Effect.Effect<Outcome> => {
  const attempts = attemptsOf(task.options)
  const retry = options.backoff ? "retrying after its backoff" : "retrying at once"
  const loop = (n: number): Effect.Effect<Outcome> =>
    Effect.flatMap(attempt(task, n, retry), (outcome) => {
      if (outcome._tag === "Done" || n >= attempts) return Effect.succeed(outcome)
      return options.backoff ? Effect.zipRight(Effect.sleep(backoff(task.options, n)), loop(n + 1)) : loop(n + 1)
    })
  return loop(1)
}
