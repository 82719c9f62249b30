/**
 * Query jobs: cached SQL reads of a model's rows, the analog of cacheback's
 * `QuerySetGetJob` and `QuerySetFilterJob`, on `@effect/sql`. They are ordinary jobs: the
 * input is a filter, the value the decoded rows, and every combinator and layer applies.
 *
 * ```ts
 * class User extends Model.Class<User>("User")({
 *   id: Model.Generated(Schema.Int), username: Schema.String, isStaff: Schema.Boolean
 * }) {}
 *
 * const userByName = QueryJob.get(User, { table: "users" })
 * const users = QueryJob.filter(User, { table: "users", orderBy: ["username"] })
 *
 * Job.get(userByName, { username: "alan" })                  // User, or NotFound / MultipleFound
 * Job.get(users, { username: { startsWith: "Fo" }, id: { in: [1, 2, 3] } })
 * ```
 *
 * @since 0.1.0
 */
import type { SqlError } from "@effect/sql/SqlError"
import { SqlClient } from "@effect/sql/SqlClient"
import type * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as CacheStore from "../CacheStore.js"
import type { StoreError } from "../Errors.js"
import * as Job from "../Job.js"
import { type FilterError, MultipleFound, NotFound } from "./Errors.js"
import * as Filters from "./internal/filter.js"
import { rowSchema } from "./internal/json.js"
import * as Source from "./internal/source.js"
import { type Order, select } from "./internal/statement.js"

export {
  /**
   * @since 0.1.0
   * @category errors
   */
  FilterError,
  /**
   * @since 0.1.0
   * @category errors
   */
  MultipleFound,
  /**
   * @since 0.1.0
   * @category errors
   */
  NotFound
} from "./Errors.js"

/**
 * What a query job reads: a schema class whose instances are rows, with the fields that are
 * its columns. `Model.Class` of `@effect/sql` (its select variant), or any `Schema.Class`.
 *
 * @since 0.1.0
 * @category models
 */
export type Model = Source.Model

/**
 * A filter over a model's fields: each field a value (equality; a value stored as NULL means
 * IS NULL) or an object of lookups. Conditions are joined with AND; `{}` reads every row.
 *
 * @since 0.1.0
 * @category models
 */
export type Filter<M extends Model> = {
  readonly [K in keyof Schema.Struct.Type<M["fields"]>]?:
    | Schema.Struct.Type<M["fields"]>[K]
    | Lookups<Schema.Struct.Type<M["fields"]>[K], FieldEncoded<M["fields"][K & keyof M["fields"]]>>
}

/**
 * The lookups of a field of type `A`, stored as `I`. Each fits the field's type:
 * `in` any field; `gt`, `gte`, `lt`, `lte` numbers, bigints, strings and dates;
 * `startsWith`, `endsWith`, `contains` strings (a literal match: `%` and `_` mean
 * themselves); `isNull` fields that may be NULL.
 *
 * @since 0.1.0
 * @category models
 */
export type Lookups<A, I = A> =
  & { readonly in?: ReadonlyArray<NonNullable<A>> }
  & (null extends A | I ? { readonly isNull?: boolean } : unknown)
  & ([NonNullable<A>] extends [Ordered] ? {
      readonly gt?: NonNullable<A>
      readonly gte?: NonNullable<A>
      readonly lt?: NonNullable<A>
      readonly lte?: NonNullable<A>
    }
    : unknown)
  & ([NonNullable<A>] extends [string] ? {
      readonly startsWith?: string
      readonly endsWith?: string
      readonly contains?: string
    }
    : unknown)

type Ordered = number | bigint | string | Date | DateTime.DateTime

type FieldEncoded<F> = Schema.Schema.Encoded<F>

/**
 * A field to order by: its name, ascending, or `-name`, descending.
 *
 * @since 0.1.0
 * @category models
 */
export type OrderBy<M extends Model> = (keyof M["fields"] & string) | `-${keyof M["fields"] & string}`

/**
 * @since 0.1.0
 * @category models
 */
export interface GetOptions {
  /** The table, escaped as an identifier (`schema.table` names a schema). */
  readonly table: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface FilterOptions<M extends Model> extends GetOptions {
  readonly orderBy?: ReadonlyArray<OrderBy<M>>
  readonly limit?: number
}

/**
 * What a query job's fetch may fail with: a filter that does not fit the model (before any
 * SQL runs), the database, and a row that does not decode through the model.
 *
 * @since 0.1.0
 * @category models
 */
export type QueryError = FilterError | SqlError | ParseResult.ParseError

/**
 * A job that reads the one row of `table` that matches its filter, decoded into an instance
 * of `model`: cacheback's `QuerySetGetJob`. No row fails with `NotFound`, several with
 * `MultipleFound`; neither is cached.
 *
 * Named after the model, the fingerprint of its fields and the table:
 * `QueryJob.get(User#k3F9aQ2xL0pZ7mWc, "users")`. The fingerprint (16 characters of
 * base64url) hashes the shape the model's rows encode to: field names, optionality and
 * types, never annotations. So every process builds the same job and keys for the same
 * model, and two models named `User` with other fields (one with a `secret`) never share
 * entries. Carries codecs for its filter and its rows, so that it stores in Redis and
 * refreshes on remote workers as it is. Throws at once for an empty table name or a model
 * without fields.
 *
 * @since 0.1.0
 * @category constructors
 */
export const get = <M extends Model>(
  model: M,
  options: GetOptions
): Job.Job<Filter<M>, Schema.Schema.Type<M>, QueryError | NotFound | MultipleFound, SqlClient> => {
  const source = Source.make("QueryJob.get", model, options?.table)
  const decodeRow = Schema.decodeUnknown(model as Schema.Schema<Schema.Schema.Type<M>, unknown>)
  const job = Job.make({
    name: `QueryJob.get(${source.name}, ${JSON.stringify(source.table)})`,
    fetch: (filter: Filter<M>) =>
      query(source, filter, { orderBy: [], limit: 2 }, (
        rows,
        conditions
      ): Effect.Effect<Schema.Schema.Type<M>, ParseResult.ParseError | NotFound | MultipleFound> => {
        if (rows.length === 1) return decodeRow(rows[0])
        const found = { model: source.identifier, table: source.table, filter: Filters.describe(conditions) }
        return rows.length === 0 ? Effect.fail(new NotFound(found)) : Effect.fail(new MultipleFound(found))
      })
  })
  return job.pipe(
    Job.withSchema({ input: Filters.schema<Filter<M>>(source), value: rowSchema(model) }),
    Job.withTags(() => [tableTag(source.table)])
  )
}

/**
 * A job that reads the rows of `table` that match its filter, decoded into instances of
 * `model`, in `orderBy` order (the database's own without it), at most `limit` of them:
 * cacheback's `QuerySetFilterJob`. Named after the model and its fingerprint (as for `get`),
 * the table and the options: `QueryJob.filter(User#k3F9aQ2xL0pZ7mWc, "users", { orderBy:
 * ["-id"], limit: 5 })`, the braces only when an option is given. Throws at once for an
 * empty table name, a model without fields, an `orderBy` field the model does not have, or
 * a `limit` that is not a positive integer.
 *
 * @since 0.1.0
 * @category constructors
 */
export const filter = <M extends Model>(
  model: M,
  options: FilterOptions<M>
): Job.Job<Filter<M>, ReadonlyArray<Schema.Schema.Type<M>>, QueryError, SqlClient> => {
  const source = Source.make("QueryJob.filter", model, options?.table)
  const orderBy = orders(source, options.orderBy ?? [])
  const limit = options.limit
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1)) {
    throw new RangeError(`QueryJob.filter: expected limit to be a positive integer, got ${limit}`)
  }
  const decodeRows = Schema.decodeUnknown(Schema.Array(model as Schema.Schema<Schema.Schema.Type<M>, unknown>))
  const extra = [
    ...(orderBy.length > 0 ? [`orderBy: ${JSON.stringify(options.orderBy)}`] : []),
    ...(limit !== undefined ? [`limit: ${limit}`] : [])
  ]
  const job = Job.make({
    name: `QueryJob.filter(${source.name}, ${JSON.stringify(source.table)}${
      extra.length > 0 ? `, { ${extra.join(", ")} }` : ""
    })`,
    fetch: (filter: Filter<M>) => query(source, filter, { orderBy, limit }, (rows) => decodeRows(rows))
  })
  return job.pipe(
    Job.withSchema({ input: Filters.schema<Filter<M>>(source), value: Schema.Array(rowSchema(model)) }),
    Job.withTags(() => [tableTag(source.table)])
  )
}

/**
 * The tag every entry of a query job on `table` carries (DESIGN.md §8.3): `table:<table>`.
 *
 * @since 0.2.0
 * @category tags
 */
export const tableTag = (table: string): string => `table:${table}`

/**
 * Marks every entry of every query job on `table` stale, in the default store: call it after
 * a write to the table. The entries are served per their jobs' policies (stale values while
 * they refresh, or fetched synchronously past `syncAfter`) and refreshed; O(1) whatever their
 * number. For a job of another store, `Job.invalidateTags(job, [QueryJob.tableTag(table)])`.
 *
 * @since 0.2.0
 * @category tags
 */
export const invalidateTable = (table: string): Effect.Effect<void, StoreError, CacheStore.CacheStore> =>
  CacheStore.invalidateTags([tableTag(table)])

/** Checks the filter, runs the SELECT, and hands the rows on. */
const query = <A, E>(
  source: Source.Source,
  filter: unknown,
  options: { readonly orderBy: ReadonlyArray<Order>; readonly limit: number | undefined },
  decode: (rows: ReadonlyArray<object>, conditions: ReadonlyArray<Filters.Condition>) => Effect.Effect<A, E>
): Effect.Effect<A, E | FilterError | SqlError, SqlClient> =>
  Effect.flatMap(Filters.compile(source, filter), ({ conditions }) =>
    Effect.flatMap(SqlClient, (sql) =>
      Effect.flatMap(
        select(sql, source, conditions, options),
        (statement) => Effect.flatMap(statement, (rows) => decode(rows, conditions))
      )))

const orders = (source: Source.Source, orderBy: ReadonlyArray<string>): ReadonlyArray<Order> =>
  orderBy.map((entry) => {
    const descending = typeof entry === "string" && entry.startsWith("-")
    const field = typeof entry === "string" ? source.fields.get(descending ? entry.slice(1) : entry) : undefined
    if (field === undefined) {
      throw new TypeError(
        `QueryJob.filter: cannot order by ${JSON.stringify(entry)}: expected a field of ${source.identifier} ` +
          `(${[...source.fields.keys()].join(", ")}), with a leading "-" for descending order`
      )
    }
    return { column: field.column, descending }
  })
