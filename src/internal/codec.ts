import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as Entry from "../Entry.js"
import { formatParseError as format } from "./describe.js"
import { bump, decodeErrorsFor } from "./metrics.js"
import { className, isPlainObject } from "./plainObject.js"

/**
 * Turns entries into JSON values and back, for the stores whose entries leave the process
 * (key-value store, Redis). With a value schema the value goes through it; without one the
 * value must be JSON-safe already, and anything else is refused at write time rather than
 * coming back as something else.
 */
export interface EntryCodec<A> {
  readonly encode: (entry: Entry.Entry<A>) => Either.Either<unknown, string>
  readonly decode: (json: unknown) => Either.Either<Entry.Entry<A>, string>
}

/**
 * A schema's value encoded as the JSON the stores and queues carry. Its encoded side is
 * whatever the user's schema encodes to: `Schema` is invariant in it, so only `any` admits
 * every schema here; what comes out is checked to be JSON by `notJson`.
 */
export type SchemaOf<A> = Schema.Schema<A, any, never>

/**
 * What is derived from a schema (a compiled codec) computed once per schema object: a
 * job's schema is made once and read on every hit.
 */
export const perSchema = <V>(make: (schema: Schema.Schema.AnyNoContext) => V): (schema: Schema.Schema.AnyNoContext) => V => {
  const made = new WeakMap<object, V>()
  return (schema) => {
    let value = made.get(schema)
    if (value === undefined) {
      value = make(schema)
      made.set(schema, value)
    }
    return value
  }
}

export const forSchema = <A>(schema: SchemaOf<A> | undefined): EntryCodec<A> =>
  schema === undefined ? plain as EntryCodec<A> : schemaCodec(schema) as EntryCodec<A>

const schemaCodec = perSchema((schema): EntryCodec<unknown> => {
  const entrySchema = Entry.schema(schema)
  const encode = Schema.encodeEither(entrySchema)
  const decode = Schema.decodeUnknownEither(entrySchema)
  return {
    encode: (entry) =>
      Either.flatMap(
        Either.mapLeft(encode(entry), (error) => `the value schema rejects it: ${format(error)}`),
        (json) => {
          const unsafe = notJsonValue(json)
          return unsafe === undefined ? Either.right(json) : Either.left(`the encoded value is not JSON: ${unsafe}`)
        }
      ),
    decode: (json) =>
      Either.mapLeft(decode(withValue(json)), (error) => `it does not match the value schema: ${format(error)}`)
  }
})

/**
 * An entry's value may be `undefined` (cacheback caches `None`), which JSON leaves out: it
 * is written without its `value` field, and such an entry reads back with `value:
 * undefined`. Anything else that JSON would change is refused.
 */
const notJsonValue = (entry: unknown): string | undefined => {
  const { value, ...rest } = entry as Record<string, unknown>
  return value === undefined ? notJson(rest, "$") : notJson(entry, "$")
}

const withValue = (json: unknown): unknown => {
  const entry = json as Record<string, unknown> | null
  return typeof entry === "object" && entry !== null && entry._tag === "Value" && !("value" in entry)
    ? { ...entry, value: undefined }
    : json
}

const plain: EntryCodec<unknown> = {
  encode: (entry) => {
    if (entry._tag !== "Value") return Either.right(entry)
    const unsafe = entry.value === undefined ? undefined : notJson(entry.value, "$")
    return unsafe === undefined
      ? Either.right(entry)
      : Either.left(`the value is not JSON-safe (${unsafe}); give the job a value schema with Job.withSchema({ value })`)
  },
  decode: (json) => decodeShape(json)
}

/**
 * The entry a parsed JSON value is, once its shape is checked (a tag, its times, `value`
 * set when JSON left it out): the parsed object itself, no copy on the hit path. Its value
 * is not checked: the Redis store decodes it through the value schema after this.
 */
export const decodeShape = (json: unknown): Either.Either<Entry.Entry<unknown>, string> => {
  const entry = json as Record<string, unknown> | null
  if (typeof entry === "object" && entry !== null && typeof entry.expiresAt === "number") {
    if (entry._tag === "Pending") return Either.right(entry as unknown as Entry.Pending)
    if (entry._tag === "Tombstone" && typeof entry.token === "string") return Either.right(entry as unknown as Entry.Tombstone)
    if (entry._tag === "Value" && typeof entry.fetchedAt === "number") {
      if (!("value" in entry)) entry.value = undefined
      return Either.right(entry as unknown as Entry.Value<unknown>)
    }
  }
  return notAnEntry
}

export const notAnEntry = Either.left("it is not an entry written by effect-cacheback")

/**
 * Where a value stops being JSON that parses back to itself (`$.at is an instance of
 * Date`), or `undefined` when it is. Stores and task queues refuse such a value when it is
 * written, rather than have it come back as something else.
 */
export const notJson = (value: unknown, path: string = "$"): string | undefined => {
  switch (typeof value) {
    case "string":
    case "boolean":
      return undefined
    case "number":
      return Number.isFinite(value) ? undefined : `${path} is ${value}`
    case "object": {
      if (value === null) return undefined
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          const inner = notJson(value[i], `${path}[${i}]`)
          if (inner !== undefined) return inner
        }
        return undefined
      }
      if (!isPlainObject(value)) return `${path} is an instance of ${className(value)}`
      for (const [key, inner] of Object.entries(value)) {
        const found = notJson(inner, `${path}.${key}`)
        if (found !== undefined) return found
      }
      return undefined
    }
    default:
      return `${path} is ${typeof value === "bigint" ? "a bigint" : typeof value === "undefined" ? "undefined" : `a ${typeof value}`}`
  }
}

/**
 * An entry that does not decode counts as a miss (the next refresh overwrites it); say so
 * once in the log and count it, tagged by store.
 */
export const reportCorrupt = (store: string, key: string, reason: string): Effect.Effect<void> =>
  Effect.zipRight(
    Effect.sync(() => bump(decodeErrorsFor(store))),
    Effect.logWarning(`cacheback: the entry of "${key}" in the ${store} store does not decode and counts as a miss: ${reason}`)
  )
