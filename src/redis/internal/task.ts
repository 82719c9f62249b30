import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { notJson, perSchema } from "../../internal/codec.js"
import { formatParseError as format } from "../../internal/describe.js"
import type * as Job from "../../Job.js"
import type { Task } from "../../RefreshQueue.js"
import { TaskDecodeError, UnknownJobError } from "../Errors.js"

/**
 * What a BullMQ task carries: the job's name, the cache key, and the input encoded by the
 * job's input schema (absent for a job without input). Nothing else leaves the process.
 */
export interface TaskData {
  readonly job: string
  readonly key: string
  readonly input?: unknown
}

/** The data of a task, or why it cannot leave the process. */
export const encode = (task: Task): Either.Either<TaskData, string> => {
  const schema = task.inputSchema
  if (schema === undefined) {
    if (task.input === undefined) return Either.right({ job: task.job, key: task.key })
    return Either.left(
      "the job has no input schema, and a BullMQ task carries its input to a worker in another process; " +
        "add one with Job.withSchema({ input })"
    )
  }
  return Either.flatMap(
    Either.mapLeft(encoder(schema)(task.input), (error) => `the input schema rejects the input: ${format(error)}`),
    (input) => {
      const unsafe = notJson(input)
      return unsafe === undefined
        ? Either.right({ job: task.job, key: task.key, input })
        : Either.left(`the encoded input is not JSON (${unsafe}); use an input schema that encodes to JSON`)
    }
  )
}

/** A task as a worker understands it: the job it belongs to and its decoded input. */
export interface Decoded {
  readonly job: Job.Job.Any
  readonly key: string
  readonly input: unknown
}

/** Finds the job of a task by name and decodes its input. */
export const decode = (
  data: unknown,
  jobs: ReadonlyMap<string, Job.Job.Any>
): Either.Either<Decoded, UnknownJobError | TaskDecodeError> => {
  const record = data as Partial<Record<keyof TaskData, unknown>> | null
  if (typeof record !== "object" || record === null || typeof record.job !== "string" || typeof record.key !== "string") {
    return Either.left(
      new TaskDecodeError({
        job: typeof record?.job === "string" ? record.job : "?",
        key: typeof record?.key === "string" ? record.key : "?",
        reason: "its data is not { job, key, input } (was it enqueued by BullRefreshQueue?)"
      })
    )
  }
  const { job: name, key } = record
  const job = jobs.get(name)
  if (job === undefined) return Either.left(new UnknownJobError({ job: name, key, known: Array.from(jobs.keys()) }))
  const schema = job.inputSchema
  if (schema === undefined) {
    return record.input === undefined
      ? Either.right({ job, key, input: undefined })
      : Either.left(new TaskDecodeError({ job: name, key, reason: "it has an input, and this worker's job has no input schema" }))
  }
  return Either.match(decoder(schema)(record.input), {
    onLeft: (error) => Either.left(new TaskDecodeError({ job: name, key, reason: `the input schema rejects its input: ${format(error)}` })),
    onRight: (input) => Either.right({ job, key, input })
  })
}

const encoder = perSchema((schema) => Schema.encodeUnknownEither(schema))
const decoder = perSchema((schema) => Schema.decodeUnknownEither(schema))
