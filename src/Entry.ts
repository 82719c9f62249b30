/**
 * What the cache holds for a key: a value with the times it was fetched and goes stale, a
 * marker that a refresh is queued for a key that has no value yet, or a tombstone left by a
 * delete. Each carries the token of the write that made it (DESIGN.md §3.2).
 *
 * @since 0.1.0
 */
import type * as Option from "effect/Option"
import * as Schema from "effect/Schema"

/**
 * @since 0.1.0
 * @category models
 */
export type Entry<A> = Value<A> | Pending | Tombstone

/**
 * A cached value. Times are epoch milliseconds of `Clock`.
 *
 * `fingerprint` is that of the job that wrote it (`Job.fingerprint`: its value schema and
 * `Job.withVersion`); a job reads an entry of another fingerprint as a miss, so that a
 * deploy that changes a value's shape never serves the old shape. A job with no value
 * schema at version 0 writes none.
 *
 * @since 0.1.0
 * @category models
 */
export interface Value<A> {
  readonly _tag: "Value"
  readonly value: A
  readonly fetchedAt: number
  readonly expiresAt: number
  /** @since 0.2.0 */
  readonly fingerprint?: string
  /** How long its fetch took, in milliseconds (jobs with an early refresh). @since 0.2.0 */
  readonly delta?: number
  /** The tokens of its tags as read before its fetch (`Job.withTags`). @since 0.2.0 */
  readonly tags?: Readonly<Record<string, string>>
  /**
   * After a failed synchronous fetch whose stale value was served instead (stale-if-error),
   * until when reads serve it without fetching. @since 0.2.0
   */
  readonly graceUntil?: number
  /**
   * The token of the write that stored it, unique to that write (a fetch's store, `Job.set`,
   * `Job.invalidate`); a write-back of the same value keeps it. A write that depends on what
   * it read stores only while the token is still the one it read (DESIGN.md §3.2). Absent in
   * entries written before 0.3. @since 0.3.0
   */
  readonly token?: string
}

/**
 * No value yet; a refresh was queued and none is enqueued again before `expiresAt`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Pending {
  readonly _tag: "Pending"
  readonly expiresAt: number
  /** The token of what it replaced (a tombstone's), which it keeps. @since 0.3.0 */
  readonly token?: string
}

/**
 * What `Job.delete` (or `Job.invalidate` of a key with nothing stored) leaves: no value, and
 * a token, so that a fetch begun before the delete cannot store over it. Read as a miss;
 * forgotten by the backend after `expiresAt`, which outlives any fetch begun before it.
 *
 * @since 0.3.0
 * @category models
 */
export interface Tombstone {
  readonly _tag: "Tombstone"
  readonly expiresAt: number
  readonly token: string
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const value = <A>(
  value: A,
  fetchedAt: number,
  expiresAt: number,
  fingerprint?: string | undefined,
  token?: string | undefined
): Value<A> => {
  const entry: { -readonly [K in keyof Value<A>]: Value<A>[K] } = fingerprint === undefined
    ? { _tag: "Value", value, fetchedAt, expiresAt }
    : { _tag: "Value", value, fetchedAt, expiresAt, fingerprint }
  if (token !== undefined) entry.token = token
  return entry
}

/**
 * The same entry, expiring at `expiresAt` (a write-back, an invalidation).
 *
 * @since 0.2.0
 * @category constructors
 */
export const withExpiry = <A>(self: Value<A> | Pending, expiresAt: number): Value<A> | Pending =>
  self._tag === "Pending" ? pending(expiresAt, self.token) : with_(self, { expiresAt })

/**
 * A value entry with some of its fields changed, `undefined` removing an optional one.
 *
 * Built as an object literal, field by field: an entry made by spreading another
 * (`{ ...entry, expiresAt }`) is an object V8 reads many times slower, and entries are read
 * on every hit.
 *
 * @since 0.2.0
 * @category constructors
 */
export const with_ = <A>(
  self: Value<A>,
  changes: {
    readonly expiresAt?: number
    readonly delta?: number | undefined
    readonly tags?: Readonly<Record<string, string>> | undefined
    readonly graceUntil?: number | undefined
    readonly token?: string | undefined
  }
): Value<A> => {
  const entry: { -readonly [K in keyof Value<A>]: Value<A>[K] } = value(
    self.value,
    self.fetchedAt,
    changes.expiresAt ?? self.expiresAt,
    self.fingerprint
  )
  const delta = "delta" in changes ? changes.delta : self.delta
  const tags = "tags" in changes ? changes.tags : self.tags
  const graceUntil = "graceUntil" in changes ? changes.graceUntil : self.graceUntil
  const token = "token" in changes ? changes.token : self.token
  if (delta !== undefined) entry.delta = delta
  if (tags !== undefined) entry.tags = tags
  if (graceUntil !== undefined) entry.graceUntil = graceUntil
  if (token !== undefined) entry.token = token
  return entry
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const pending = (expiresAt: number, token?: string | undefined): Pending =>
  token === undefined ? { _tag: "Pending", expiresAt } : { _tag: "Pending", expiresAt, token }

/**
 * @since 0.3.0
 * @category constructors
 */
export const tombstone = (expiresAt: number, token: string): Tombstone => ({ _tag: "Tombstone", expiresAt, token })

/**
 * The token of the write that stored what is there: `""` for nothing, or for an entry of a
 * version before tokens.
 *
 * @since 0.3.0
 * @category getters
 */
export const tokenOf = (self: Option.Option<Entry<unknown>>): string =>
  self._tag === "None" ? "" : self.value.token ?? ""

/**
 * The schema of an entry whose value goes through `value`: what the Redis and key-value
 * stores write.
 *
 * @since 0.1.0
 * @category schemas
 */
export const schema = <A, I, R>(value: Schema.Schema<A, I, R>) =>
  Schema.Union(
    Schema.TaggedStruct("Value", {
      value,
      fetchedAt: Schema.Number,
      expiresAt: Schema.Number,
      fingerprint: Schema.optionalWith(Schema.String, { exact: true }),
      delta: Schema.optionalWith(Schema.Number, { exact: true }),
      tags: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.String }), { exact: true }),
      graceUntil: Schema.optionalWith(Schema.Number, { exact: true }),
      token: Schema.optionalWith(Schema.String, { exact: true })
    }),
    Schema.TaggedStruct("Pending", { expiresAt: Schema.Number, token: Schema.optionalWith(Schema.String, { exact: true }) }),
    Schema.TaggedStruct("Tombstone", { expiresAt: Schema.Number, token: Schema.String })
  )
