/**
 * Query jobs without a database: their types (checked by `tsc --noEmit`, which reads the
 * `@ts-expect-error` lines below), and what their construction refuses.
 */
import { Model } from "@effect/sql"
import type { SqlClient } from "@effect/sql/SqlClient"
import { describe, expect, expectTypeOf, it } from "@effect/vitest"
import { type Effect, Option, Schema } from "effect"
import { type CacheStore, Job, type KeyError, type RefreshQueue } from "effect-cacheback"
import { type FilterError, type MultipleFound, type NotFound, QueryJob } from "effect-cacheback/sql"

class User extends Model.Class<User>("User")({
  id: Model.Generated(Schema.Int),
  username: Schema.String,
  isStaff: Schema.Boolean,
  email: Schema.NullOr(Schema.String),
  nickname: Model.FieldOption(Schema.String),
  createdAt: Schema.Date,
  balance: Schema.BigInt
}) {}

const users = QueryJob.filter(User, { table: "users" })
const user = QueryJob.get(User, { table: "users" })
type UserFilter = QueryJob.Filter<typeof User>

describe("QueryJob types", () => {
  it("filters follow the field types", () => {
    const ok: Array<UserFilter> = [
      {},
      { username: "alan", isStaff: true },
      { id: 1, balance: 10n, createdAt: new Date(0) },
      { id: { in: [1, 2, 3], gt: 0, lte: 10 } },
      { username: { startsWith: "Fo", endsWith: "o", contains: "o", in: ["Foo"] } },
      { createdAt: { gte: new Date(0), lt: new Date(1) } },
      { balance: { gt: 0n } },
      { email: null },
      { email: { isNull: true, startsWith: "a" } },
      { nickname: { isNull: false } },
      { nickname: Option.some("al") }
    ]
    const bad: Array<UserFilter> = [
      // @ts-expect-error a string lookup on a number field
      { id: { startsWith: "1" } },
      // @ts-expect-error a string lookup on a date field
      { createdAt: { contains: "2024" } },
      // @ts-expect-error an order lookup on a boolean field
      { isStaff: { gt: true } },
      // @ts-expect-error a string operand on a number field
      { id: { gt: "1" } },
      // @ts-expect-error a number where the field is a bigint
      { balance: 1 },
      // @ts-expect-error in takes values of the field
      { id: { in: ["1"] } },
      // @ts-expect-error isNull on a field that is never NULL
      { username: { isNull: true } },
      // @ts-expect-error a field the model does not have
      { bogus: 1 },
      // @ts-expect-error a lookup that does not exist
      { username: { like: "a%" } }
    ]
    expect(ok.length + bad.length).toBe(20)
  })

  it("jobs read instances, with typed errors, in a SqlClient context", () => {
    expectTypeOf(Job.get(user, { username: "alan" })).toEqualTypeOf<
      Effect.Effect<
        User,
        FilterError | NotFound | MultipleFound | QueryJob.QueryError | KeyError,
        SqlClient | CacheStore.CacheStore | RefreshQueue.RefreshQueue
      >
    >()
    expectTypeOf(Job.get(users, { isStaff: true })).toMatchTypeOf<
      Effect.Effect<ReadonlyArray<User>, QueryJob.QueryError | KeyError, any>
    >()
    QueryJob.filter(User, { table: "users", orderBy: ["username", "-createdAt"], limit: 10 })
    expect(() =>
      // @ts-expect-error orderBy names fields
      QueryJob.filter(User, { table: "users", orderBy: ["bogus"] })
    ).toThrow(/cannot order by "bogus"/)
  })

  it("query jobs are ordinary jobs: combinators apply", () => {
    const staff = users.pipe(
      Job.withLifetime("1 minute"),
      Job.withSyncOnMiss(false),
      Job.withEmpty(() => [] as ReadonlyArray<User>),
      Job.withProcessResult((rows) => rows.map((row) => row.username))
    )
    expectTypeOf(Job.get(staff, {})).toMatchTypeOf<Effect.Effect<Array<string>, unknown, unknown>>()
  })
})

describe("QueryJob construction", () => {
  it("names the job after the model, the table and the options", () => {
    expect(user.name).toBe(`QueryJob.get(User, "users")`)
    expect(users.name).toBe(`QueryJob.filter(User, "users")`)
    expect(QueryJob.filter(User, { table: "users", orderBy: ["-id"], limit: 5 }).name).toBe(
      `QueryJob.filter(User, "users", { orderBy: ["-id"], limit: 5 })`
    )
  })

  it("throws at once for an empty table, a model without fields, a bad orderBy or limit", () => {
    class Empty extends Schema.Class<Empty>("Empty")({}) {}
    expect(() => QueryJob.get(User, { table: "" })).toThrow(/non-empty table name/)
    expect(() => QueryJob.get(User, { table: "  " })).toThrow(/non-empty table name/)
    expect(() => QueryJob.filter(Empty, { table: "empty" })).toThrow(/Empty has no fields/)
    expect(() => QueryJob.get(Schema.String as any, { table: "users" })).toThrow(/expected a model class/)
    expect(() => QueryJob.filter(User, { table: "users", orderBy: ["id; DROP TABLE users" as "id"] })).toThrow(
      /cannot order by "id; DROP TABLE users": expected a field of User/
    )
    expect(() => QueryJob.filter(User, { table: "users", limit: 0 })).toThrow(/positive integer/)
    expect(() => QueryJob.filter(User, { table: "users", limit: 1.5 })).toThrow(/positive integer/)
  })
})
