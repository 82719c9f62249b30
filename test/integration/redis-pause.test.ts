/**
 * One read, one store timeout (DESIGN.md §6): while Redis hangs (`CLIENT PAUSE` on a server
 * of the test's own), a read's store commands (its lookup, its claim, its wait for another
 * process) share one deadline, so that a read answers within one `commandTimeout` plus its
 * fetch whatever the number of readers in flight.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Layer, Schema } from "effect"
import { Job, TestRefreshQueue } from "effect-cacheback"
import { RedisCacheStore } from "effect-cacheback/redis"
import { requireService } from "../support/services.js"
import { type PrivateRedis, startPrivateRedis } from "./fixtures/private-redis.js"

const up = await requireService("redis")

describe.skipIf(!up)("reads while Redis hangs", () => {
  let redis: PrivateRedis
  beforeAll(async () => {
    redis = await startPrivateRedis()
  })
  afterAll(() => redis.stop())

  it.live("64 readers under CLIENT PAUSE: no read takes longer than commandTimeout + fetch + 250 ms", () =>
    Effect.gen(function*() {
      const commandTimeout = 1_000
      const fetchMillis = 20
      const job = Job.make({
        name: "paused",
        fetch: (input: string) => Effect.as(Effect.sleep(fetchMillis), input)
      }).pipe(Job.withSchema({ input: Schema.String, value: Schema.String }), Job.withSingleFlight("cluster"))
      const durations: Array<number> = []
      const reader = (id: number) =>
        Effect.gen(function*() {
          const end = (yield* Clock.currentTimeMillis) + 3_500
          let n = 0
          while ((yield* Clock.currentTimeMillis) < end) {
            const start = yield* Clock.currentTimeMillis
            // Distinct keys, cold: every read looks up, claims and fetches.
            yield* Job.get(job, `r${id}-${n++}`)
            durations.push((yield* Clock.currentTimeMillis) - start)
          }
        })
      yield* Effect.gen(function*() {
        yield* Job.get(job, "warm-up")
        const readers = yield* Effect.fork(Effect.all(Array.from({ length: 64 }, (_, i) => reader(i)), { concurrency: "unbounded" }))
        yield* Effect.sleep(300)
        yield* Effect.promise(() => redis.admin.call("CLIENT", "PAUSE", "2000", "ALL"))
        yield* Effect.fromFiber(readers)
      }).pipe(Effect.provide(Layer.merge(RedisCacheStore.layer({ url: redis.url, prefix: "paused", commandTimeout }), TestRefreshQueue.layer)))
      const bound = commandTimeout + fetchMillis + 250
      const over = durations.filter((millis) => millis > bound)
      const slowest = Math.max(...durations)
      console.log(`reads: ${durations.length}, over ${bound} ms: ${over.length}, slowest: ${slowest} ms`)
      expect(durations.length).toBeGreaterThan(64)
      expect(over).toEqual([])
    }), 20_000)
})
