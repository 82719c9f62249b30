/**
 * Query jobs against real databases: one suite, run on SQLite (libsql, in memory) and on
 * PostgreSQL (DATABASE_URL, a table of its own per run, dropped at the end). Nothing is
 * mocked: every read is a SELECT on the table.
 */
import { KeyValueStore } from "@effect/platform"
import { Model, SqlClient } from "@effect/sql"
import { LibsqlClient } from "@effect/sql-libsql"
import { PgClient } from "@effect/sql-pg"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Either, Layer, ParseResult, Redacted, Schema, String as Str, TestClock, TestServices } from "effect"
import { CacheStore, Job, RefreshQueue, TestRefreshQueue } from "effect-cacheback"
import { FilterError, MultipleFound, NotFound, QueryJob } from "effect-cacheback/sql"
import { randomUUID } from "node:crypto"
import { databaseUrl, requireService } from "../support/services.js"
import { storedBy } from "../support/kit.js"

const postgres = await requireService("postgres")

// Columns as both drivers return them: libsql (intMode "bigint") gives bigints for every
// integer; pg gives int8 as a string, booleans, and Dates for timestamptz.
const Id = Schema.transformOrFail(Schema.Union(Schema.String, Schema.Number, Schema.BigIntFromSelf), Schema.BigIntFromSelf, {
  strict: true,
  decode: (raw, _, ast) =>
    ParseResult.try({ try: () => BigInt(raw), catch: () => new ParseResult.Type(ast, raw, "not an integer") }),
  encode: ParseResult.succeed
})
const Int = Schema.transform(Schema.Union(Schema.Number, Schema.BigIntFromSelf), Schema.Number, {
  strict: true,
  decode: (raw) => Number(raw),
  encode: (n) => n
})
const Flag = Schema.transform(Schema.Union(Schema.Boolean, Schema.Number, Schema.BigIntFromSelf), Schema.Boolean, {
  strict: true,
  decode: (raw) => typeof raw === "boolean" ? raw : Number(raw) !== 0,
  encode: (flag) => flag
})
const Instant = Schema.transform(Schema.Union(Schema.String, Schema.DateFromSelf), Schema.DateFromSelf, {
  strict: true,
  decode: (raw) => new Date(raw),
  encode: (date) => date.toISOString()
})

class Person extends Model.Class<Person>("Person")({
  id: Model.Generated(Id),
  username: Schema.String,
  email: Schema.NullOr(Schema.String),
  isStaff: Flag,
  age: Int,
  joinedAt: Instant
}) {}

const big = 9007199254740993n // 2^53 + 1: not a JS number
const seed = [
  { id: 1n, username: "alan", email: "alan@example.com", isStaff: true, age: 41, joinedAt: "2020-01-01T00:00:00.000Z" },
  { id: 2n, username: "grace", email: null, isStaff: true, age: 85, joinedAt: "2021-06-15T12:00:00.000Z" },
  { id: big, username: "a%b", email: null, isStaff: false, age: 30, joinedAt: "2023-03-01T00:00:00.000Z" },
  { id: 4n, username: "a_c", email: "ac@example.com", isStaff: false, age: 30, joinedAt: "2024-12-31T23:59:59.000Z" },
  { id: 5n, username: "abc", email: "abc@example.com", isStaff: false, age: 19, joinedAt: "2025-01-01T00:00:00.000Z" },
  { id: 6n, username: "x\\y", email: null, isStaff: false, age: 19, joinedAt: "2025-02-01T00:00:00.000Z" }
]

const table = `qj_people_${randomUUID().replaceAll("-", "").slice(0, 12)}`
const person = QueryJob.get(Person, { table })
const people = QueryJob.filter(Person, { table, orderBy: ["id"] })
/** Usernames in id order (`people` orders by id): alan, grace, a_c, abc, x\\y, a%b. */
const names = (rows: ReadonlyArray<Person>) => rows.map((row) => row.username)

const names_ = { transformQueryNames: Str.camelToSnake, transformResultNames: Str.snakeToCamel }
const dialects = [
  {
    name: "SQLite (libsql, in memory)",
    enabled: true,
    maxParameters: 32_766,
    client: LibsqlClient.layer({ url: ":memory:", intMode: "bigint", ...names_ })
  },
  {
    name: "PostgreSQL",
    enabled: postgres,
    maxParameters: 65_535,
    client: PgClient.layer({ url: Redacted.make(databaseUrl), ...names_ })
  }
] as const

/** The table of this run, created when the suite starts and dropped when it ends. */
const tableLayer = Layer.scopedDiscard(Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.onDialectOrElse({
    pg: () =>
      sql`CREATE TABLE ${sql(table)} (id bigint PRIMARY KEY, username text NOT NULL, email text,
        is_staff boolean NOT NULL, age integer NOT NULL, joined_at timestamptz NOT NULL)`,
    orElse: () =>
      sql`CREATE TABLE ${sql(table)} (id integer PRIMARY KEY, username text NOT NULL, email text,
        is_staff integer NOT NULL, age integer NOT NULL, joined_at text NOT NULL)`
  })
  yield* Effect.addFinalizer(() => Effect.orDie(sql`DROP TABLE ${sql(table)}`))
}))

const reseed = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`DELETE FROM ${sql(table)}`
  yield* sql`INSERT INTO ${sql(table)} ${sql.insert(seed)}`
})

const rowCount = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => Effect.map(sql<{ n: unknown }>`SELECT COUNT(*) AS n FROM ${sql(table)}`, ([row]) => Number(row.n))
)

/** Each test: the seed rows, an empty memory cache, and a queue that runs only when drained. */
const fresh = <A, E, R>(test: Effect.Effect<A, E, R>) =>
  Effect.zipRight(reseed, test).pipe(
    Effect.provide(Layer.mergeAll(CacheStore.layerMemory({ capacity: 100 }), TestRefreshQueue.layer))
  )

for (const dialect of dialects) {
  describe.skipIf(!dialect.enabled)(dialect.name, () => {
    layer(Layer.provideMerge(tableLayer, dialect.client))((it) => {
      describe("lookups", () => {
        it.effect("a bare value is equality: strings, booleans, bigint ids, dates; a NULL value is IS NULL", () =>
          fresh(Effect.gen(function*() {
            expect(names(yield* Job.get(people, { username: "grace" })).length).toBe(1)
            expect(names(yield* Job.get(people, { isStaff: true }))).toEqual(["alan", "grace"])
            expect(names(yield* Job.get(people, { id: big }))).toEqual(["a%b"])
            expect(names(yield* Job.get(people, { joinedAt: new Date("2021-06-15T12:00:00.000Z") }))).toEqual(["grace"])
            expect(names(yield* Job.get(people, { email: null }))).toEqual(["grace", "x\\y", "a%b"])
          })))

        it.effect("in: any of the values; an empty list matches nothing", () =>
          fresh(Effect.gen(function*() {
            expect(names(yield* Job.get(people, { id: { in: [1n, big, 404n] } }))).toEqual(["alan", "a%b"])
            expect(names(yield* Job.get(people, { username: { in: ["abc", "grace"] } }))).toEqual(["grace", "abc"])
            expect(yield* Job.get(people, { id: { in: [] } })).toEqual([])
          })))

        it.effect("gt, gte, lt, lte on numbers and dates", () =>
          fresh(Effect.gen(function*() {
            expect(names(yield* Job.get(people, { age: { gt: 41 } }))).toEqual(["grace"])
            expect(names(yield* Job.get(people, { age: { gte: 41 } }))).toEqual(["alan", "grace"])
            expect(names(yield* Job.get(people, { age: { lt: 30 } }))).toEqual(["abc", "x\\y"])
            expect(names(yield* Job.get(people, { age: { lte: 30, gt: 19 } }))).toEqual(["a_c", "a%b"])
            const newYear = new Date("2025-01-01T00:00:00.000Z")
            expect(names(yield* Job.get(people, { joinedAt: { gte: newYear } }))).toEqual(["abc", "x\\y"])
            const between = { lt: newYear, gt: new Date("2021-01-01") }
            expect(names(yield* Job.get(people, { joinedAt: between }))).toEqual(["grace", "a_c", "a%b"])
            expect(names(yield* Job.get(people, { id: { gt: 6n } }))).toEqual(["a%b"])
          })))

        it.effect("startsWith, endsWith, contains match literally: % _ ! and \\ mean themselves", () =>
          fresh(Effect.gen(function*() {
            expect(names(yield* Job.get(people, { username: { startsWith: "a" } }))).toEqual(["alan", "a_c", "abc", "a%b"])
            expect(names(yield* Job.get(people, { username: { startsWith: "a%" } }))).toEqual(["a%b"])
            expect(names(yield* Job.get(people, { username: { startsWith: "a_" } }))).toEqual(["a_c"])
            expect(names(yield* Job.get(people, { username: { contains: "%" } }))).toEqual(["a%b"])
            expect(names(yield* Job.get(people, { username: { contains: "\\" } }))).toEqual(["x\\y"])
            expect(yield* Job.get(people, { username: { contains: "!%" } })).toEqual([])
            expect(yield* Job.get(people, { username: { endsWith: "!" } })).toEqual([])
            expect(names(yield* Job.get(people, { username: { endsWith: "c" } }))).toEqual(["a_c", "abc"])
            expect(names(yield* Job.get(people, { email: { endsWith: "@example.com", startsWith: "a" } }))).toEqual([
              "alan",
              "a_c",
              "abc"
            ])
          })))

        it.effect("isNull: true and false", () =>
          fresh(Effect.gen(function*() {
            expect(names(yield* Job.get(people, { email: { isNull: false } }))).toEqual(["alan", "a_c", "abc"])
            expect((yield* Job.get(people, { email: { isNull: true } })).length).toBe(3)
          })))

        it.effect("fields are joined with AND; orderBy and limit apply", () =>
          fresh(Effect.gen(function*() {
            expect(names(yield* Job.get(people, { isStaff: false, age: 30, email: { isNull: true } }))).toEqual(["a%b"])
            const youngestFirst = QueryJob.filter(Person, { table, orderBy: ["age", "-username"], limit: 3 })
            expect(names(yield* Job.get(youngestFirst, {}))).toEqual(["x\\y", "abc", "a_c"])
            expect((yield* Job.get(people, {})).length).toBe(seed.length)
          })))
      })

      describe("get", () => {
        it.effect("one row: an instance of the model, decoded through its schema", () =>
          fresh(Effect.gen(function*() {
            const found = yield* Job.get(person, { id: big })
            expect(found).toBeInstanceOf(Person)
            expect(found).toMatchObject({ id: big, username: "a%b", email: null, isStaff: false, age: 30 })
            expect(found.joinedAt).toEqual(new Date("2023-03-01T00:00:00.000Z"))
          })))

        it.effect("no row: NotFound, naming the table and the filter", () =>
          fresh(Effect.gen(function*() {
            const error = yield* Effect.flip(Job.get(person, { username: "nobody", isStaff: true }))
            expect(error).toBeInstanceOf(NotFound)
            expect(error).toMatchObject({ model: "Person", table, filter: `username = "nobody" and isStaff = true` })
            expect(error.message).toContain(`table "${table}"`)
          })))

        it.effect("two rows: MultipleFound, naming the table and the filter", () =>
          fresh(Effect.gen(function*() {
            const error = yield* Effect.flip(Job.get(person, { age: 30 }))
            expect(error).toBeInstanceOf(MultipleFound)
            expect(error).toMatchObject({ model: "Person", table, filter: "age = 30" })
          })))
      })

      describe("caching", () => {
        it.effect("a changed row is not seen until the entry is stale; then it is refreshed", () =>
          fresh(Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            const alan = person.pipe(Job.withLifetime("1 minute"))
            expect((yield* Job.lookup(alan, { username: "alan" })).status).toBe("miss")
            yield* sql`UPDATE ${sql(table)} SET age = 42 WHERE username = 'alan'`

            const cached = yield* Job.lookup(alan, { username: "alan" })
            expect(cached).toMatchObject({ status: "hit", value: { age: 41 } })

            yield* TestClock.adjust("61 seconds")
            const stale = yield* Job.lookup(alan, { username: "alan" })
            expect(stale).toMatchObject({ status: "stale", syncFetch: false, value: { age: 41 } })
            expect(yield* TestRefreshQueue.drain).toBe(1)

            const refreshed = yield* Job.lookup(alan, { username: "alan" })
            expect(refreshed).toMatchObject({ status: "hit", value: { age: 42 } })
            expect(refreshed.value).toBeInstanceOf(Person)
          })))

        it.effect("a filter job sees a new row after its lifetime (inline refresh)", () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            const staff = people.pipe(Job.withLifetime("5 minutes"))
            expect(names(yield* Job.get(staff, { isStaff: true }))).toEqual(["alan", "grace"])
            yield* sql`UPDATE ${sql(table)} SET is_staff = ${true} WHERE id = 5`
            expect(names(yield* Job.get(staff, { isStaff: true }))).toEqual(["alan", "grace"])
            yield* TestClock.adjust("6 minutes")
            // Served stale while the inline queue refreshes it, after the answer; once
            // that refresh has stored, a read has the row.
            expect(names(yield* Job.get(staff, { isStaff: true }))).toEqual(["alan", "grace"])
            const refreshed = Effect.map(Job.rawGet(staff, { isStaff: true }), (entry) =>
              entry._tag === "Some" && entry.value._tag === "Value" && entry.value.value.length === 3)
            for (let i = 0; i < 200 && !(yield* refreshed); i++) yield* TestServices.provideLive(Effect.sleep("10 millis"))
            expect(names(yield* Job.get(staff, { isStaff: true }))).toEqual(["alan", "grace", "abc"])
          }).pipe(
            Effect.provide(Layer.mergeAll(CacheStore.layerMemory({ capacity: 100 }), RefreshQueue.layerInline)),
            (test) => Effect.zipRight(reseed, test)
          ))
      })

      describe("injection", () => {
        it.effect("values are bound parameters: quotes and SQL in values match nothing and change nothing", () =>
          fresh(Effect.gen(function*() {
            const attempts = [
              `alan' OR '1'='1`,
              `'; DROP TABLE ${table}; --`,
              `alan" OR "1"="1`,
              `\\'; DELETE FROM ${table}; --`
            ]
            for (const value of attempts) {
              expect(yield* Job.get(people, { username: value })).toEqual([])
              expect(yield* Job.get(people, { username: { startsWith: value } })).toEqual([])
              expect(yield* Job.get(people, { username: { contains: value } })).toEqual([])
              expect(names(yield* Job.get(people, { username: { in: ["alan", value] } }))).toEqual(["alan"])
              expect(yield* Effect.flip(Job.get(person, { username: value }))).toBeInstanceOf(NotFound)
            }
            expect(yield* rowCount).toBe(seed.length)
          })))

        it.effect("field and lookup names are checked against the model, never written into SQL", () =>
          fresh(Effect.gen(function*() {
            const attempts: Array<Record<string, unknown>> = [
              { [`username = username OR 1=1 --`]: "x" },
              { [`username" = "username`]: "x" },
              { [`id; DROP TABLE ${table}; --`]: 1 },
              { constructor: "x" },
              { toString: "x" },
              JSON.parse(`{"__proto__": {"username": "alan"}}`),
              { username: { [`startsWith') OR 1=1 --`]: "a" } },
              { username: { eq: "alan" } }
            ]
            for (const filter of attempts) {
              const error = yield* Effect.flip(Job.get(people, filter as QueryJob.Filter<typeof Person>))
              expect(error).toBeInstanceOf(FilterError)
            }
            expect(yield* rowCount).toBe(seed.length)
          })))

        it.effect("a SQL fragment passed as a value is refused, not spliced into the statement", () =>
          fresh(Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            for (const value of [sql.literal("username"), sql`1=1`, sql("username")]) {
              const filter = { username: value } as unknown as QueryJob.Filter<typeof Person>
              expect(yield* Effect.flip(Job.get(people, filter))).toBeInstanceOf(FilterError)
            }
          })))

        it.effect("a table name is an escaped identifier", () =>
          fresh(Effect.gen(function*() {
            const evil = QueryJob.filter(Person, { table: `${table}"; DROP TABLE "${table}` })
            const error = yield* Effect.flip(Job.get(evil, {}))
            expect(error._tag).toBe("SqlError")
            expect(yield* rowCount).toBe(seed.length)
          })))
      })

      describe("filters are checked before any SQL runs", () => {
        // The table does not exist: any statement would fail with SqlError.
        const missing = QueryJob.filter(Person, { table: `missing_${randomUUID().slice(0, 8)}` })
        const bad: Array<[string, unknown]> = [
          ["not a field", { bogus: 1 }],
          ["a string lookup on a number field", { age: { startsWith: "1" } }],
          ["an order lookup on a boolean field", { isStaff: { gt: true } }],
          ["isNull on a field that is never NULL", { username: { isNull: true } }],
          ["a value of another type", { age: "forty" }],
          ["in without an array", { id: { in: 1n } }],
          ["in with NULL", { email: { in: [null] } }],
          ["an empty lookup object", { age: {} }],
          ["an unknown lookup", { age: { between: [1, 2] } }],
          ["isNull that is not a boolean", { email: { isNull: "yes" } }],
          ["not an object", "alan"]
        ]
        for (const [what, filter] of bad) {
          it.effect(`${what}: FilterError`, () =>
            fresh(Effect.gen(function*() {
              const error = yield* Effect.flip(Job.get(missing, filter as QueryJob.Filter<typeof Person>))
              expect(error).toBeInstanceOf(FilterError)
              expect(error.message).toContain("Person")
            })))
        }

        it.effect("a valid filter on the missing table does reach the database", () =>
          fresh(Effect.gen(function*() {
            expect((yield* Effect.flip(Job.get(missing, { age: 1 })))._tag).toBe("SqlError")
          })))

        it.effect("the error names the field and says what fits", () =>
          fresh(Effect.gen(function*() {
            const error = yield* Effect.flip(Job.get(missing, { bogus: 1 } as QueryJob.Filter<typeof Person>))
            expect(error).toMatchObject({ _tag: "FilterError", model: "Person", field: "bogus" })
            expect(error.message).toContain("id, username, email, isStaff, age, joinedAt")
          })))
      })

      describe("what the database would refuse or answer wrongly is a FilterError before any SQL runs", () => {
        const max = dialect.maxParameters
        const upTo = (n: number) => Array.from({ length: n }, (_, i) => BigInt(i + 1))
        const thousands = (n: number) => n.toLocaleString("en-US")

        it.effect(`an in list of ${max + 1} values: FilterError naming the limit of ${max}`, () =>
          fresh(Effect.gen(function*() {
            const error = yield* Effect.flip(Job.get(people, { id: { in: upTo(max + 1) } }))
            expect(error).toBeInstanceOf(FilterError)
            expect(error.message).toContain(`${thousands(max + 1)} bound parameters`)
            expect(error.message).toContain(`at most ${thousands(max)}`)
            expect(error.message).toContain(dialect.name === "PostgreSQL" ? "PostgreSQL" : "SQLite")
            expect(error.message).toContain("Job.getMany")
          })))

        it.effect(`an in list of ${max} values runs the SELECT`, () =>
          fresh(Effect.gen(function*() {
            // Every seeded id but 2^53 + 1 is in the list.
            expect(names(yield* Job.get(people, { id: { in: upTo(max) } }))).toEqual(["alan", "grace", "a_c", "abc", "x\\y"])
          })))

        it.effect("every bound value counts: in values, comparisons, patterns and the LIMIT", () =>
          fresh(Effect.gen(function*() {
            const firstTwo = QueryJob.filter(Person, { table, orderBy: ["id"], limit: 2 })
            // max - 3 values, gt, startsWith and the LIMIT: max.
            const fits = { id: { in: upTo(max - 3) }, age: { gt: 20 }, username: { startsWith: "a" } }
            expect(names(yield* Job.get(firstTwo, fits))).toEqual(["alan", "a_c"])
            const over = { id: { in: upTo(max - 2) }, age: { gt: 20 }, username: { startsWith: "a" } }
            const error = yield* Effect.flip(Job.get(firstTwo, over))
            expect(error).toBeInstanceOf(FilterError)
            expect(error.message).toContain(`${thousands(max + 1)} bound parameters`)
          })))

        it.effect("NaN, ±Infinity and an invalid Date: FilterError naming the field", () =>
          fresh(Effect.gen(function*() {
            const refused: Array<QueryJob.Filter<typeof Person>> = [
              { age: { gt: NaN } },
              { age: NaN },
              { age: { in: [30, NaN] } },
              { age: { lt: Infinity } },
              { age: { gte: -Infinity } },
              { joinedAt: { gt: new Date(NaN) } }
            ]
            for (const filter of refused) {
              const error = yield* Effect.flip(Job.get(people, filter))
              expect(error).toBeInstanceOf(FilterError)
              expect(error).toMatchObject({ field: Object.keys(filter)[0] })
            }
          })))

        if (dialect.name === "PostgreSQL") {
          it.effect("a string holding NUL: FilterError (PostgreSQL's text cannot hold it)", () =>
            fresh(Effect.gen(function*() {
              const refused: Array<QueryJob.Filter<typeof Person>> = [
                { username: "alan\u0000" },
                { username: { in: ["alan", "gr\u0000ace"] } },
                { username: { startsWith: "a\u0000" } },
                { email: { gt: "\u0000" } }
              ]
              for (const filter of refused) {
                const error = yield* Effect.flip(Job.get(people, filter))
                expect(error).toBeInstanceOf(FilterError)
                expect(error).toMatchObject({ field: Object.keys(filter)[0] })
                expect(error.message).toContain("NUL")
              }
            })))
        } else {
          it.effect("a string holding NUL: equality binds it exactly; a LIKE pattern holding it is a FilterError", () =>
            fresh(Effect.gen(function*() {
              expect(yield* Job.get(people, { username: "alan\u0000" })).toEqual([])
              const error = yield* Effect.flip(Job.get(people, { username: { contains: "\u0000" } }))
              expect(error).toBeInstanceOf(FilterError)
              expect(error.message).toContain("NUL")
            })))
        }
      })

      describe("codecs", () => {
        it.effect("a filter with dates, booleans, bigint ids and NULL survives encode, JSON, decode, with its key", () =>
          Effect.sync(() => {
            const filter: QueryJob.Filter<typeof Person> = {
              id: { in: [1n, big] },
              isStaff: false,
              joinedAt: { gte: new Date("2020-01-01T00:00:00.000Z"), lt: new Date("2030-01-01T00:00:00.000Z") },
              email: null,
              username: { startsWith: "a%" }
            }
            const schema = people.inputSchema!
            const wire = JSON.parse(JSON.stringify(Schema.encodeSync(schema)(filter)))
            const back = Schema.decodeUnknownSync(schema)(wire)
            expect(back).toEqual(filter)
            expect(people.key(back)).toEqual(people.key(filter))
          }))

        it.effect("an encoded filter that does not fit the model does not decode", () =>
          Effect.sync(() => {
            const decode = Schema.decodeUnknownEither(people.inputSchema!)
            expect(Either.isLeft(decode({ bogus: { eq: 1 } }))).toBe(true)
            expect(Either.isLeft(decode({ age: { startsWith: "1" } }))).toBe(true)
            expect(Either.isLeft(decode("not a filter"))).toBe(true)
          }))

        it.effect("rows are stored as JSON and read back as instances (a store that leaves the process)", () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            const first = yield* Job.get(people, { id: { in: [big, 1n] } })
            // The read's write follows its answer.
            yield* storedBy(people, { id: { in: [big, 1n] } })
            yield* sql`DELETE FROM ${sql(table)}`
            const stored = yield* Job.lookup(people, { id: { in: [big, 1n] } })
            expect(stored.status).toBe("hit")
            expect(stored.value).toEqual(first)
            expect(stored.value[1]).toBeInstanceOf(Person)
            expect(stored.value[1].id).toBe(big)
            expect(stored.value[1].joinedAt).toEqual(new Date("2023-03-01T00:00:00.000Z"))
            const one = yield* Effect.flip(Job.get(person, { id: 1n }))
            expect(one).toBeInstanceOf(NotFound)
          }).pipe(
            Effect.provide(Layer.mergeAll(
              CacheStore.layerKeyValueStore().pipe(Layer.provide(KeyValueStore.layerMemory)),
              TestRefreshQueue.layer
            )),
            (test) => Effect.zipRight(reseed, test)
          ))

        it.effect("keys hold the model, the table and the canonical filter", () =>
          Effect.sync(() => {
            expect(person.name).toMatch(/^QueryJob\.get\(Person#[A-Za-z0-9_-]{16}, /)
            expect(person.name.endsWith(`, "${table}")`)).toBe(true)
            const other = QueryJob.get(Person, { table: `${table}_archive` })
            const key = (job: typeof person, filter: QueryJob.Filter<typeof Person>) => Either.getOrThrow(job.key(filter))
            expect(key(person, { username: "alan" })).not.toBe(key(other, { username: "alan" }))
            expect(key(person, { username: "alan" })).not.toBe(key(person, { username: "grace" }))
            expect(key(person, { username: "alan", isStaff: true })).toBe(key(person, { isStaff: true, username: "alan" }))
            expect(key(person, { id: 1n })).not.toBe(key(person, { id: 2n }))
            expect(key(person, { username: "alan" })).toBe(key(QueryJob.get(Person, { table }), { username: "alan" }))
          }))
      })
    })
  })
}
