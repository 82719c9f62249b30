/**
 * One attempt at a refresh task, as a worker runs it: find the task's job, decode its input
 * and check its key (`task.ts`), then `Job.refreshTask` in a `cacheback.refresh` span, counted
 * by outcome. BullMQ's worker calls it (`RefreshWorker.ts`), and so does the simulated queue
 * of `effect-cacheback/testing`, so that a simulated worker runs a task as a real one does.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import { describe } from "../../internal/describe.js"
import type { Throttle } from "../../internal/faults.js"
import * as Refresh from "../../internal/refresh.js"
import * as Job from "../../Job.js"
import * as TaskData from "./task.js"

/** Counted by `RefreshWorker.tasks`, which documents it. */
export const tasks: Metric.Metric.Counter<number> = Metric.counter("cacheback_worker_tasks", {
  description: "refresh tasks handled by workers, by outcome",
  incremental: true
})

const outcomes = {
  refreshed: Metric.tagged(tasks, "outcome", "refreshed"),
  retried: Metric.tagged(tasks, "outcome", "retried"),
  failed: Metric.tagged(tasks, "outcome", "failed"),
  rejected: Metric.tagged(tasks, "outcome", "rejected")
}

/** What an attempt reads of a delivered task: a BullMQ job is one. */
export interface Delivered {
  readonly id?: string | undefined
  readonly data: unknown
  readonly attemptsMade: number
  readonly opts: { readonly attempts?: number | undefined }
}

/** A worker's jobs and stores, and the throttle of its warnings about rejected tasks (its own). */
export interface Running extends TaskData.Worker {
  readonly rejections: Throttle
}

export type Failure = { readonly _tag: "Rejected"; readonly reason: string } | { readonly _tag: "Failed"; readonly reason: string }

/** One attempt at a task; `R` is what the worker's jobs require, which its runtime holds. */
export const handle = <R>(task: Delivered, worker: Running, queue: string): Effect.Effect<void, Failure, R> => {
  const decoded = TaskData.decode(task.data, worker)
  if (Either.isLeft(decoded)) {
    const error = decoded.left
    return Effect.zipRight(
      // Throttled per queue: a producer of another version can send thousands a second.
      Effect.zipRight(
        Metric.increment(outcomes.rejected),
        worker.rejections.warn(`rejected:${queue}`, `cacheback: refresh worker rejects a task: ${error.message}`, "rejected tasks")
      ),
      Effect.fail({ _tag: "Rejected", reason: error.message } as const)
    )
  }
  const { input, job, key, policy, requestSpan } = decoded.right
  const attempt = task.attemptsMade + 1
  // A task added without attempts has 0 (BullMQ runs it once).
  const attempts = Math.max(1, task.opts.attempts ?? 1)
  return Effect.gen(function*() {
    const began = yield* Clock.currentTimeMillis
    const exit = yield* Effect.exit(Job.refreshTask(job, input, key, policy))
    const millis = (yield* Clock.currentTimeMillis) - began
    if (Exit.isSuccess(exit)) {
      yield* Metric.increment(outcomes.refreshed)
      yield* Effect.logDebug(`cacheback: refreshed "${key}" of job "${job.name}" in ${millis} ms`).pipe(
        Effect.annotateLogs("cacheback.durationMs", millis)
      )
      return
    }
    if (Cause.isInterruptedOnly(exit.cause)) return yield* Effect.interrupt
    yield* Metric.increment(attempt >= attempts ? outcomes.failed : outcomes.retried)
    yield* Refresh.attemptFailed({ job: job.name, key }, exit.cause, attempt, attempts, "BullMQ retries it after its backoff")
    return yield* Effect.fail({ _tag: "Failed", reason: describe(Cause.squash(exit.cause)) } as const)
  }).pipe(
    Effect.annotateLogs({ "cacheback.job": job.name, "cacheback.key": key }),
    Effect.withSpan(Refresh.spanName, {
      attributes: {
        "cacheback.job": job.name,
        "cacheback.key": key,
        "cacheback.queue": queue,
        "cacheback.attempt": attempt,
        "bullmq.job_id": task.id
      },
      // As in-process: a trace of its own, linked to the request that asked for it, which
      // ran in another process and has long ended.
      root: true,
      links: requestSpan === undefined ? [] : [{ _tag: "SpanLink", span: requestSpan, attributes: {} }],
      captureStackTrace: false
    })
  )
}
