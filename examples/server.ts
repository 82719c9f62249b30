/**
 * cacheback's seed views as a web server: `GET /users/:username` reads one user through
 * `QueryJob.get`, `GET /staff` the staff through `QueryJob.filter`. Each response says how
 * the cache answered in `X-Cache: hit | stale | miss`. `GET /metrics` serves the library's
 * metrics in Prometheus' text format, through `@effect/opentelemetry`. The SQLite file is
 * created and seeded on start.
 *
 *   npm run example:server    # PORT (3000), SQLITE_FILE (in the temp directory), LIFETIME_SECONDS (30)
 *   curl -i localhost:3000/staff
 *   curl localhost:3000/metrics
 */
import { NodeSdk } from "@effect/opentelemetry"
import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Model, SqlClient } from "@effect/sql"
import { LibsqlClient } from "@effect/sql-libsql"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import { Duration, Effect, Layer, Schema, String as Str } from "effect"
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

const lifetime = Duration.seconds(Number(process.env.LIFETIME_SECONDS ?? 30))
const userByName = QueryJob.get(User, { table: "users" }).pipe(Job.withLifetime(lifetime))
const staff = QueryJob.filter(User, { table: "users", orderBy: ["username"] }).pipe(Job.withLifetime(lifetime))

// Every effect/Metric of the process (the library's counters, histogram and gauges) goes to
// an OpenTelemetry reader: the Prometheus exporter, whose text the app serves itself at
// GET /metrics rather than on a server of its own (preventServerStart).
const prometheus = new PrometheusExporter({ preventServerStart: true })
const Observability = NodeSdk.layer(() => ({ resource: { serviceName: "cacheback-example" }, metricReader: prometheus }))
const metrics = Effect.map(Effect.promise(() => prometheus.collect()), ({ resourceMetrics }) =>
  HttpServerResponse.text(new PrometheusSerializer().serialize(resourceMetrics), {
    contentType: "text/plain; version=0.0.4; charset=utf-8"
  }))

const seed = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE, is_staff INTEGER NOT NULL)`
  yield* sql`DELETE FROM users`
  yield* sql`INSERT INTO users ${
    sql.insert([
      { username: "alan", isStaff: true },
      { username: "grace", isStaff: true },
      { username: "linus", isStaff: false }
    ])
  }`
})

const respond = (found: Job.Lookup<unknown>) =>
  HttpServerResponse.json(found.value, { headers: { "x-cache": found.status } })

const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/users/:username",
    HttpRouter.schemaPathParams(Schema.Struct({ username: Schema.String })).pipe(
      Effect.flatMap(({ username }) => Job.lookup(userByName, { username })),
      Effect.flatMap(respond),
      // Not found is not cached: the query ran, a miss.
      Effect.catchTag("NotFound", (error) =>
        HttpServerResponse.json({ error: error.message }, { status: 404, headers: { "x-cache": "miss" } }))
    )
  ),
  HttpRouter.get("/staff", Effect.flatMap(Job.lookup(staff, { isStaff: true }), respond)),
  HttpRouter.get("/metrics", metrics)
)

const port = Number(process.env.PORT ?? 3000)
const file = process.env.SQLITE_FILE ?? join(tmpdir(), "effect-cacheback-example.db")

const main = Effect.zipRight(
  seed,
  Layer.launch(HttpServer.serve(router).pipe(
    HttpServer.withLogAddress,
    Layer.provide(NodeHttpServer.layer(createServer, { port }))
  ))
)

main.pipe(
  Effect.provide(Layer.mergeAll(
    LibsqlClient.layer({ url: `file:${file}`, transformQueryNames: Str.camelToSnake, transformResultNames: Str.snakeToCamel }),
    CacheStore.layerMemory({ capacity: 10_000 }),
    RefreshQueue.layerMemory({ concurrency: 4 }),
    Observability
  )),
  NodeRuntime.runMain
)
