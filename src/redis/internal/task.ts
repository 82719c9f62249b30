import * as Headers from "@effect/platform/Headers"
import * as HttpTraceContext from "@effect/platform/HttpTraceContext"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Tracer from "effect/Tracer"
import { notJson, perSchema } from "../../internal/codec.js"
import { formatParseError as format } from "../../internal/describe.js"
import type * as Job from "../../Job.js"
import { maxStored } from "../../internal/duration.js"
import type { Policy, Task } from "../../RefreshQueue.js"
import { TaskDecodeError, TaskKeyError, TaskStoreError, UnknownJobError } from "../Errors.js"

/**
 * What a BullMQ task carries: the job's name, the cache key, the input encoded by the job's
 * input schema (absent for a job without input), the identity of the producer's store
 * (absent for a store that has none, an in-process one), the W3C `traceparent` of the
 * request that enqueued it (absent when it was not traced), and the lifetime and cache TTL
 * (ms) the producer's job gives the input (since 0.3; a worker of 0.2 ignores them and
 * stores with its own job's). Nothing else leaves the process.
 */
export interface TaskData {
  readonly job: string
  readonly key: string
  readonly input?: unknown
  readonly store?: string
  readonly traceparent?: string
  readonly lifetime?: number
  readonly cacheTtl?: number
}

/** The data of a task, or why it cannot leave the process. */
export const encode = (task: Task): Either.Either<TaskData, string> => {
  const parent = task.span === undefined ? undefined : traceparent(task.span)
  const envelope = {
    job: task.job,
    key: task.key,
    ...(task.store !== undefined ? { store: task.store } : {}),
    ...(parent !== undefined ? { traceparent: parent } : {}),
    ...(task.policy !== undefined ? { lifetime: task.policy.lifetime, cacheTtl: task.policy.cacheTtl } : {})
  }
  const schema = task.inputSchema
  if (schema === undefined) {
    if (task.input === undefined) return Either.right(envelope)
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
        ? Either.right({ ...envelope, input })
        : Either.left(`the encoded input is not JSON (${unsafe}); use an input schema that encodes to JSON`)
    }
  )
}

const w3cTraceId = /^[0-9a-f]{32}$/
const w3cSpanId = /^[0-9a-f]{16}$/

/**
 * The W3C trace context of a span (version 00), when its ids have W3C's form: Effect's own
 * tracer and OpenTelemetry make such ids; a span from another system may not.
 */
const traceparent = (span: Tracer.AnySpan): string | undefined =>
  w3cTraceId.test(span.traceId) && w3cSpanId.test(span.spanId)
    ? `00-${span.traceId}-${span.spanId}-${span.sampled ? "01" : "00"}`
    : undefined

/**
 * A task as a worker understands it: the job it belongs to, its decoded input, and the span
 * of the request that enqueued it, in another process (for the refresh's span to link to).
 */
export interface Decoded {
  readonly job: Job.Job.Any
  readonly key: string
  readonly input: unknown
  readonly requestSpan: Tracer.ExternalSpan | undefined
  /** The producer's lifetime and cache TTL, when the task carries them (within the limits of a job's). */
  readonly policy: Policy | undefined
}

/** What a worker runs: its jobs by name, and the identity of the store each job writes to. */
export interface Worker {
  readonly jobs: ReadonlyMap<string, Job.Job.Any>
  readonly stores: ReadonlyMap<string, string | undefined>
}

/**
 * Finds the job of a task by name, checks that the task comes from a producer on the store
 * the worker writes the job's entries to, decodes its input and checks its key.
 *
 * The envelope ignores fields it does not know, so that a newer producer's tasks still run
 * on an older worker; the input does not: an input field the worker's schema lacks would be
 * dropped, and the value of another input stored under the task's key. A `traceparent`
 * that does not parse is ignored too: tracing never costs a refresh.
 */
export const decode = (
  data: unknown,
  worker: Worker
): Either.Either<Decoded, UnknownJobError | TaskDecodeError | TaskKeyError | TaskStoreError> => {
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
  const { job: name, key, store } = record
  const requestSpan = typeof record.traceparent === "string"
    ? Option.getOrUndefined(HttpTraceContext.w3c(Headers.fromInput({ traceparent: record.traceparent })))
    : undefined
  if (store !== undefined && typeof store !== "string") {
    return Either.left(new TaskDecodeError({ job: name, key, reason: `its store is not a string but ${typeof store}` }))
  }
  const policy = policyOf(record)
  if (typeof policy === "string") return Either.left(new TaskDecodeError({ job: name, key, reason: policy }))
  const job = worker.jobs.get(name)
  if (job === undefined) return Either.left(new UnknownJobError({ job: name, key, known: Array.from(worker.jobs.keys()) }))
  const own = worker.stores.get(name)
  if (store !== own) return Either.left(new TaskStoreError({ job: name, key, producer: store, worker: own }))
  const schema = job.inputSchema
  if (schema === undefined) {
    return record.input === undefined
      ? checkKey(job, key, undefined, requestSpan, policy)
      : Either.left(new TaskDecodeError({ job: name, key, reason: "it has an input, and this worker's job has no input schema" }))
  }
  return Either.match(decoder(schema)(record.input), {
    onLeft: (error) => Either.left(new TaskDecodeError({ job: name, key, reason: `the input schema rejects its input: ${format(error)}` })),
    onRight: (input) => checkKey(job, key, input, requestSpan, policy)
  })
}

/** The key is the worker's own `job.key(input)`: a task never writes under a key its input does not have. */
const checkKey = (
  job: Job.Job.Any,
  key: string,
  input: unknown,
  requestSpan: Tracer.ExternalSpan | undefined,
  policy: Policy | undefined
): Either.Either<Decoded, TaskDecodeError | TaskKeyError> =>
  Either.match(job.key(input), {
    onLeft: (error) =>
      Either.left(new TaskDecodeError({ job: job.name, key, reason: `this worker's job cannot key its input: ${error.message}` })),
    onRight: (expected) =>
      expected === key ? Either.right({ job, key, input, requestSpan, policy }) : Either.left(new TaskKeyError({ job: job.name, key, expected }))
  })

/**
 * The producer's lifetime and cache TTL: both or neither (a task of 0.2 has neither), each
 * a number of milliseconds within what a job accepts; else why not.
 */
const policyOf = (record: Partial<Record<keyof TaskData, unknown>>): Policy | undefined | string => {
  const { cacheTtl, lifetime } = record
  if (lifetime === undefined && cacheTtl === undefined) return undefined
  const valid = (millis: unknown) => typeof millis === "number" && millis >= 0 && millis <= maxStored
  if (!valid(lifetime) || !valid(cacheTtl)) {
    return `its lifetime and cacheTtl are not both durations of 0 to 100 years in milliseconds (${String(lifetime)}, ${String(cacheTtl)})`
  }
  return { lifetime: lifetime as number, cacheTtl: cacheTtl as number }
}

const encoder = perSchema((schema) => Schema.encodeUnknownEither(schema))
const decoder = perSchema((schema) => Schema.decodeUnknownEither(schema, { onExcessProperty: "error" }))
