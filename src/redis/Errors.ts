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
 * accept (a producer and a worker running different versions of the job, for instance: an
 * input field the worker's schema does not know is refused, never dropped).
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

/**
 * A task whose key is not the worker's `job.key(input)`: the job's keying changed between
 * the producer's version and the worker's, or the task was forged. Refreshing it would store
 * the value of its input under a key that input does not have.
 *
 * @since 0.2.0
 * @category errors
 */
export class TaskKeyError extends Schema.TaggedError<TaskKeyError>("effect-cacheback/TaskKeyError")(
  "TaskKeyError",
  {
    job: Schema.String,
    key: Schema.String,
    expected: Schema.String
  }
) {
  override get message(): string {
    return `the task of job "${this.job}" has key "${this.key}", but this worker keys its input as "${this.expected}"; ` +
      `producers and workers must run the same version of the job (its key function and input schema)`
  }
}

/**
 * A task from a producer whose store is not the one the worker writes the job's entries to
 * (another Redis prefix, or an in-process store on either side): what the worker refreshed
 * would never be read by the producer. Stores are compared by `CacheStore.Service.identity`.
 *
 * @since 0.2.0
 * @category errors
 */
export class TaskStoreError extends Schema.TaggedError<TaskStoreError>("effect-cacheback/TaskStoreError")(
  "TaskStoreError",
  {
    job: Schema.String,
    key: Schema.String,
    producer: Schema.optional(Schema.String),
    worker: Schema.optional(Schema.String)
  }
) {
  override get message(): string {
    const producer = this.producer === undefined
      ? "no shared store (an in-process one, or a version of effect-cacheback whose tasks do not name their store)"
      : `the store "${this.producer}"`
    const worker = this.worker === undefined ? "an in-process store" : `the store "${this.worker}"`
    return `the task of job "${this.job}" (key "${this.key}") comes from a producer on ${producer}, and this worker ` +
      `writes the job's entries to ${worker}, which that producer never reads; give the worker the producer's store ` +
      `(the same RedisCacheStore prefix), or give the job a queue of its own (Job.withQueueOptions({ queue })) ` +
      `consumed by workers on that store`
  }
}
