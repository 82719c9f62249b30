/**
 * Fetch deadlines in a worker, on the real Redis and the live clock: a fetch that never
 * completes is interrupted at its deadline (`Job.withFetchTimeout`), retried per the job's
 * queue options, then failed with `FetchTimeout` as its reason; meanwhile the worker, at
 * concurrency 1, goes on with the other tasks.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Queue } from "bullmq"
import { Effect, Layer, Option, Schema } from "effect"
import { Job } from "effect-cacheback"
import { BullRefreshQueue, RedisCacheStore, RefreshWorker } from "effect-cacheback/redis"
import { redisUrl, requireService } from "../support/services.js"
import { cleanUp, eventually, poll, quiet, rawClient, storedValue, unique } from "./fixtures/redis.js"

const up = await requireService("redis")

describe.skipIf(!up)("a hung fetch in a worker", () => {
  const raw = rawClient()
  const prefix = unique("deadline")
  const queueName = unique("deadline")
  afterAll(async () => {
    await cleanUp(raw, [prefix], [queueName])
    raw.disconnect()
  })

  it.live("is interrupted at its deadline and retried, then failed with FetchTimeout; the other tasks run meanwhile", () => {
    let hungAttempts = 0
    const job = Job.make({
      name: "deadlineWorker",
      fetch: (key: string) => key === "hung" ? Effect.zipRight(Effect.sync(() => hungAttempts++), Effect.never) : Effect.succeed(`${key}!`)
    }).pipe(
      Job.withSchema({ input: Schema.String, value: Schema.String }),
      Job.withFetchTimeout("300 millis"),
      Job.withQueueOptions({ attempts: 2, backoff: { type: "fixed", delay: "100 millis" } })
    )
    const layer = Layer.mergeAll(
      RedisCacheStore.layer({ url: redisUrl, prefix }),
      BullRefreshQueue.layer({ connection: { url: redisUrl }, queueName })
    )
    return Effect.gen(function*() {
      yield* RefreshWorker.start({ jobs: [job], concurrency: 1 })
      yield* Job.asyncRefresh(job, "hung")
      yield* Job.asyncRefresh(job, "healthy")
      // The one worker slot is free at the hung fetch's deadline: the healthy task runs.
      expect(yield* poll("the healthy task runs", 5_000, Effect.map(storedValue(job, "healthy"), Option.getOrUndefined))).toBe("healthy!")
      const bull = new Queue(queueName, { connection: raw.duplicate() })
      const failed = yield* Effect.promise(() =>
        eventually("the hung task fails after its two attempts", 10_000, async () => {
          const tasks = await bull.getFailed()
          return tasks.length > 0 ? tasks : undefined
        })
      )
      yield* Effect.promise(() => bull.close())
      expect(hungAttempts).toBe(2)
      expect(failed[0]!.failedReason).toMatch(/did not complete within 300 ms/)
      expect(failed[0]!.attemptsMade).toBe(2)
    }).pipe(Effect.scoped, Effect.provide(layer), quiet)
  }, 30_000)
})
