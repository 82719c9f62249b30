/**
 * Why a worker refused a task without running it. Such a task is failed at once (no retry:
 * another attempt would meet the same problem) and kept in BullMQ's failed set with this
 * message as its reason.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * A task for a job this worker was not given.
 *
 * @since 0.1.0
 * @category errors
 */
export class UnknownJobError extends Schema.TaggedError<UnknownJobError>("effect-cacheback/UnknownJobError")(
  "UnknownJobError",
  {
    job: Schema.String,
    key: Schema.String,
    known: Schema.Array(Schema.String)
  }
) {
  override get message(): string {
    return `a task for job "${this.job}" (key "${this.key}") reached a worker that runs only ` +
      `${this.known.map((name) => `"${name}"`).join(", ")}; pass that job to RefreshWorker.run({ jobs }) ` +
      `or route it to another queue with Job.withQueueOptions({ queue })`
  }
}

/**
 * A task whose data is not a cacheback task, or whose input the job's input schema does not
 * accept (a producer and a worker running different versions of the job, for instance).
 *
 * @since 0.1.0
 * @category errors
 */
export class TaskDecodeError extends Schema.TaggedError<TaskDecodeError>("effect-cacheback/TaskDecodeError")(
  "TaskDecodeError",
  {
    job: Schema.String,
    key: Schema.String,
    reason: Schema.String
  }
) {
  override get message(): string {
    return `cannot decode the task of job "${this.job}" (key "${this.key}"): ${this.reason}; ` +
      `producers and workers must run the same version of the job and its input schema`
  }
}
