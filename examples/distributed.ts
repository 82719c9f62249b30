/**
 * Going distributed: this process reads reports through the Redis cache; two worker
 * processes (examples/worker.ts) compute them from the BullMQ queue. The timeline shows
 * misses answered at once while a worker computes, hits, and stale values served while a
 * worker refreshes them, with who computed each value.
 *
 *   npm run example:distributed       (REDIS_URL, default redis://127.0.0.1:6379)
 */
import { Console, Effect, Logger, LogLevel } from "effect"
import { Job } from "effect-cacheback"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { redisLayers, report, requireRedis } from "./worker.js"

await requireRedis()

const days = ["2024-05-01", "2024-05-02", "2024-05-03", "2024-05-04"]
const workerFile = fileURLToPath(new URL("./worker.ts", import.meta.url))

/** Starts a worker process; resolves once it consumes the queue. */
const startWorker = (name: string) =>
  new Promise<ReturnType<typeof spawn>>((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", workerFile], {
      env: { ...process.env, WORKER_NAME: name, LOG_LEVEL: "warning" },
      stdio: ["ignore", "pipe", "inherit"]
    })
    child.stdout!.on("data", (chunk: Buffer) => {
      const text = String(chunk)
      process.stdout.write(text.split("\n").filter((line) => line !== "" && !line.endsWith("ready")).map((line) => `    ${line}\n`).join(""))
      if (text.includes("ready")) resolve(child)
    })
  })

const round = (title: string) =>
  Effect.gen(function*() {
    yield* Console.log(`\n${title}`)
    for (const day of days) {
      const { status, syncFetch, value } = yield* Job.lookup(report, day)
      const what = value === undefined ? "nothing yet" : `computed by ${value.by} at ${value.computedAt.toISOString().slice(11, 23)}`
      const how = syncFetch === false ? " (refresh queued)" : ""
      yield* Console.log(`  ${day}  ${status.padEnd(5)}  ${what}${how}`)
    }
  })

const program = Effect.gen(function*() {
  for (const day of days) yield* Job.delete(report, day) // start from an empty cache
  yield* round("Empty cache: every read is a miss, answered at once; the workers compute")
  yield* Effect.sleep("1 second")
  yield* round("A second later: hits, computed by both workers")
  yield* Effect.sleep("2 seconds")
  yield* round("Past the 2 s lifetime: stale values are served while the workers refresh them")
  yield* Effect.sleep("1 second")
  yield* round("A second later: fresh values again")
})

console.log("Starting two worker processes…")
const workers = await Promise.all([startWorker("worker-1"), startWorker("worker-2")])
try {
  await Effect.runPromise(program.pipe(Effect.provide(redisLayers), Logger.withMinimumLogLevel(LogLevel.Error)))
} finally {
  // SIGTERM: each worker finishes its running refreshes and closes.
  await Promise.all(workers.map((worker) => new Promise((exit) => worker.once("exit", exit).kill("SIGTERM"))))
}
