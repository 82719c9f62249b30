/**
 * The text of an entry in Redis: `v1|<token>|<JSON of the encoded entry>`. The token is the
 * entry's `fetchedAt` in decimal for a value and `p` for a pending marker: what the
 * compare-and-set script (`scripts.ts`) compares, reading only the first bytes of the entry
 * (`GETRANGE`), never decoding a value inside Redis.
 *
 * Text without the header (written by 0.1, or by this version before the header) still reads:
 * it is the JSON alone. The compare-and-set script leaves such an entry alone.
 */
import type * as Either from "effect/Either"
import type * as Entry from "../../Entry.js"
import * as Codec from "../../internal/codec.js"

const version = "v1|"

/** What compare-and-set expects stored for `entry` to replace it (see `scripts.compareAndSet`). */
export const token = (entry: Entry.Entry<unknown>): string => entry._tag === "Value" ? String(entry.fetchedAt) : "p"

/** The text stored for `entry`, whose encoded form is `json`. */
export const text = (entry: Entry.Entry<unknown>, json: unknown): string =>
  version + token(entry) + "|" + JSON.stringify(json)

/** The JSON part of a stored text, with or without the header. */
export const body = (stored: string): string =>
  stored.startsWith(version) ? stored.slice(stored.indexOf("|", version.length) + 1) : stored

/** Decodes a stored text through `codec`. */
export const parse = <A>(codec: Codec.EntryCodec<A>, stored: string): Either.Either<Entry.Entry<A>, string> =>
  Codec.parse(codec, body(stored))
