/**
 * Writes beside cached reads: `GET /staff` reads the staff through a query job,
 * cached for an hour; `POST /staff/:username` inserts a staff member, then marks every
 * entry of every query job on the table stale with `QueryJob.invalidateTable`. The next
 * read answers the cached rows while the refresh runs; the one after has the new row.
 *
 *   npm run example:writes              # PORT (3001), SQLITE_FILE (in the temp directory)
 *   curl localhost:3001/staff && curl -X POST localhost:3001/staff/ada && curl localhost:3001/staff
 */
import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Model, SqlClient } from "@effect/sql"
import { LibsqlClient } from "@effect/sql-libsql"
import { Effect, Layer, Schema, String as Str } from "effect"
import { CacheStore, Job, RefreshQueue } from "effect-cacheback"
import { QueryJob } from "effect-cacheback/sql"
import { createServer } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"

class User extends Model.Class<User>("User")({
  id: Model.Generated(Schema.Int),
  username: Schema.String,
  isStaff: Schema.BooleanFromUnknown // SQLite stores booleans as 0 and 1
}) {}

// An hour: without the invalidation, a new row would wait that long to show.
const staff = QueryJob.filter(User, { table: "users", orderBy: ["username"] }).pipe(Job.withLifetime("1 hour"))

const seed = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE, is_staff INTEGER NOT NULL)`
  yield* sql`DELETE FROM users`
  yield* sql`INSERT INTO users ${sql.insert([{ username: "alan", isStaff: true }, { username: "grace", isStaff: true }])}`
})

const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/staff",
    Effect.flatMap(Job.lookup(staff, { isStaff: true }), (found) =>
      HttpServerResponse.json(found.value.map((user) => user.username), { headers: { "x-cache": found.status } }))
  ),
  HttpRouter.post(
    "/staff/:username",
    HttpRouter.schemaPathParams(Schema.Struct({ username: Schema.String })).pipe(
      Effect.flatMap(({ username }) =>
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql`INSERT INTO users ${sql.insert({ username, isStaff: true })}`)
      ),
      // After the write: every cached read of the table is stale, whatever its filter.
      Effect.zipRight(QueryJob.invalidateTable("users")),
      Effect.zipRight(HttpServerResponse.empty({ status: 201 }))
    )
  )
)

const port = Number(process.env.PORT ?? 3001)
const file = process.env.SQLITE_FILE ?? join(tmpdir(), "effect-cacheback-writes.db")

Effect.zipRight(seed, Layer.launch(HttpServer.serve(router).pipe(HttpServer.withLogAddress, Layer.provide(NodeHttpServer.layer(createServer, { port }))))).pipe(
  Effect.provide(Layer.mergeAll(
    LibsqlClient.layer({ url: `file:${file}`, transformQueryNames: Str.camelToSnake, transformResultNames: Str.snakeToCamel }),
    CacheStore.layerMemory({ capacity: 10_000 }),
    RefreshQueue.layerMemory({ concurrency: 4 })
  )),
  NodeRuntime.runMain
)
