/**
 * Worker processes on the real Redis: two worker processes spawned with
 * `child_process` and this process as the producer. The processes share nothing but
 * Redis: tasks cross as `{ job, key, input, store }`, values come back through the store.
 *
 * Each test starts its own workers in the two processes (own store prefix, own queue) and
 * stops them after; the SIGKILL test runs last, since it ends one of the processes.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "@effect/vitest"
import { Queue } from "bullmq"
import { Effect, Layer, Metric, Option } from "effect"
import { CacheStore, Job } from "effect-cacheback"
import { BullRefreshQueue, RedisCacheStore } from "effect-cacheback/redis"
import { redisUrl, requireService } from "../support/services.js"
import { endHost, type Host, spawnHost, type WorkerSettings } from "./fixtures/hosts.js"
import { counter, Profile, profile, slow } from "./fixtures/jobs.js"
import { cleanUp, keyOf, poll, quiet, rawClient, storedValue, storeStale, unique } from "./fixtures/redis.js"

const up = await requireService("redis")

describe.skipIf(!up)("worker processes", () => {
  const raw = rawClient()
  const prefixes: Array<string> = []
  const queues: Array<string> = []
  let hosts: ReadonlyArray<Host> = []

  beforeAll(async () => {
    hosts = await Promise.all([spawnHost("worker-a"), spawnHost("worker-b")])
  }, 60_000)
  afterAll(async () => {
    await Promise.all(hosts.map(endHost))
    await cleanUp(raw, prefixes, queues)
    raw.disconnect()
  }, 30_000)
  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => {
      for (const host of hosts) console.log(`--- output of ${host.who} ---\n${host.output.join("")}`)
    })
  })

  /** A prefix and a queue for this test, workers for them in both processes, and the producer's layer. */
  const setup = async (label: string, settings: Partial<WorkerSettings> = {}) => {
    const prefix = unique(label)
    const queueName = unique(label)
    prefixes.push(prefix)
    queues.push(queueName)
    const workers = await Promise.all(hosts.map((host) => host.start({ prefix, queueName, ...settings })))
    const stop = () => Promise.all(hosts.map((host, i) => host.child.connected ? host.stop(workers[i]) : undefined))
    const producer = Layer.mergeAll(
      RedisCacheStore.layer({ url: redisUrl, prefix }),
      BullRefreshQueue.layer({ connection: { url: redisUrl }, queueName })
    )
    const bull = new Queue(queueName, { connection: raw.duplicate() })
    return { bull, producer, stop, queueName }
  }

  const fetchesOf = (job: string) => hosts.flatMap((host) => host.fetches.filter((fetch) => fetch.job === job))

  it.live("500 stale keys: all end refreshed by the two worker processes, none lost", () =>
    Effect.gen(function*() {
      const { bull, producer, stop } = yield* Effect.promise(() => setup("many", { concurrency: 8 }))
      const inputs = Array.from({ length: 500 }, (_, n) => n)
      const before = fetchesOf("counter").length
      yield* Effect.gen(function*() {
        yield* Effect.forEach(inputs, (n) => storeStale(counter, n, { n, by: "stale" }), { concurrency: 50, discard: true })
        // One MGET; every entry is stale: served as it is, and a refresh enqueued per key.
        const served = yield* Job.getMany(counter, inputs)
        expect(served.every((value, n) => value.n === n && value.by === "stale")).toBe(true)

        const store = yield* CacheStore.CacheStore
        const keys = inputs.map((n) => keyOf(counter, n))
        const refreshed = yield* poll(
          "all 500 keys are refreshed",
          30_000,
          Effect.map(store.getMany(keys, counter.valueSchema), (entries) => {
            const values = entries.map((entry) => (Option.isSome(entry) && entry.value._tag === "Value" ? entry.value.value : undefined))
            return values.every((value) => value !== undefined && value.by !== "stale") ? values : undefined
          })
        )
        expect(refreshed.map((value) => value!.n)).toEqual(inputs)
        const by = new Set(refreshed.map((value) => value!.by))
        expect([...by].sort()).toEqual(["worker-a", "worker-b"])
        // Each key refreshed once: nothing lost, nothing run twice.
        const fetched = fetchesOf("counter").slice(before).map((fetch) => fetch.n)
        expect(fetched.sort((a, b) => a! - b!)).toEqual(inputs)
        // A worker completes its task after its write lands: the last ones may still be
        // active when the last value is read, and must then complete, none failed.
        const counts = () => Effect.promise(() => bull.getJobCounts("waiting", "active", "delayed", "failed"))
        yield* poll("every task completes", 5_000, Effect.map(counts(), (c) => c.active === 0 ? c : undefined))
        expect(yield* counts()).toEqual({ waiting: 0, active: 0, delayed: 0, failed: 0 })
      }).pipe(Effect.provide(producer), Effect.ensuring(Effect.promise(() => Promise.all([stop(), bull.close()]))))
    }).pipe(quiet), 60_000)

  it.live("1,000 stale reads of one key queue one task, refreshed once", () =>
    Effect.gen(function*() {
      const { bull, producer, stop } = yield* Effect.promise(() => setup("burst"))
      const metrics = Job.metrics(counter)
      const read = (counter: Metric.Metric.Counter<number>) => Effect.map(Metric.value(counter), (state) => state.count)
      yield* Effect.gen(function*() {
        // Paused, the queue holds what the burst enqueued, for the test to count.
        yield* Effect.promise(() => bull.pause())
        yield* storeStale(counter, 1000, { n: 1000, by: "stale" })
        const [enqueued, deduplicated, staleHits] = yield* Effect.all([read(metrics.enqueued), read(metrics.deduplicated), read(metrics.staleHits)])
        const reads = yield* Effect.all(Array.from({ length: 1000 }, () => Job.lookup(counter, 1000)), { concurrency: "unbounded" })
        // Every read answers the stale value at once: stale, or a hit on the value written
        // back by an earlier read of the burst (the store batches concurrent reads, so
        // some see that write-back). Each stale read asks for a refresh; one task results.
        expect(reads.filter((r) => r.syncFetch !== true && r.value.by === "stale")).toHaveLength(1000)
        const stale = (yield* read(metrics.staleHits)) - staleHits
        expect(stale).toBeGreaterThanOrEqual(1)
        expect(reads.filter((r) => r.status === "stale")).toHaveLength(stale)
        // The enqueue follows the answers, in the background; stale reads of a key
        // whose background work runs leave it to that one, and the rest collapse in BullMQ.
        yield* poll("the stale reads' enqueue lands", 5_000, Effect.map(read(metrics.enqueued), (n) => (n - enqueued === 1 ? true : undefined)))
        expect((yield* read(metrics.deduplicated)) - deduplicated).toBeLessThanOrEqual(stale - 1)
        const counts = yield* Effect.promise(() => bull.getJobCounts("waiting", "prioritized", "active", "delayed"))
        expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(1)

        yield* Effect.promise(() => bull.resume())
        const value = yield* poll(
          "the task is run",
          10_000,
          Effect.map(storedValue(counter, 1000), (value) => Option.getOrUndefined(Option.filter(value, (v) => v.by !== "stale")))
        )
        yield* poll("BullMQ completes it", 5_000, Effect.promise(async () => ((await bull.getCompletedCount()) === 1 ? true : undefined)))
        expect(fetchesOf("counter").filter((fetch) => fetch.n === 1000)).toEqual([{ type: "fetch", job: "counter", n: 1000, by: value.by }])
      }).pipe(Effect.provide(producer), Effect.ensuring(Effect.promise(() => Promise.all([stop(), bull.close()]))))
    }).pipe(quiet), 60_000)

  it.live("schema-typed values round-trip between processes: a Date input, a class instance holding a Date and an Option", () =>
    Effect.gen(function*() {
      const { bull, producer, stop } = yield* Effect.promise(() => setup("typed"))
      yield* Effect.gen(function*() {
        const input = { name: "grace", since: new Date("1906-12-09T00:00:00Z") }
        yield* Job.asyncRefresh(profile, input)
        const stored = yield* poll("a worker stores the profile", 10_000, Effect.map(storedValue(profile, input), Option.getOrUndefined))
        const read = yield* Job.lookup(profile, input)
        expect(read.status).toBe("hit")
        for (const value of [stored, read.value]) {
          expect(value).toBeInstanceOf(Profile)
          expect(["worker-a", "worker-b"]).toContain(value.by)
          expect(value.joined).toBeInstanceOf(Date)
          expect(value.joined.toISOString()).toBe("1906-12-09T00:00:00.000Z")
          expect(value.nickname).toEqual(Option.some("GRACE"))
          expect(value.greeting).toBe("hello grace, member since 1906")
        }
      }).pipe(Effect.provide(producer), Effect.ensuring(Effect.promise(() => Promise.all([stop(), bull.close()]))))
    }).pipe(quiet), 60_000)

  it.live("SIGKILL a worker in the middle of a slow refresh: the other completes the task within the configured lock time", () => {
    const lockMs = 1_500
    const stalledMs = 500
    const refreshMs = 2_000
    return Effect.gen(function*() {
      const { bull, producer, stop } = yield* Effect.promise(() => setup("sigkill", { lockMs, stalledMs }))
      yield* Effect.gen(function*() {
        const input = { id: "k", ms: refreshMs }
        yield* Job.asyncRefresh(slow, input)
        const started = yield* poll(
          "a worker starts the slow refresh",
          10_000,
          Effect.sync(() => fetchesOf("slow").find((fetch) => fetch.id === "k"))
        )
        const victim = hosts.find((host) => host.who === started.by)!
        const survivor = hosts.find((host) => host !== victim)!
        victim.child.kill("SIGKILL")
        yield* Effect.promise(() => victim.exited)
        // The lock expires within lockMs of the kill, a stalled check of the survivor puts the
        // task back within two of its intervals, and the refresh takes its own time.
        const deadline = lockMs + 2 * stalledMs + refreshMs + 1_500
        const value = yield* poll(
          "the surviving worker completes the task",
          deadline,
          Effect.map(storedValue(slow, input), Option.getOrUndefined)
        )
        expect(value).toEqual({ id: "k", by: survivor.who })
        expect(survivor.fetches.filter((fetch) => fetch.job === "slow" && fetch.id === "k")).toHaveLength(1)
        // BullMQ completes the task just after the refresh has stored its value.
        const counts = yield* poll(
          "BullMQ completes the task",
          2_000,
          Effect.promise(async () => {
            const counts = await bull.getJobCounts("waiting", "active", "failed")
            return counts.active === 0 ? counts : undefined
          })
        )
        expect(counts).toEqual({ waiting: 0, active: 0, failed: 0 })
      }).pipe(Effect.provide(producer), Effect.ensuring(Effect.promise(() => Promise.all([stop(), bull.close()]))))
    }).pipe(quiet)
  }, 60_000)
})
