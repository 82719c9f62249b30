/**
 * What the cache holds for a key: a value with the times it was fetched and goes stale, or a
 * marker that a refresh is queued for a key that has no value yet.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * @since 0.1.0
 * @category models
 */
export type Entry<A> = Value<A> | Pending

/**
 * A cached value. Times are epoch milliseconds of `Clock`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Value<A> {
  readonly _tag: "Value"
  readonly value: A
  readonly fetchedAt: number
  readonly expiresAt: number
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
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const value = <A>(value: A, fetchedAt: number, expiresAt: number): Value<A> => ({
  _tag: "Value",
  value,
  fetchedAt,
  expiresAt
})

/**
 * @since 0.1.0
 * @category constructors
 */
export const pending = (expiresAt: number): Pending => ({ _tag: "Pending", expiresAt })

/**
 * The schema of an entry whose value goes through `value`: what the Redis and key-value
 * stores write.
 *
 * @since 0.1.0
 * @category schemas
 */
export const schema = <A, I, R>(value: Schema.Schema<A, I, R>) =>
  Schema.Union(
    Schema.TaggedStruct("Value", { value, fetchedAt: Schema.Number, expiresAt: Schema.Number }),
    Schema.TaggedStruct("Pending", { expiresAt: Schema.Number })
  )
