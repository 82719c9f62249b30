/**
 * Faults on the real Redis (DESIGN.md §3.4): a loopback TCP proxy sits between
 * the code under test and Redis, and the test cuts it, stalls it and restores it. Reads
 * never break and never hang; when Redis is back they are hits again, without a restart.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Queue } from "bullmq"
import { Clock, Effect, Layer, Option, Schema } from "effect"
import { Job } from "effect-cacheback"
import { BullRefreshQueue, RedisCacheStore, RefreshWorker } from "effect-cacheback/redis"
import { captureLogs } from "../support/kit.js"
import { redisUrl, requireService } from "../support/services.js"
import { startProxy } from "./fixtures/proxy.js"
import { cleanUp, poll, quiet, rawClient, redisKey, storedValue, storeStale, unique } from "./fixtures/redis.js"

const up = await requireService("redis")

describe.skipIf(!up)("faults never break a read", () => {
  const raw = rawClient()
  const prefixes: Array<string> = []
  const queues: Array<string> = []
  const unhandled: Array<unknown> = []
  const onUnhandled = (reason: unknown) => unhandled.push(reason)
  beforeAll(() => {
    process.on("unhandledRejection", onUnhandled)
  })
  afterAll(async () => {
    process.off("unhandledRejection", onUnhandled)
    await cleanUp(raw, prefixes, queues)
    raw.disconnect()
  })

  const names = (label: string) => {
    const prefix = unique(label)
    const queueName = unique(label)
    prefixes.push(prefix)
    queues.push(queueName)
    return { prefix, queueName }
  }

  /** A job that counts its fetches and says which fetch made its value. */
  const counted = (name: string) => {
    let fetches = 0
    const job = Job.make({ name, fetch: (input: string) => Effect.sync(() => `${input}#${++fetches}`) }).pipe(
      Job.withSchema({ input: Schema.String, value: Schema.String })
    )
    return { job, fetches: () => fetches }
  }

  it.live("an outage mid-run: reads answer by fetching, and are hits again within 2 s of Redis coming back", () => {
    const { prefix, queueName } = names("outage")
    const { fetches, job } = counted("outage")
    return Effect.gen(function*() {
      const proxy = yield* Effect.acquireRelease(Effect.promise(() => startProxy(redisUrl)), (p) => Effect.promise(p.close))
      const layer = Layer.mergeAll(
        RedisCacheStore.layer({ url: proxy.url, prefix }),
        BullRefreshQueue.layer({ connection: { url: proxy.url }, queueName })
      )
      yield* Effect.gen(function*() {
        yield* RefreshWorker.start({ jobs: [job] })
        expect(yield* Job.lookup(job, "a")).toEqual({ value: "a#1", status: "miss", syncFetch: true })
        // The value's write follows the answer, in the background: a read in that gap shares
        // the fetch.
        yield* poll("the value is stored", 2_000, Effect.map(Job.lookup(job, "a"), (read) => (read.status === "hit" ? read : undefined)))
        expect(fetches()).toBe(1)

        yield* Effect.promise(proxy.cut)
        // Every read is a miss and fetches, or shares the fetch of the read before it while
        // that one's write fails: never an error, never a wait.
        for (let i = 0; i < 20; i++) {
          const read = yield* Job.lookup(job, "a")
          expect([read.status, read.syncFetch]).toEqual(["miss", true])
          expect(read.value).toMatch(/^a#\d+$/)
        }
        const during = fetches()
        expect(during).toBeGreaterThan(1)
        expect(during).toBeLessThanOrEqual(21)
        const [a, b] = yield* Job.getMany(job, ["a", "b"])
        expect([a, b]).toEqual([expect.stringMatching(/^a#\d+$/), expect.stringMatching(/^b#\d+$/)])
        // A stale read cannot happen without the store; an explicit refresh still works.
        const before = fetches()
        yield* Job.asyncRefresh(job, "c")
        expect(fetches()).toBe(before + 1)

        yield* Effect.promise(proxy.restore)
        const restored = yield* Clock.currentTimeMillis
        // The entry written before the outage is there again.
        yield* poll("reads are hits again", 2_000, Effect.map(Job.lookup(job, "a"), (read) => (read.status === "hit" ? read : undefined)))
        expect((yield* Job.lookup(job, "a")).value).toBe("a#1")
        expect((yield* Clock.currentTimeMillis) - restored).toBeLessThanOrEqual(2_000)

        // The queue and the worker are back too: a stale read is refreshed in the background.
        yield* storeStale(job, "d", "old")
        yield* poll(
          "a stale read enqueues again",
          10_000,
          Effect.map(Job.lookup(job, "d"), (read) => (read.syncFetch === false ? read : undefined))
        )
        yield* poll(
          "the worker refreshes it",
          10_000,
          Effect.map(storedValue(job, "d"), (value) => (Option.getOrElse(value, () => "old") !== "old" ? true : undefined))
        )
      }).pipe(Effect.scoped, Effect.provide(layer))
      expect(unhandled).toEqual([])
    }).pipe(Effect.scoped, quiet)
  }, 40_000)

  it.live("Redis down at start-up: the layers build, reads fetch, and once it is reachable reads are hits and workers work", () => {
    const { prefix, queueName } = names("startup")
    const { job } = counted("startup")
    return Effect.gen(function*() {
      const proxy = yield* Effect.acquireRelease(
        Effect.promise(() => startProxy(redisUrl, { listening: false })),
        (p) => Effect.promise(p.close)
      )
      const layer = Layer.mergeAll(
        RedisCacheStore.layer({ url: proxy.url, prefix }),
        BullRefreshQueue.layer({ connection: { url: proxy.url }, queueName })
      )
      yield* Effect.gen(function*() {
        yield* RefreshWorker.start({ jobs: [job] })
        expect(yield* Job.lookup(job, "a")).toEqual({ value: "a#1", status: "miss", syncFetch: true })
        // A read while the first one's write is still failing shares its fetch; later ones fetch.
        yield* Effect.sleep("50 millis")
        expect(yield* Job.lookup(job, "a")).toEqual({ value: "a#2", status: "miss", syncFetch: true })

        yield* Effect.promise(proxy.restore)
        const read = yield* poll(
          "reads are hits",
          2_000,
          Effect.map(Job.lookup(job, "a"), (read) => (read.status === "hit" ? read : undefined))
        )
        expect(read.value).toMatch(/^a#\d+$/)

        // Until the queue is back, asyncRefresh refreshes synchronously; then a task
        // reaches the worker that was started while Redis was down.
        const bull = yield* Effect.acquireRelease(
          Effect.sync(() => new Queue(queueName, { connection: raw.duplicate() })),
          (queue) => Effect.promise(() => queue.close())
        )
        yield* poll(
          "the worker started while Redis was down runs a task",
          10_000,
          Effect.zipRight(
            Job.asyncRefresh(job, "w"),
            Effect.promise(async () => ((await bull.getCompletedCount()) > 0 ? true : undefined))
          )
        )
      }).pipe(Effect.scoped, Effect.provide(layer))
      expect(unhandled).toEqual([])
    }).pipe(Effect.scoped, quiet)
  }, 40_000)

  it.live("a queue that refuses or hangs: the stale read answers at once and refreshes in the background, and a hung store read is a miss", () => {
    const { prefix, queueName } = names("enqueue")
    const { job } = counted("enqueue")
    const logs = captureLogs()
    return Effect.gen(function*() {
      const proxy = yield* Effect.acquireRelease(Effect.promise(() => startProxy(redisUrl)), (p) => Effect.promise(p.close))
      // The store talks to Redis directly; only the queue goes through the proxy.
      const layer = Layer.mergeAll(
        RedisCacheStore.layer({ url: redisUrl, prefix }),
        BullRefreshQueue.layer({ connection: { url: proxy.url }, queueName, enqueueTimeout: "300 millis" })
      )
      yield* Effect.gen(function*() {
        yield* storeStale(job, "a", "old")
        // Queued (no worker here): the stale value is served.
        expect(yield* Job.lookup(job, "a")).toEqual({ value: "old", status: "stale", syncFetch: false })

        yield* Effect.promise(proxy.cut)
        yield* storeStale(job, "b", "old")
        expect(yield* Job.lookup(job, "b")).toEqual({ value: "old", status: "stale", syncFetch: false })
        yield* poll("the refused refresh runs in the background", 5_000, Effect.map(storedValue(job, "b"), (v) => Option.getOrUndefined(Option.filter(v, (x) => /^b#\d+$/.test(x)))))

        yield* Effect.promise(proxy.restore)
        yield* Effect.sync(proxy.stall)
        yield* storeStale(job, "c", "old")
        // The enqueue hangs: the read does not wait for its timeout.
        expect(yield* Job.lookup(job, "c")).toEqual({ value: "old", status: "stale", syncFetch: false })
        yield* poll("the timed-out enqueue is refreshed in the background", 5_000, Effect.map(storedValue(job, "c"), (v) => Option.getOrUndefined(Option.filter(v, (x) => /^c#\d+$/.test(x)))))
        expect(logs.lines.some((line) => line.includes("refreshing in the background"))).toBe(true)
      }).pipe(Effect.scoped, Effect.provide(layer))

      // A store whose connection hangs: its reads time out and count as misses.
      yield* Effect.promise(proxy.restore)
      const hung = RedisCacheStore.layer({ url: proxy.url, prefix, commandTimeout: "200 millis" })
      yield* Effect.gen(function*() {
        expect((yield* Job.lookup(job, "a")).status).toBe("hit")
        yield* Effect.sync(proxy.stall)
        const read = yield* Job.lookup(job, "a")
        expect([read.status, read.syncFetch]).toEqual(["miss", true])
        expect(read.value).toMatch(/^a#\d+$/)
        // getMany's MGET too: failed by the store's sweep of overdue round trips, then fetched.
        const [many] = yield* Job.getMany(job, ["a"])
        expect(many).toMatch(/^a#\d+$/)
      }).pipe(Effect.scoped, Effect.provide(Layer.merge(hung, BullRefreshQueue.layer({ connection: { url: redisUrl }, queueName }))))
      expect(unhandled).toEqual([])
    }).pipe(Effect.scoped, Effect.provide(logs.layer))
  }, 40_000)

  it.live("a corrupt entry is a miss; the pending marker and the worker's refresh overwrite it", () => {
    const { prefix, queueName } = names("corrupt")
    const job = Job.make({
      name: "corruptAsync",
      fetch: (n: number) => Effect.succeed({ n, at: new Date(n) })
    }).pipe(
      Job.withSchema({ input: Schema.Number, value: Schema.Struct({ n: Schema.Number, at: Schema.Date }) }),
      Job.withSyncOnMiss(false),
      Job.withEmpty(() => "nothing yet" as const)
    )
    const layer = Layer.mergeAll(
      RedisCacheStore.layer({ url: redisUrl, prefix }),
      BullRefreshQueue.layer({ connection: { url: redisUrl }, queueName })
    )
    return Effect.gen(function*() {
      yield* Effect.promise(() => raw.set(redisKey(prefix, job, 7), "\u0000 garbage"))
      expect(yield* Job.lookup(job, 7)).toEqual({ value: "nothing yet", status: "miss", syncFetch: false })
      yield* RefreshWorker.start({ jobs: [job] })
      const value = yield* poll("the worker refreshes the key", 5_000, Effect.map(storedValue(job, 7), Option.getOrUndefined))
      expect(value.at).toEqual(new Date(7))
      expect(yield* Job.get(job, 7)).toEqual({ n: 7, at: new Date(7) })
    }).pipe(Effect.scoped, Effect.provide(layer), quiet)
  })
})
