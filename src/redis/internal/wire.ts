/**
 * The text of an entry in Redis: `v1|<token>|<JSON of the encoded entry>`. The token is the
 * entry's `fetchedAt` in decimal for a value and `p` for a pending marker: what the
 * compare-and-set script (`scripts.ts`) compares, reading only the first bytes of the entry
 * (`GETRANGE`), never decoding a value inside Redis.
 *
 * Text without the header (written by 0.1, or by this version before the header) still reads:
 * it is the JSON alone. The compare-and-set script leaves such an entry alone.
 */
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import type * as Entry from "../../Entry.js"
import { decodeShape, notAnEntry, perSchema, type SchemaOf } from "../../internal/codec.js"
import { formatParseError } from "../../internal/describe.js"
import { compile } from "../../internal/exactCheck.js"
import { isPlainObject } from "../../internal/plainObject.js"

const version = "v1|"

/** What compare-and-set expects stored for `entry` to replace it (see `scripts.compareAndSet`). */
export const token = (entry: Entry.Entry<unknown>): string => entry._tag === "Value" ? String(entry.fetchedAt) : "p"

/** The text stored for `entry`, whose encoded form is `json`. */
export const text = (entry: Entry.Entry<unknown>, json: unknown): string =>
  version + token(entry) + "|" + JSON.stringify(json)

/** The JSON part of a stored text, with or without the header. */
export const body = (stored: string): string =>
  stored.startsWith(version) ? stored.slice(stored.indexOf("|", version.length) + 1) : stored

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
  if (Either.isLeft(shaped) || shaped.right._tag === "Pending") return shaped
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
  (entry.tags === undefined || isPlainObject(entry.tags) && Object.values(entry.tags).every((token) => typeof token === "string"))
