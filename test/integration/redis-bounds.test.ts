/**
 * Bounded reads (DESIGN.md §6) on the real Redis, through a loopback proxy that stalls (a
 * hung Redis: the connection stays open, nothing answers): a read waits for at most one
 * store timeout plus its fetch. The store's watchdog and BullMQ's enqueue timeout run on
 * `TestClock`, so the test moves time by hand and checks that nothing waited a second
 * timeout.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Option, Schema, TestClock, TestServices } from "effect"
import { Job, TestRefreshQueue } from "effect-cacheback"
import { BullRefreshQueue, RedisCacheStore } from "effect-cacheback/redis"
import { redisUrl, requireService } from "../support/services.js"
import { startProxy } from "./fixtures/proxy.js"
import { cleanUp, quiet, rawClient, storeStale, unique } from "./fixtures/redis.js"

const up = await requireService("redis")

/** Waits up to `millis` of real time for `fiber` (the test's clock does not move meanwhile). */
const awaitLive = <A, E>(fiber: Fiber.Fiber<A, E>, millis: number) =>
  TestServices.provideLive(Effect.timeoutOption(Fiber.join(fiber), millis))

describe.skipIf(!up)("a read answers within one store timeout plus its fetch", () => {
  const raw = rawClient()
  const prefixes: Array<string> = []
  const queues: Array<string> = []
  afterAll(async () => {
    await cleanUp(raw, prefixes, queues)
    raw.disconnect()
  })

  let fetches = 0
  const job = Job.make({ name: "bounds", fetch: (input: string) => Effect.sync(() => `${input}#${++fetches}`) }).pipe(
    Job.withSchema({ input: Schema.String, value: Schema.String })
  )

  it.scoped("Redis hung: a miss answers after one read timeout; its write is left to the background", () =>
    Effect.gen(function*() {
      const prefix = unique("bounds-miss")
      prefixes.push(prefix)
      const proxy = yield* Effect.acquireRelease(Effect.promise(() => startProxy(redisUrl)), (p) => Effect.promise(p.close))
      const store = yield* Layer.build(RedisCacheStore.layer({ url: proxy.url, prefix, commandTimeout: "1 second" }))
      const read = Effect.provide(Job.lookup(job, "a"), Layer.merge(Layer.succeedContext(store), TestRefreshQueue.layer))
      proxy.stall()
      const before = fetches
      const fiber = yield* Effect.fork(read)
      yield* TestServices.provideLive(Effect.sleep("50 millis")) // the GET is on the wire
      // The watchdog looks four times per timeout: the GET fails at its first look past 1 s.
      yield* TestClock.adjust("1250 millis")
      const answered = yield* awaitLive(fiber, 2_000)
      // When the fetched value's write did not run in the background, it waited a second
      // timeout here.
      expect(Option.map(answered, (found) => found.status)).toEqual(Option.some("miss"))
      expect(fetches).toBe(before + 1)
    }).pipe(quiet), 20_000)

  it.scoped("the queue hung: a stale read answers at once; its write-back and its enqueue go on in the background", () =>
    Effect.gen(function*() {
      const prefix = unique("bounds-stale")
      const queueName = unique("bounds-stale")
      prefixes.push(prefix)
      queues.push(queueName)
      const proxy = yield* Effect.acquireRelease(Effect.promise(() => startProxy(redisUrl)), (p) => Effect.promise(p.close))
      // The store talks to Redis directly; the queue goes through the proxy.
      const context = yield* Layer.build(Layer.merge(
        RedisCacheStore.layer({ url: redisUrl, prefix }),
        BullRefreshQueue.layer({ connection: { url: proxy.url }, queueName, enqueueTimeout: "1 second" })
      ))
      yield* Effect.gen(function*() {
        yield* storeStale(job, "s", "old")
        proxy.stall()
        const fiber = yield* Effect.fork(Job.lookup(job, "s"))
        // No time passes on the test's clock: the enqueue's timeout cannot have fired.
        const answered = yield* awaitLive(fiber, 2_000)
        expect(answered).toEqual(Option.some({ value: "old", status: "stale", syncFetch: false }))
      }).pipe(Effect.provide(Layer.succeedContext(context)))
    }).pipe(quiet), 20_000)
})
