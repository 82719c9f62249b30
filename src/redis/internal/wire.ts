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
import { perSchema, type SchemaOf } from "../../internal/codec.js"
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
 * Decodes a stored text: the entry's own fields are checked by hand, and only its value goes
 * through the job's value schema (compiled once per schema; `exactCheck` first). Decoding the whole entry through
 * `Entry.schema(value)`, a union of tagged structs, cost a multiple of the value's decode on
 * every Redis hit (BENCHMARKS.md). The parsed object is the entry: nothing else holds it.
 */
export const parse = <A>(schema: SchemaOf<A> | undefined, stored: string): Either.Either<Entry.Entry<A>, string> => {
  let json: unknown
  try {
    json = JSON.parse(body(stored))
  } catch {
    return Either.left("it is not JSON")
  }
  const entry = json as Record<string, unknown> | null
  if (typeof entry !== "object" || entry === null || typeof entry.expiresAt !== "number") return notAnEntry
  if (entry._tag === "Pending") return Either.right(entry as unknown as Entry.Pending)
  if (entry._tag !== "Value" || typeof entry.fetchedAt !== "number" || !optionalFields(entry)) return notAnEntry
  if (schema === undefined) {
    if (!("value" in entry)) entry.value = undefined
  } else {
    const decoder = decodeValue(schema)
    if (decoder.check === undefined || !decoder.check(entry.value)) {
      const value = decoder.decode(entry.value)
      if (Either.isLeft(value)) return Either.left(`it does not match the value schema: ${formatParseError(value.left)}`)
      entry.value = value.right
    }
  }
  return Either.right(entry as unknown as Entry.Value<A>)
}

const notAnEntry = Either.left("it is not an entry written by effect-cacheback")

/** A value the schema's exact check accepts is its own decoding; the rest go through the schema. */
const decodeValue = perSchema((schema) => ({ check: compile(schema.ast), decode: Schema.decodeUnknownEither(schema) }))

/** The optional fields of a value entry (`Entry.schema`), when present, of their types. */
const optionalFields = (entry: Record<string, unknown>): boolean =>
  (entry.fingerprint === undefined || typeof entry.fingerprint === "string") &&
  (entry.delta === undefined || typeof entry.delta === "number") &&
  (entry.graceUntil === undefined || typeof entry.graceUntil === "number") &&
  (entry.tags === undefined || isPlainObject(entry.tags) && Object.values(entry.tags).every((token) => typeof token === "string"))
