/**
 * The text of an entry in Redis: `v2|<token>|<JSON of the encoded entry>` (DESIGN.md §5.2).
 * The token is the entry's write token (`Entry.token`, base-36, never a `|`; empty for an
 * entry without one): what the compare-and-set script (`scripts.ts`) compares, reading only
 * the first bytes of the entry (`GETRANGE`), never decoding a value inside Redis.
 *
 * Older texts still read, as entries without a token: `v1|<fetchedAt or p>|<JSON>` (0.2) and
 * the JSON alone (0.1).
 */
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as Option from "effect/Option"
import * as Entry from "../../Entry.js"
import { decodeShape, notAnEntry, perSchema, type SchemaOf } from "../../internal/codec.js"
import { formatParseError } from "../../internal/describe.js"
import { compile } from "../../internal/exactCheck.js"
import { isPlainObject } from "../../internal/plainObject.js"

const version = "v2|"

/** The text stored for `entry`, whose encoded form is `json`. */
export const text = (entry: Entry.Entry<unknown>, json: unknown): string =>
  version + (entry.token ?? "") + "|" + JSON.stringify(json)

/**
 * What a read answers for a text that does not decode: its token, in a tombstone that
 * holds no value (a miss), so that the fetch that follows can replace it over that token.
 */
export const undecoded = <A>(stored: string): Option.Option<Entry.Entry<A>> => {
  const token = stored.startsWith(version) ? stored.slice(version.length, stored.indexOf("|", version.length)) : ""
  return token === "" ? Option.none() : Option.some(Entry.tombstone(0, token))
}

/** The JSON part of a stored text, with or without a header (of this version or 0.2's). */
export const body = (stored: string): string =>
  stored.startsWith(version) || stored.startsWith("v1|") ? stored.slice(stored.indexOf("|", 3) + 1) : stored

/**
 * Decodes a stored text: the entry's own fields are checked by hand (its shape as the
 * key-value store checks it, `Codec.decodeShape`, and its optional fields), and only its
 * value goes through the job's value schema (compiled once per schema; `exactCheck` first).
 * Decoding the whole entry through `Entry.schema(value)`, a union of tagged structs, cost a
 * multiple of the value's decode on every Redis hit (BENCHMARKS.md). The parsed object is
 * the entry: nothing else holds it.
 */
export const parse = <A>(schema: SchemaOf<A> | undefined, stored: string): Either.Either<Entry.Entry<A>, string> => {
  let json: unknown
  try {
    json = JSON.parse(body(stored))
  } catch {
    return Either.left("it is not JSON")
  }
  const shaped = decodeShape(json) as Either.Either<Entry.Entry<A>, string>
  if (Either.isLeft(shaped) || shaped.right._tag !== "Value") return shaped
  // Parsed here, owned by no one else: its value is replaced by its decoding.
  const entry = shaped.right as Entry.Value<A> & { value: unknown }
  if (!optionalFields(entry)) return notAnEntry
  if (schema !== undefined) {
    const decoder = decodeValue(schema)
    if (decoder.check === undefined || !decoder.check(entry.value)) {
      const value = decoder.decode(entry.value)
      if (Either.isLeft(value)) return Either.left(`it does not match the value schema: ${formatParseError(value.left)}`)
      entry.value = value.right
    }
  }
  return shaped
}

/** A value the schema's exact check accepts is its own decoding; the rest go through the schema. */
const decodeValue = perSchema((schema) => ({ check: compile(schema.ast), decode: Schema.decodeUnknownEither(schema) }))

/** The optional fields of a value entry (`Entry.schema`), when present, of their types. */
const optionalFields = (entry: Entry.Value<unknown>): boolean =>
  (entry.fingerprint === undefined || typeof entry.fingerprint === "string") &&
  (entry.delta === undefined || typeof entry.delta === "number") &&
  (entry.graceUntil === undefined || typeof entry.graceUntil === "number") &&
  (entry.token === undefined || typeof entry.token === "string") &&
  (entry.tags === undefined || isPlainObject(entry.tags) && Object.values(entry.tags).every((token) => typeof token === "string"))
