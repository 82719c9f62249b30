/**
 * A refresh worker process: runs the refreshes that producers put on BullMQ and stores the
 * values in the Redis cache they read. Start as many as you like; stop one with Ctrl-C
 * (running refreshes finish) or kill it (its task goes to another worker).
 *
 *   npm run example:worker            (REDIS_URL, default redis://127.0.0.1:6379)
 *
 * `examples/distributed.ts` starts two of these and a producer.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Layer, Logger, LogLevel, Schema } from "effect"
import { Job } from "effect-cacheback"
import { BullRefreshQueue, RedisCacheStore, RefreshWorker } from "effect-cacheback/redis"
import * as net from "node:net"
import { fileURLToPath } from "node:url"

export const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"
const name = process.env.WORKER_NAME ?? `worker-${process.pid}`

/** A slow report. Producers and workers share the job: a task finds it by its name. */
export const report = Job.make({
  name: "dailyReport",
  fetch: (day: string) =>
    Console.log(`[${name}] computing the report of ${day}`).pipe(
      Effect.zipRight(Effect.sleep("300 millis")),
      Effect.as({ day, by: name, computedAt: new Date() })
    )
}).pipe(
  Job.withLifetime("2 seconds"),
  Job.withSyncOnMiss(false), // a miss answers `undefined` at once and queues the refresh
  Job.withSchema({
    input: Schema.String,
    value: Schema.Struct({ day: Schema.String, by: Schema.String, computedAt: Schema.Date })
  })
)

/** The cache and the queue, for producers and workers alike. */
export const redisLayers = Layer.mergeAll(
  RedisCacheStore.layer({ url, prefix: "cacheback-example" }),
  BullRefreshQueue.layer({ connection: { url }, queueName: "cacheback-example" })
)

/** Exits with how to start Redis when it does not answer. */
export const requireRedis = async (): Promise<void> => {
  const { hostname, port } = new URL(url)
  const ok = await new Promise<boolean>((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port || 6379) })
    const done = (ok: boolean) => (socket.destroy(), resolve(ok))
    socket.setTimeout(1000, () => done(false)).once("connect", () => done(true)).once("error", () => done(false))
  })
  if (ok) return
  console.error(`No Redis at ${url}. Start one with:\n  redis-server --daemonize yes --port 6379 --save "" --appendonly no\nor set REDIS_URL.`)
  process.exit(1)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await requireRedis()
  // `RefreshWorker.run` alone is a worker until interrupted; `start` returns once it consumes,
  // to say "ready" (examples/distributed.ts waits for it), and then the scope is held open.
  // Interrupted (Ctrl-C, SIGTERM), the scope closes and the worker finishes its refreshes.
  const main = RefreshWorker.start({ jobs: [report], concurrency: 2, name }).pipe(
    Effect.zipRight(Console.log(`[${name}] ready`)),
    Effect.zipRight(Effect.never),
    Effect.scoped,
    Effect.provide(redisLayers),
    Logger.withMinimumLogLevel(process.env.LOG_LEVEL === "warning" ? LogLevel.Warning : LogLevel.Info)
  )
  NodeRuntime.runMain(main)
}
