/**
 * Every typed error of effect-cacheback. Each has a `message` that says which input was
 * wrong, what was expected and what to do.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { describe } from "./internal/describe.js"

/**
 * An input that no stable key can be derived from: a function, a symbol, a cycle, a class
 * instance without an input schema.
 *
 * @since 0.1.0
 * @category errors
 */
export class KeyError extends Schema.TaggedError<KeyError>("effect-cacheback/KeyError")("KeyError", {
  job: Schema.String,
  path: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return this.path.startsWith("tags")
      ? `job "${this.job}": cannot tag the value at ${this.path}: ${this.reason}. Give Job.withTags a function that returns well-formed strings.`
      : `job "${this.job}": cannot derive a cache key from the input at ${this.path}: ${this.reason}. ` +
        `Give the job a key with Job.withKey((input) => string), or an input schema with Job.withSchema({ input }).`
  }
}

/**
 * A fetch that did not complete within its job's deadline (`Job.withFetchTimeout`, by
 * default the job's refresh timeout). It was interrupted, and its key is free again: the
 * next read starts a new fetch. Part of the error type of every operation that may fetch.
 *
 * @since 0.2.0
 * @category errors
 */
export class FetchTimeout extends Schema.TaggedError<FetchTimeout>("effect-cacheback/FetchTimeout")("FetchTimeout", {
  job: Schema.String,
  key: Schema.String,
  millis: Schema.Number
}) {
  override get message(): string {
    return `job "${this.job}": the fetch of "${this.key}" did not complete within ${this.millis} ms and was interrupted; ` +
      `the next read fetches again. Give the job a longer deadline with Job.withFetchTimeout(duration), or Duration.infinity for none.`
  }
}

/**
 * A cache backend that failed to answer. Reads through `Job.get` treat it as a miss; the
 * explicit store operations (`set`, `delete`, `rawGet`) report it.
 *
 * @since 0.1.0
 * @category errors
 */
export class StoreError extends Schema.TaggedError<StoreError>("effect-cacheback/StoreError")("StoreError", {
  operation: Schema.Literal("get", "getMany", "set", "delete", "invalidateTags"),
  key: Schema.String,
  cause: Schema.Defect
}) {
  override get message(): string {
    return `cache store ${this.operation} of "${this.key}" failed: ${describe(this.cause)}`
  }
}

/**
 * A value or an input that cannot cross a process boundary: no schema and not JSON-safe, or
 * a schema that rejects it.
 *
 * @since 0.1.0
 * @category errors
 */
export class CodecError extends Schema.TaggedError<CodecError>("effect-cacheback/CodecError")("CodecError", {
  key: Schema.String,
  direction: Schema.Literal("encode", "decode"),
  reason: Schema.String
}) {
  override get message(): string {
    return `cannot ${this.direction} the entry of "${this.key}": ${this.reason}`
  }
}

/**
 * A refresh that could not be put on the queue. `Job.get` and `Job.asyncRefresh` fall back
 * to a synchronous refresh.
 *
 * @since 0.1.0
 * @category errors
 */
export class EnqueueError extends Schema.TaggedError<EnqueueError>("effect-cacheback/EnqueueError")("EnqueueError", {
  job: Schema.String,
  key: Schema.String,
  reason: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  override get message(): string {
    return `job "${this.job}": cannot enqueue a refresh of "${this.key}": ${this.reason}`
  }
}
