/**
 * Query jobs: their types (checked by `tsc --noEmit`, which reads the `@ts-expect-error`
 * lines below), what their construction refuses, and, on SQLite in memory (libsql), that
 * the run-time checks agree with the types and that the database's limits are checked
 * before any SQL runs. The full lookup suite runs on SQLite and PostgreSQL in
 * test/integration/sql-QueryJob.test.ts.
 */
import { Model, SqlClient } from "@effect/sql"
import { LibsqlClient } from "@effect/sql-libsql"
import { describe, expect, expectTypeOf, it, layer } from "@effect/vitest"
import { Effect, Either, Layer, Option, Schema } from "effect"
import { CacheStore, type FetchTimeout, Job, type KeyError, RefreshQueue } from "effect-cacheback"
import { FilterError, type MultipleFound, type NotFound, QueryJob } from "effect-cacheback/sql"
import { fingerprint } from "../../src/internal/fingerprint.js"

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

/** Filters that type-check: each also runs (see "filters refused at run time are those the types refuse"). */
const okFilters: Array<UserFilter> = [
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
/** Filters that do not type-check (each line is checked by tsc): each is also refused at run time. */
const badFilters: Array<UserFilter> = [
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

describe("QueryJob types", () => {
  it("jobs read instances, with typed errors, in a SqlClient context", () => {
    expectTypeOf(Job.get(user, { username: "alan" })).toEqualTypeOf<
      Effect.Effect<
        User,
        FilterError | NotFound | MultipleFound | QueryJob.QueryError | KeyError | FetchTimeout,
        SqlClient.SqlClient | CacheStore.CacheStore | RefreshQueue.RefreshQueue
      >
    >()
    expectTypeOf(Job.get(users, { isStaff: true })).toMatchTypeOf<
      Effect.Effect<ReadonlyArray<User>, QueryJob.QueryError | KeyError | FetchTimeout, any>
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
  it("names the job after the model with the fingerprint of its fields, the table and the options", () => {
    const model = `User#${fingerprint(User)}`
    expect(model).toMatch(/^User#[A-Za-z0-9_-]{16}$/)
    expect(user.name).toBe(`QueryJob.get(${model}, "users")`)
    expect(users.name).toBe(`QueryJob.filter(${model}, "users")`)
    expect(QueryJob.filter(User, { table: "users", orderBy: ["-id"], limit: 5 }).name).toBe(
      `QueryJob.filter(${model}, "users", { orderBy: ["-id"], limit: 5 })`
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

/** The tables of the SQLite suite, created once for the in-memory database. */
const tables = Layer.effectDiscard(Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  // The columns of `User` as the model names them (no name transform); no rows.
  yield* sql`CREATE TABLE users (id integer PRIMARY KEY, username text NOT NULL, "isStaff" integer NOT NULL,
    email text, nickname text, "createdAt" text NOT NULL, balance text NOT NULL)`
  yield* sql`CREATE TABLE scores (id integer PRIMARY KEY, username text NOT NULL, score real NOT NULL)`
  yield* sql`INSERT INTO scores ${
    sql.insert([{ id: 1, username: "alan", score: 1.5 }, { id: 2, username: "grace", score: 2.5 }, {
      id: 3,
      username: "abc",
      score: 3.5
    }])
  }`
  yield* sql`CREATE TABLE accounts (id integer PRIMARY KEY, username text NOT NULL, secret text NOT NULL)`
  yield* sql`INSERT INTO accounts ${sql.insert([{ id: 1, username: "alan", secret: "s3cret" }])}`
}))

class Score extends Model.Class<Score>("Score")({
  id: Model.Generated(Schema.Int),
  username: Schema.String,
  score: Schema.Number
}) {}

/** An empty memory cache for each test. */
const cached = <A, E, R>(test: Effect.Effect<A, E, R>) =>
  Effect.provide(test, Layer.mergeAll(CacheStore.layerMemory({ capacity: 100 }), RefreshQueue.layerInline))

const ids = (n: number) => Array.from({ length: n }, (_, i) => i + 1)

layer(Layer.provideMerge(tables, LibsqlClient.layer({ url: ":memory:" })))("QueryJob on SQLite (libsql, in memory)", (it) => {
  it.effect("filters refused at run time are those the types refuse", () =>
    cached(Effect.gen(function*() {
      for (const filter of okFilters) {
        // The table is empty: each filter runs its SELECT and finds nothing.
        expect(yield* Job.get(users, filter)).toEqual([])
      }
      for (const filter of badFilters) {
        const error = yield* Effect.flip(Job.get(users, filter))
        expect(error).toBeInstanceOf(FilterError)
        expect(error).toMatchObject({ model: "User", table: "users", field: Object.keys(filter)[0] })
      }
    })))

  describe("SQLite's limit of 32,766 bound parameters is checked before any SQL runs", () => {
    const scores = QueryJob.filter(Score, { table: "scores", orderBy: ["id"] })

    it.effect("an in list of 32,767 values: FilterError naming the limit, the count and what to do", () =>
      cached(Effect.gen(function*() {
        const error = yield* Effect.flip(Job.get(scores, { id: { in: ids(32_767) } }))
        expect(error).toBeInstanceOf(FilterError)
        expect(error.message).toContain("32,767 bound parameters")
        expect(error.message).toContain("SQLite")
        expect(error.message).toContain("32,766")
        expect(error.message).toContain("getMany")
      })))

    it.effect("an in list of 32,766 values runs the SELECT", () =>
      cached(Effect.gen(function*() {
        const rows = yield* Job.get(scores, { id: { in: ids(32_766) } })
        expect(rows.map((row) => row.username)).toEqual(["alan", "grace", "abc"])
      })))

    it.effect("every bound value counts: in values, comparisons, LIKE patterns and the LIMIT", () =>
      cached(Effect.gen(function*() {
        const firstTwo = QueryJob.filter(Score, { table: "scores", orderBy: ["id"], limit: 2 })
        // 32,763 + gt + startsWith + LIMIT = 32,766: runs.
        const fits = { id: { in: ids(32_763), gt: 0 }, username: { startsWith: "a" } }
        expect((yield* Job.get(firstTwo, fits)).map((row) => row.username)).toEqual(["alan", "abc"])
        // One more value in the list: 32,767.
        const over = { id: { in: ids(32_764), gt: 0 }, username: { startsWith: "a" } }
        const error = yield* Effect.flip(Job.get(firstTwo, over))
        expect(error).toBeInstanceOf(FilterError)
        expect(error.message).toContain("32,767 bound parameters")
      })))
  })

  describe("operands no dialect compares: FilterError before any SQL runs", () => {
    const scores = QueryJob.filter(Score, { table: "scores" })
    const refused: Array<[string, QueryJob.Filter<typeof Score>]> = [
      ["gt: NaN", { score: { gt: NaN } }],
      ["equality with NaN", { score: NaN }],
      ["NaN in an in list", { score: { in: [1.5, NaN] } }],
      ["lte: Infinity", { score: { lte: Infinity } }],
      ["gte: -Infinity", { score: { gte: -Infinity } }]
    ]
    for (const [what, filter] of refused) {
      it.effect(what, () =>
        cached(Effect.gen(function*() {
          const error = yield* Effect.flip(Job.get(scores, filter))
          expect(error).toBeInstanceOf(FilterError)
          expect(error).toMatchObject({ field: "score" })
          expect(error.message).toMatch(/NaN|Infinity/)
        })))
    }

    it.effect("a LIKE pattern holding NUL: FilterError (SQLite's LIKE would end the pattern at the NUL)", () =>
      cached(Effect.gen(function*() {
        // Unchecked, `contains: "\u0000"` is `LIKE '%'`: every row.
        for (const filter of [{ username: { contains: "\u0000" } }, { username: { endsWith: "\u0000n" } }]) {
          const error = yield* Effect.flip(Job.get(scores, filter))
          expect(error).toBeInstanceOf(FilterError)
          expect(error).toMatchObject({ field: "username" })
          expect(error.message).toContain("NUL")
        }
        // SQLite binds and compares such strings exactly: equality is not refused.
        expect(yield* Job.get(scores, { username: "alan\u0000" })).toEqual([])
      })))
  })

  it.effect("two models named User on one table, one with a secret field, each read their own entries", () =>
    cached(Effect.gen(function*() {
      class Plain extends Model.Class<Plain>("User")({ id: Model.Generated(Schema.Int), username: Schema.String }) {}
      class Rich extends Model.Class<Rich>("User")({
        id: Model.Generated(Schema.Int),
        username: Schema.String,
        secret: Schema.String
      }) {}
      const plain = QueryJob.get(Plain, { table: "accounts" })
      const rich = QueryJob.get(Rich, { table: "accounts" })
      expect(plain.name).not.toBe(rich.name)
      expect(Either.getOrThrow(plain.key({ id: 1 }))).not.toBe(Either.getOrThrow(rich.key({ id: 1 })))

      const first = yield* Job.get(plain, { id: 1 })
      expect(first).toBeInstanceOf(Plain)
      expect(first).not.toHaveProperty("secret")
      const second = yield* Job.get(rich, { id: 1 })
      expect(second).toBeInstanceOf(Rich)
      expect(second.secret).toBe("s3cret")
      // Each is now a hit of its own.
      expect((yield* Job.lookup(plain, { id: 1 })).value).toBeInstanceOf(Plain)
      expect((yield* Job.lookup(rich, { id: 1 })).value).toMatchObject({ secret: "s3cret" })
    })))
})
