/**
 * Queue depth: `cacheback_refreshes_waiting{job}`, the refreshes waiting
 * in a memory queue for a fiber, moved on enqueue and take; `cacheback_bullmq_waiting{queue}`,
 * a BullMQ queue's waiting tasks as its workers read them on the real Redis. Gauges are read
 * from Effect's metric registry by name and tag, as an exporter reads them.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Queue } from "bullmq"
import { Context, Deferred, Effect, Exit, Layer, Metric, MetricState, Scope } from "effect"
import { Job, RefreshQueue } from "effect-cacheback"
import { BullRefreshQueue, RedisCacheStore, RefreshWorker } from "effect-cacheback/redis"
import { randomUUID } from "node:crypto"
import { redisUrl, requireService } from "../support/services.js"
import { counter } from "./fixtures/jobs.js"
import { cleanUp, poll, quiet, rawClient, unique } from "./fixtures/redis.js"

/** The gauge `name` tagged `tag=value` as exporters see it; undefined while it was never set. */
const gauge = (name: string, tag: string, value: string): number | undefined => {
  const found = Metric.unsafeSnapshot().find(({ metricKey }) =>
    metricKey.name === name && metricKey.tags.some((label) => label.key === tag && label.value === value)
  )
  if (found === undefined) return undefined
  if (!MetricState.isGaugeState(found.metricState)) throw new Error(`${name} is not a gauge`)
  return Number(found.metricState.value)
}

const waitingOf = (job: string) => gauge("cacheback_refreshes_waiting", "job", job) ?? 0

/** A task of `job` for `key` whose refresh runs `refresh`. */
const task = (job: string, key: string, refresh: Effect.Effect<void>): RefreshQueue.Task => ({
  job,
  key,
  input: key,
  inputSchema: undefined,
  options: {},
  refresh
})

describe("cacheback_refreshes_waiting: the memory queue", () => {
  it.effect("counts the keys waiting for a fiber, per job: not the one running, a collapse or a run owed", () =>
    Effect.gen(function*() {
      const a = `waitingA-${randomUUID()}`
      const b = `waitingB-${randomUUID()}`
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(RefreshQueue.layerMemory({ concurrency: 1 }), scope)
      const queue = Context.get(context, RefreshQueue.RefreshQueue)
      const started = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<void>()
      let ran = 0
      const blocked = Effect.zipRight(Deferred.succeed(started, undefined), Deferred.await(gate))
      const quick = Effect.sync(() => void ran++)

      yield* queue.enqueue(task(a, "a0", blocked))
      yield* Deferred.await(started)
      expect(waitingOf(a)).toBe(0) // taken: running

      for (const key of ["a1", "a2", "a3"]) yield* queue.enqueue(task(a, key, quick))
      for (const key of ["b1", "b2"]) yield* queue.enqueue(task(b, key, quick))
      expect([waitingOf(a), waitingOf(b)]).toEqual([3, 2])

      expect(yield* queue.enqueue(task(a, "a1", quick))).toBe("deduplicated") // collapses into the waiting one
      expect(yield* queue.enqueue(task(a, "a0", quick))).toBe("enqueued") // owed after the running one
      expect([waitingOf(a), waitingOf(b)]).toEqual([3, 2])

      yield* Deferred.succeed(gate, undefined)
      // a1, a2, a3, b1, b2 and the run of a0 owed.
      while (ran < 6) yield* Effect.yieldNow()
      expect([waitingOf(a), waitingOf(b)]).toEqual([0, 0])

      // Closing the layer with keys still waiting: they no longer wait for anything.
      const started2 = yield* Deferred.make<void>()
      yield* queue.enqueue(task(a, "c0", Effect.zipRight(Deferred.succeed(started2, undefined), Effect.never)))
      yield* Deferred.await(started2)
      for (const key of ["c1", "c2"]) yield* queue.enqueue(task(a, key, quick))
      expect(waitingOf(a)).toBe(2)
      yield* Scope.close(scope, Exit.void)
      expect(waitingOf(a)).toBe(0)
    }))
})

const up = await requireService("redis")

describe.skipIf(!up)("cacheback_bullmq_waiting: a BullMQ queue, read by its workers", () => {
  const raw = rawClient()
  const prefix = unique("waiting")
  const queueName = unique("waiting")
  afterAll(async () => {
    await cleanUp(raw, [prefix], [queueName])
    raw.disconnect()
  })

  it.live("reaches the queue's waiting count (prioritized tasks included), then 0 once drained", () => {
    const layer = Layer.mergeAll(
      RedisCacheStore.layer({ url: redisUrl, prefix }),
      BullRefreshQueue.layer({ connection: { url: redisUrl }, queueName })
    )
    const urgent = counter.pipe(Job.withQueueOptions({ priority: 1 }))
    const waiting = (n: number) => Effect.map(Effect.sync(() => gauge("cacheback_bullmq_waiting", "queue", queueName)), (v) => (v === n ? v : undefined))
    return Effect.gen(function*() {
      const bull = yield* Effect.acquireRelease(
        Effect.sync(() => new Queue(queueName, { connection: raw.duplicate() })),
        (queue) => Effect.promise(() => queue.close())
      )
      // Paused, the queue keeps what is enqueued: the worker runs nothing.
      yield* Effect.promise(() => bull.pause())
      yield* RefreshWorker.start({ jobs: [counter], waitingInterval: "100 millis" })
      for (const n of [1, 2, 3, 4, 5]) yield* Job.asyncRefresh(counter, n)
      yield* Job.asyncRefresh(urgent, 6)
      expect(yield* Effect.promise(() => bull.getJobCounts("waiting", "prioritized"))).toEqual({ waiting: 5, prioritized: 1 })
      yield* poll("the gauge reads 6", 5_000, waiting(6))

      yield* Effect.promise(() => bull.resume())
      yield* poll("the gauge reads 0 once the worker has drained the queue", 10_000, waiting(0))
      // The gauge counts waiting tasks: it reads 0 once the last is taken, maybe before it is done.
      yield* poll("the last task is done", 10_000, Effect.map(Effect.promise(() => bull.getActiveCount()), (n) => (n === 0 ? n : undefined)))
      expect(yield* Effect.promise(() => bull.getJobCounts("waiting", "prioritized", "active"))).toEqual({ waiting: 0, prioritized: 0, active: 0 })
    }).pipe(Effect.scoped, Effect.provide(layer), quiet)
  }, 30_000)
})
