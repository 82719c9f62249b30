/**
 * A refresh traced to its request across processes, on the real Redis:
 * this process is a producer traced by OpenTelemetry (an in-memory span exporter); a worker
 * process (fixtures/traced-worker.ts) is traced too and prints the spans it finishes. A
 * stale read in a request span enqueues a task carrying the request's W3C `traceparent`;
 * the worker's `cacheback.refresh` span is the root of a trace of its own, with a link to
 * the request span.
 */
import { NodeSdk } from "@effect/opentelemetry"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "@effect/vitest"
import { Queue } from "bullmq"
import { Effect, Layer, Option } from "effect"
import { Job } from "effect-cacheback"
import { BullRefreshQueue, RedisCacheStore } from "effect-cacheback/redis"
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { redisUrl, requireService } from "../support/services.js"
import { counter } from "./fixtures/jobs.js"
import { cleanUp, eventually, keyOf, poll, quiet, rawClient, storedValue, storeStale, unique } from "./fixtures/redis.js"
import type { SpanData } from "./fixtures/traced-worker.js"

const up = await requireService("redis")
const root = fileURLToPath(new URL("../..", import.meta.url))

describe.skipIf(!up)("a refresh traced to the request that enqueued it, across processes", () => {
  const raw = rawClient()
  const prefix = unique("traced")
  const queueName = unique("traced")
  let worker: ChildProcess
  let output = ""
  const spans: Array<SpanData> = []

  beforeAll(async () => {
    worker = spawn(process.execPath, ["--import", "tsx", fileURLToPath(new URL("./fixtures/traced-worker.ts", import.meta.url))], {
      cwd: root,
      env: { ...process.env, REDIS_URL: redisUrl, CACHEBACK_WHO: "traced-worker", CACHEBACK_PREFIX: prefix, CACHEBACK_QUEUE: queueName },
      stdio: ["ignore", "pipe", "pipe", "ipc"]
    })
    let pending = ""
    worker.stdout!.on("data", (chunk) => {
      output += chunk
      pending += chunk
      const lines = pending.split("\n")
      pending = lines.pop()!
      for (const line of lines) if (line.startsWith("span ")) spans.push(JSON.parse(line.slice(5)))
    })
    worker.stderr!.on("data", (chunk) => (output += chunk))
    await eventually("the worker process consumes its queue", 30_000, () => {
      if (worker.exitCode !== null) throw new Error(`the worker exited (${worker.exitCode}):\n${output}`)
      return output.includes("ready") ? true : undefined
    }, 100)
  }, 40_000)
  afterAll(async () => {
    if (worker?.exitCode === null) {
      const exited = new Promise((resolve) => worker.once("exit", resolve))
      worker.disconnect()
      await exited
    }
    await cleanUp(raw, [prefix], [queueName])
    raw.disconnect()
  }, 30_000)
  beforeEach(({ onTestFailed }) => onTestFailed(() => console.log(`--- output of the worker ---\n${output}`)))

  const exporter = new InMemorySpanExporter()
  const producer = Layer.mergeAll(
    RedisCacheStore.layer({ url: redisUrl, prefix }),
    BullRefreshQueue.layer({ connection: { url: redisUrl }, queueName }),
    NodeSdk.layer(() => ({ resource: { serviceName: "producer" }, spanProcessor: new SimpleSpanProcessor(exporter) }))
  )

  it.live("the worker's cacheback.refresh span is a root span linked to the producer's request span", () =>
    Effect.gen(function*() {
      yield* storeStale(counter, 7, { n: 7, by: "stale" })
      const served = yield* Job.get(counter, 7).pipe(Effect.withSpan("GET /counter/7"))
      expect(served).toEqual({ n: 7, by: "stale" })
      yield* poll(
        "the worker refreshes the key",
        10_000,
        Effect.map(storedValue(counter, 7), (value) => Option.getOrUndefined(value)?.by === "traced-worker" ? true : undefined)
      )

      const request = exporter.getFinishedSpans().find((span) => span.name === "GET /counter/7")!
      const { spanId, traceId } = request.spanContext()
      // The task carried the request's trace context, in W3C form.
      const bull = new Queue(queueName, { connection: raw.duplicate() })
      // The worker stores the value, then BullMQ marks the task completed.
      const task = yield* Effect.promise(() => eventually("the task is completed", 5_000, async () => (await bull.getCompleted())[0]))
      yield* Effect.promise(() => bull.close())
      expect(task.data.traceparent).toBe(`00-${traceId}-${spanId}-01`)

      const refresh = yield* Effect.promise(() =>
        eventually("the worker prints its refresh span", 5_000, () =>
          spans.find((span) => span.name === "cacheback.refresh" && span.attributes["cacheback.key"] === keyOf(counter, 7)))
      )
      expect(refresh.links).toEqual([{ traceId, spanId }])
      expect(refresh.parentSpanId).toBeUndefined()
      expect(refresh.traceId).not.toBe(traceId)
      expect(refresh.attributes).toMatchObject({ "cacheback.job": "counter", "cacheback.queue": queueName, "cacheback.attempt": 1 })
      // The worker's fetch is a child of its refresh span, in the refresh's trace.
      const fetch = spans.find((span) => span.name === "cacheback.fetch" && span.parentSpanId === refresh.spanId)
      expect(fetch?.traceId).toBe(refresh.traceId)
    }).pipe(Effect.provide(producer), quiet), 30_000)

  it.live("a task whose traceparent does not parse still runs, its span linked to nothing", () =>
    Effect.gen(function*() {
      const bull = yield* Effect.acquireRelease(
        Effect.sync(() => new Queue(queueName, { connection: raw.duplicate() })),
        (queue) => Effect.promise(() => queue.close())
      )
      yield* Effect.promise(() =>
        bull.add("counter", { job: "counter", key: keyOf(counter, 8), input: 8, store: `redis:${prefix}`, traceparent: "00-not-a-trace-01" })
      )
      yield* poll(
        "the worker refreshes the key",
        10_000,
        Effect.map(storedValue(counter, 8), (value) => Option.getOrUndefined(value)?.by === "traced-worker" ? true : undefined)
      )
      const refresh = yield* Effect.promise(() =>
        eventually("the worker prints its refresh span", 5_000, () =>
          spans.find((span) => span.name === "cacheback.refresh" && span.attributes["cacheback.key"] === keyOf(counter, 8)))
      )
      expect(refresh.links).toEqual([])
      expect(refresh.parentSpanId).toBeUndefined()
    }).pipe(Effect.scoped, Effect.provide(producer), quiet), 30_000)

  it.live("an untraced read sends no traceparent", () =>
    Effect.gen(function*() {
      const bull = yield* Effect.acquireRelease(
        Effect.sync(() => new Queue(queueName, { connection: raw.duplicate() })),
        (queue) => Effect.promise(() => queue.close())
      )
      yield* Effect.promise(() => bull.pause())
      yield* Effect.addFinalizer(() => Effect.promise(() => bull.resume()))
      yield* storeStale(counter, 9, { n: 9, by: "stale" })
      yield* Job.get(counter, 9)
      const [task] = yield* Effect.promise(() =>
        eventually("the task is queued", 5_000, async () => {
          const waiting = await bull.getWaiting()
          return waiting.length > 0 ? waiting : undefined
        })
      )
      expect(Object.keys(task!.data).sort()).toEqual(["cacheTtl", "input", "job", "key", "lifetime", "store"])
    }).pipe(Effect.scoped, Effect.provide(Layer.mergeAll(
      RedisCacheStore.layer({ url: redisUrl, prefix }),
      BullRefreshQueue.layer({ connection: { url: redisUrl }, queueName })
    )), quiet), 30_000)
})
