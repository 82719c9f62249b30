/**
 * BullRefreshQueue and RefreshWorker on the real Redis, in this process: what a task
 * carries, how enqueues collapse, queue options, how a worker treats tasks it cannot run
 * (unknown job, an input field it does not know, another key, another store) and fetches
 * that fail, how it runs and stops, and what it logs at which level.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Queue } from "bullmq"
import { Cause, Deferred, Effect, Either, Exit, Fiber, Layer, Logger, LogLevel, Metric, Option, Schema } from "effect"
import { CacheStore, Job, RefreshQueue } from "effect-cacheback"
import { BullRefreshQueue, RedisCacheStore, RefreshWorker } from "effect-cacheback/redis"
import { captureLogs, count } from "../support/kit.js"
import { redisUrl } from "../support/services.js"
import { eventually, keyOf, poll, quiet, storedValue, storeStale, unique } from "./fixtures/redis.js"
import { cleanUp, duplicate, targets } from "./fixtures/targets.js"

describe.each(await targets())("BullRefreshQueue and RefreshWorker on $name", (target) => {
  if (!target.up) return it.skip("its servers are not running")
  const raw = target.raw()
  const prefixes: Array<string> = []
  const queues: Array<string> = []
  afterAll(() => cleanUp(target, raw, prefixes, queues))

  /** A store prefix and a queue of the test's own, and a BullMQ handle to look at the queue. */
  const setup = (label: string, options: Partial<BullRefreshQueue.CommonOptions> = {}) => {
    const prefix = unique(label)
    const queueName = target.queueName(label)
    prefixes.push(prefix)
    queues.push(queueName)
    const layer = Layer.mergeAll(
      RedisCacheStore.layer(target.store(prefix)),
      BullRefreshQueue.layer({ ...target.queue, queueName, ...options })
    )
    const inspect = (name: string = queueName) =>
      Effect.acquireRelease(
        Effect.sync(() => new Queue(name, { connection: duplicate(raw) })),
        (queue) => Effect.promise(() => queue.close())
      )
    return { prefix, queueName, layer, inspect }
  }

  const until = <A>(what: string, within: number, check: () => Promise<A | undefined>) =>
    Effect.promise(() => eventually(what, within, check))

  it.live("a task is { job, key, input, store, lifetime, cacheTtl }, the input encoded by the job's input schema, store the producer's", () => {
    const { inspect, layer, prefix } = setup("data")
    const job = Job.make({ name: "encodedInput", fetch: (input: { readonly day: Date }) => Effect.succeed(input.day.getTime()) }).pipe(
      Job.withSchema({ input: Schema.Struct({ day: Schema.Date }) })
    )
    return Effect.gen(function*() {
      const input = { day: new Date("2024-05-01T00:00:00Z") }
      yield* Job.asyncRefresh(job, input)
      const queue = yield* inspect()
      const [task] = yield* Effect.promise(() => queue.getJobs(["waiting"]))
      expect(task.name).toBe("encodedInput")
      expect(task.data).toEqual({
        job: "encodedInput",
        key: keyOf(job, input),
        input: { day: "2024-05-01T00:00:00.000Z" },
        store: `redis:${prefix}`,
        lifetime: 600_000,
        cacheTtl: 30 * 86_400_000
      })
    }).pipe(Effect.scoped, Effect.provide(layer), quiet)
  })

  it.live("a job with an input and no input schema fails at enqueue, typed, saying to add one; a read refreshes in the background", () => {
    const { inspect, layer, prefix } = setup("noschema")
    let fetched = 0
    const job = Job.make({ name: "noInputSchema", fetch: (n: number) => Effect.sync(() => n + ++fetched) })
    const noInput = Job.make({ name: "voidInput", fetch: () => Effect.succeed("v") })
    return Effect.gen(function*() {
      const queue = yield* RefreshQueue.RefreshQueue
      const error = yield* Effect.flip(queue.enqueue({
        job: job.name,
        key: keyOf(job, 1),
        input: 1,
        inputSchema: undefined,
        options: {},
        refresh: Effect.void
      }))
      expect(error._tag).toBe("EnqueueError")
      expect(error.message).toContain("Job.withSchema({ input })")
      // Through a stale read: the caller answers at once, and the refresh runs in this
      // process, in the background.
      yield* storeStale(job, 1, 0)
      expect(yield* Job.lookup(job, 1)).toEqual({ value: 0, status: "stale", syncFetch: false })
      yield* poll("the refresh runs in the background", 5_000, Effect.map(storedValue(job, 1), (v) => Option.getOrUndefined(Option.filter(v, (n) => n === 2))))
      // A job without input needs no schema.
      yield* Job.asyncRefresh(noInput)
      const bull = yield* inspect()
      const waiting = yield* Effect.promise(() => bull.getJobs(["waiting"]))
      expect(waiting.map((task) => task.data)).toEqual([{ job: "voidInput", key: "voidInput", store: `redis:${prefix}`, lifetime: 600_000, cacheTtl: 30 * 86_400_000 }])
    }).pipe(Effect.scoped, Effect.provide(layer), quiet)
  })

  it.live("enqueues of one key collapse while its task waits; while it runs, one more may wait", () => {
    const { inspect, layer, prefix } = setup("dedup")
    let runs = 0
    return Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const job = Job.make({
        name: "collapsing",
        fetch: (n: number) => Effect.zipRight(Effect.sync(() => ++runs), Deferred.await(gate)).pipe(Effect.as(n))
      }).pipe(Job.withSchema({ input: Schema.Number, value: Schema.Number }))
      const queue = yield* RefreshQueue.RefreshQueue
      const task = {
        job: job.name,
        key: keyOf(job, 1),
        store: `redis:${prefix}`,
        input: 1,
        inputSchema: job.inputSchema,
        options: {},
        refresh: Effect.void
      }
      expect(yield* Effect.all([queue.enqueue(task), queue.enqueue(task), queue.enqueue(task)])).toEqual([
        "enqueued",
        "deduplicated",
        "deduplicated"
      ])
      const bull = yield* inspect()
      expect(yield* Effect.promise(() => bull.getWaitingCount())).toBe(1)

      yield* RefreshWorker.start({ jobs: [job] })
      yield* until("the task runs", 5_000, async () => (runs === 1 ? true : undefined))
      // While it runs: one more is kept for after it, and no more than one.
      yield* Effect.all([queue.enqueue(task), queue.enqueue(task), queue.enqueue(task)])
      expect(runs).toBe(1)
      yield* Deferred.succeed(gate, undefined)
      yield* until("both runs complete", 5_000, async () => ((await bull.getCompletedCount()) === 2 ? true : undefined))
      expect(runs).toBe(2)
      expect(yield* Effect.promise(() => bull.getJobCounts("waiting", "active", "delayed", "failed"))).toEqual({
        waiting: 0,
        active: 0,
        delayed: 0,
        failed: 0
      })
    }).pipe(Effect.scoped, Effect.provide(layer), quiet)
  })

  it.live("Job.withQueueOptions sets the BullMQ queue, priority, attempts and backoff", () => {
    const { inspect, layer } = setup("options")
    const other = target.queueName("options-other")
    queues.push(other)
    const plain = Job.make({ name: "plainOptions", fetch: (n: number) => Effect.succeed(n) }).pipe(Job.withSchema({ input: Schema.Number }))
    const tuned = Job.make({ name: "tunedOptions", fetch: (n: number) => Effect.succeed(n) }).pipe(
      Job.withSchema({ input: Schema.Number }),
      Job.withQueueOptions({ queue: other, priority: 5, attempts: 7, backoff: { type: "fixed", delay: "2 seconds" } })
    )
    return Effect.gen(function*() {
      yield* Job.asyncRefresh(plain, 1)
      yield* Job.asyncRefresh(tuned, 2)
      const main = yield* inspect()
      const [defaults] = yield* Effect.promise(() => main.getJobs(["waiting"]))
      expect(defaults.opts).toMatchObject({ attempts: 3, backoff: { type: "exponential", delay: 1000 } })
      const routed = yield* inspect(other)
      const [custom] = yield* Effect.promise(() => routed.getJobs(["prioritized", "waiting"]))
      expect(custom.name).toBe("tunedOptions")
      expect(custom.opts).toMatchObject({ priority: 5, attempts: 7, backoff: { type: "fixed", delay: 2000 } })
      const bull = yield* BullRefreshQueue.BullRefreshQueue
      expect(bull.queueOf(tuned.queueOptions)).toBe(other)
      expect(bull.queueOf(plain.queueOptions)).toBe(bull.queueName)
    }).pipe(Effect.scoped, Effect.provide(layer), quiet)
  })

  it.live("a task for an unknown job or with an undecodable input fails with its reason, and the worker goes on", () => {
    const { inspect, layer, prefix } = setup("reject")
    const job = Job.make({ name: "known", fetch: (n: number) => Effect.succeed(n * 2) }).pipe(
      Job.withSchema({ input: Schema.Number, value: Schema.Number })
    )
    const rejected = Metric.tagged(RefreshWorker.tasks, "outcome", "rejected")
    const logs = captureLogs()
    return Effect.gen(function*() {
      const before = yield* count(rejected)
      yield* RefreshWorker.start({ jobs: [job] })
      const bull = yield* inspect()
      yield* Effect.promise(() => bull.add("ghost", { job: "ghost", key: "ghost:1", input: 1 }, { attempts: 3 }))
      yield* Effect.promise(() =>
        bull.add("known", { job: "known", key: keyOf(job, "x"), input: "not a number", store: `redis:${prefix}` }, { attempts: 3 })
      )
      yield* Effect.promise(() => bull.add("junk", "just a string", { attempts: 3 }))
      yield* Job.asyncRefresh(job, 21)
      expect(yield* poll("the good task is refreshed", 5_000, Effect.map(storedValue(job, 21), Option.getOrUndefined))).toBe(42)
      const failed = yield* until("three tasks fail", 5_000, async () => {
        const tasks = await bull.getFailed()
        return tasks.length === 3 ? tasks : undefined
      })
      const reasons = failed.map((task) => task.failedReason).sort()
      expect(reasons[0]).toContain(`a task for job "ghost" (key "ghost:1") reached a worker that runs only "known"`)
      expect(reasons[1]).toContain(`cannot decode the task of job "?" (key "?"): its data is not { job, key, input }`)
      expect(reasons[2]).toContain(`cannot decode the task of job "known"`)
      expect(reasons[2]).toContain("Expected number")
      // Failed at once: no retry can help.
      expect(failed.map((task) => task.attemptsMade)).toEqual([1, 1, 1])
      expect((yield* count(rejected)) - before).toBe(3)
      // One warning per queue every 10 seconds, however many tasks are rejected (a producer
      // of another version can send thousands a second); the counter counts each.
      expect(logs.lines.filter((line) => line.includes("refresh worker rejects a task"))).toHaveLength(1)
    }).pipe(Effect.scoped, Effect.provide(Layer.merge(layer, logs.layer)))
  })

  it.live("a failing fetch is retried with backoff, then failed; each refresh is logged at DEBUG with job, key and duration", () => {
    const { inspect, layer } = setup("retry")
    const calls = new Map<number, number>()
    const flaky = Job.make({
      name: "flaky",
      // Input n fails its first n attempts.
      fetch: (n: number) =>
        Effect.suspend(() => {
          const call = (calls.get(n) ?? 0) + 1
          calls.set(n, call)
          return call <= n ? Effect.fail(new Error(`attempt ${call} of ${n} fails`)) : Effect.succeed(`ok after ${call}`)
        })
    }).pipe(
      Job.withSchema({ input: Schema.Number, value: Schema.String }),
      Job.withQueueOptions({ attempts: 3, backoff: { type: "fixed", delay: "20 millis" } })
    )
    const logs = captureLogs()
    return Effect.gen(function*() {
      const failuresBefore = yield* count(Job.metrics(flaky).refreshFailures)
      yield* RefreshWorker.start({ jobs: [flaky] })
      yield* Job.asyncRefresh(flaky, 2)
      yield* Job.asyncRefresh(flaky, 5)
      const bull = yield* inspect()
      yield* until("one completes after retries, one fails after its last attempt", 10_000, async () => {
        const counts = await bull.getJobCounts("completed", "failed")
        return counts.completed === 1 && counts.failed === 1 ? counts : undefined
      })
      expect(calls.get(2)).toBe(3)
      expect(calls.get(5)).toBe(3)
      expect(Option.getOrNull(yield* storedValue(flaky, 2))).toBe("ok after 3")
      expect(Option.isNone(yield* storedValue(flaky, 5))).toBe(true)
      const [failed] = yield* Effect.promise(() => bull.getFailed())
      expect(failed.attemptsMade).toBe(3)
      expect(failed.failedReason).toBe("attempt 3 of 5 fails")
      expect((yield* count(Job.metrics(flaky).refreshFailures)) - failuresBefore).toBe(1)
      expect(logs.lines.some((line) => line.startsWith("DEBUG") && /refreshed "flaky:.*" of job "flaky" in \d+ ms/.test(line))).toBe(true)
      expect(logs.lines.some((line) => line.includes("(attempt 1 of 3); BullMQ retries it"))).toBe(true)
      expect(logs.lines.some((line) => line.includes("(attempt 3 of 3); giving up"))).toBe(true)
    }).pipe(Effect.scoped, Effect.provide(Layer.mergeAll(layer, logs.layer, Logger.minimumLogLevel(LogLevel.Debug))))
  })

  it.live("completed and failed tasks are kept in bounded numbers", () => {
    const { inspect, layer } = setup("bounded", { keepCompleted: 2, keepFailed: 1 })
    const job = Job.make({
      name: "bounded",
      fetch: (n: number) => (n < 0 ? Effect.fail("negative") : Effect.succeed(n))
    }).pipe(Job.withSchema({ input: Schema.Number, value: Schema.Number }), Job.withQueueOptions({ attempts: 1 }))
    return Effect.gen(function*() {
      yield* RefreshWorker.start({ jobs: [job], concurrency: 4 })
      const bull = yield* inspect()
      for (const n of [1, 2, 3, 4, 5, -1, -2, -3]) yield* Job.asyncRefresh(job, n)
      yield* until("all ran", 10_000, async () => {
        const counts = await bull.getJobCounts("waiting", "active", "prioritized", "delayed")
        return Object.values(counts).every((n) => n === 0) ? true : undefined
      })
      yield* until("the kept tasks are trimmed", 5_000, async () => {
        const counts = await bull.getJobCounts("completed", "failed")
        return counts.completed === 2 && counts.failed === 1 ? true : undefined
      })
    }).pipe(Effect.scoped, Effect.provide(layer), quiet)
  })

  /** The failed tasks of a queue, once there are `n`. */
  const failedTasks = (bull: Queue, n: number) =>
    until(`${n} task(s) fail`, 5_000, async () => {
      const failed = await bull.getFailed()
      return failed.length === n ? failed : undefined
    })

  // A rolling deploy where the producer's job gained an input field.
  it.live("an older worker rejects a newer producer's input field it does not know, naming it, and stores nothing", () => {
    const { inspect, layer } = setup("excess")
    const older = Job.make({ name: "greeting", fetch: (input: { readonly id: number }) => Effect.succeed(`hello ${input.id}`) }).pipe(
      Job.withSchema({ input: Schema.Struct({ id: Schema.Number }), value: Schema.String })
    )
    const newer = Job.make({
      name: "greeting",
      fetch: (input: { readonly id: number; readonly lang?: string | undefined }) =>
        Effect.succeed(input.lang === "fr" ? `bonjour ${input.id}` : `hello ${input.id}`)
    }).pipe(Job.withSchema({ input: Schema.Struct({ id: Schema.Number, lang: Schema.optional(Schema.String) }), value: Schema.String }))
    const rejected = Metric.tagged(RefreshWorker.tasks, "outcome", "rejected")
    return Effect.gen(function*() {
      const before = yield* count(rejected)
      yield* Job.asyncRefresh(newer, { id: 3, lang: "fr" })
      yield* RefreshWorker.start({ jobs: [older] })
      const [failed] = yield* failedTasks(yield* inspect(), 1)
      expect(failed.failedReason).toContain(`cannot decode the task of job "greeting" (key "${keyOf(newer, { id: 3, lang: "fr" })}")`)
      expect(failed.failedReason).toContain(`["lang"]\n   └─ is unexpected, expected: "id"`)
      expect(failed.attemptsMade).toBe(1)
      // Neither under the French key (the English value) nor under the English one.
      expect(Option.isNone(yield* storedValue(newer, { id: 3, lang: "fr" }))).toBe(true)
      expect(Option.isNone(yield* storedValue(older, { id: 3 }))).toBe(true)
      expect((yield* count(rejected)) - before).toBe(1)
    }).pipe(Effect.scoped, Effect.provide(layer), quiet)
  })

  it.live("envelope fields a worker does not know (a newer producer's) are ignored: the task runs", () => {
    const { inspect, layer, prefix } = setup("envelope")
    const job = Job.make({ name: "envelope", fetch: (n: number) => Effect.succeed(n * 2) }).pipe(
      Job.withSchema({ input: Schema.Number, value: Schema.Number })
    )
    return Effect.gen(function*() {
      yield* RefreshWorker.start({ jobs: [job] })
      const bull = yield* inspect()
      const data = { job: "envelope", key: keyOf(job, 21), input: 21, store: `redis:${prefix}`, traceparent: "00-ab-cd-01", format: 2 }
      yield* Effect.promise(() => bull.add("envelope", data))
      expect(yield* poll("the task is refreshed", 5_000, Effect.map(storedValue(job, 21), Option.getOrUndefined))).toBe(42)
      expect(yield* Effect.promise(() => bull.getFailedCount())).toBe(0)
    }).pipe(Effect.scoped, Effect.provide(layer), quiet)
  })

  it.live("a worker stores a refresh with the producer's lifetime and cache TTL; a task without them (0.2's) with its own job's", () => {
    const { inspect, layer, prefix } = setup("policy")
    const registered = Job.make({ name: "policy", fetch: (n: number) => Effect.succeed(n * 2) }).pipe(
      Job.withSchema({ input: Schema.Number, value: Schema.Number }),
      Job.withLifetime("10 minutes")
    )
    const producer = registered.pipe(Job.withLifetime("1 hour"), Job.withCacheTtl("2 hours"))
    const lifetimeOf = (n: number) =>
      Effect.map(Job.rawGet(registered, n), (entry) => Option.map(entry, (e) => e.expiresAt - (e._tag === "Value" ? e.fetchedAt : 0)))
    return Effect.gen(function*() {
      yield* RefreshWorker.start({ jobs: [registered] })
      yield* Job.asyncRefresh(producer, 1)
      expect(yield* poll("the task is refreshed", 5_000, Effect.map(lifetimeOf(1), Option.getOrUndefined))).toBe(3_600_000)
      const ttl = yield* Effect.promise(() => raw.pttl(target.entryKey(prefix, keyOf(registered, 1))))
      expect(ttl).toBeGreaterThan(3_600_000)
      expect(ttl).toBeLessThanOrEqual(7_200_000)
      const bull = yield* inspect()
      yield* Effect.promise(() => bull.add("policy", { job: "policy", key: keyOf(registered, 2), input: 2, store: `redis:${prefix}` }))
      expect(yield* poll("the old task is refreshed", 5_000, Effect.map(lifetimeOf(2), Option.getOrUndefined))).toBe(600_000)
      yield* Effect.promise(() => bull.add("policy", { job: "policy", key: keyOf(registered, 3), input: 3, store: `redis:${prefix}`, lifetime: -1, cacheTtl: 1e308 }))
      const failed = yield* poll("the bad task is rejected", 5_000, Effect.promise(async () => (await bull.getFailed())[0]))
      expect(failed.failedReason).toMatch(/its lifetime and cacheTtl are not both durations of 0 to 100 years in milliseconds \(-1, 1e\+308\)/)
    }).pipe(Effect.scoped, Effect.provide(layer), quiet)
  })

  it.live("a queue holding maxWaiting tasks takes no more: stale reads answer stale, skip the refresh and count it", () => {
    const { inspect, layer } = setup("full", { maxWaiting: 5 })
    let fetches = 0
    const job = Job.make({ name: target.name === "one Redis" ? "queueFull" : "queueFullCluster", fetch: (n: number) => Effect.sync(() => (++fetches, n)) }).pipe(
      Job.withSchema({ input: Schema.Number, value: Schema.Number })
    )
    return Effect.gen(function*() {
      const full = yield* count(Job.metrics(job).queueFull)
      for (let i = 0; i < 20; i++) yield* storeStale(job, i, 100 + i)
      for (let i = 0; i < 20; i++) expect(yield* Job.lookup(job, i)).toEqual({ value: 100 + i, status: "stale", syncFetch: false })
      const bull = yield* inspect()
      yield* until("the 5 tasks are waiting", 2_000, async () => ((await bull.getWaitingCount()) === 5 ? true : undefined))
      // Counted in the background, after the answers.
      yield* poll("15 skipped", 2_000, Effect.map(count(Job.metrics(job).queueFull), (n) => n - full === 15 || undefined))
      expect(fetches).toBe(0)
      expect(() => BullRefreshQueue.layer({ connection: { url: redisUrl }, queueName: "q", maxWaiting: 0 })).toThrow(
        /BullRefreshQueue\.layer: expected maxWaiting to be a positive integer, got 0/
      )
    }).pipe(Effect.scoped, Effect.provide(layer), quiet)
  })

  it.live("a task whose key is not the worker's job.key(input) is rejected with both keys, and nothing is stored", () => {
    const { inspect, layer, prefix } = setup("forged")
    const job = Job.make({ name: "forged", fetch: (n: number) => Effect.succeed(n * 2) }).pipe(
      Job.withSchema({ input: Schema.Number, value: Schema.Number })
    )
    return Effect.gen(function*() {
      yield* RefreshWorker.start({ jobs: [job] })
      const bull = yield* inspect()
      yield* Effect.promise(() => bull.add("forged", { job: "forged", key: keyOf(job, 4), input: 3, store: `redis:${prefix}` }, { attempts: 3 }))
      const [failed] = yield* failedTasks(bull, 1)
      expect(failed.failedReason).toBe(
        `the task of job "forged" has key "${keyOf(job, 4)}", but this worker keys its input as "${keyOf(job, 3)}"; ` +
          `producers and workers must run the same version of the job (its key function and input schema)`
      )
      expect(failed.attemptsMade).toBe(1)
      expect(Option.isNone(yield* storedValue(job, 4))).toBe(true)
      expect(Option.isNone(yield* storedValue(job, 3))).toBe(true)
    }).pipe(Effect.scoped, Effect.provide(layer), quiet)
  })

  it.live("a worker on another store prefix rejects the producer's tasks naming both stores; one on the producer's prefix refreshes them", () => {
    const { inspect, layer, prefix, queueName } = setup("store")
    const elsewhere = unique("store-other")
    prefixes.push(elsewhere)
    const job = Job.make({ name: "stored", fetch: (n: number) => Effect.succeed(n * 2) }).pipe(
      Job.withSchema({ input: Schema.Number, value: Schema.Number })
    )
    const otherWorker = Layer.mergeAll(
      RedisCacheStore.layer(target.store(elsewhere)),
      BullRefreshQueue.layer({ ...target.queue, queueName })
    )
    const rejected = Metric.tagged(RefreshWorker.tasks, "outcome", "rejected")
    const logs = captureLogs()
    return Effect.gen(function*() {
      const before = yield* count(rejected)
      const bull = yield* inspect()
      yield* Job.asyncRefresh(job, 5)
      // A task without a store: from an in-process store, or a producer too old to say.
      yield* Effect.promise(() => bull.add("stored", { job: "stored", key: keyOf(job, 6), input: 6 }))
      const failed = yield* Effect.scoped(Effect.zipRight(RefreshWorker.start({ jobs: [job] }), failedTasks(bull, 2))).pipe(
        Effect.provide(otherWorker)
      )
      const reasons = [5, 6].map((n) => failed.find((task) => task.data.input === n)!.failedReason)
      expect(reasons[0]).toContain(`the task of job "stored" (key "${keyOf(job, 5)}") comes from a producer on the store "redis:${prefix}", and this worker writes the job's entries to the store "redis:${elsewhere}", which that producer never reads; give the worker the producer's store`)
      expect(reasons[1]).toContain(`comes from a producer on no shared store (an in-process one, or a version of effect-cacheback whose tasks do not name their store), and this worker writes the job's entries to the store "redis:${elsewhere}"`)
      expect((yield* count(rejected)) - before).toBe(2)
      const warnings = logs.lines.filter((line) => line.startsWith("WARN") && line.includes("refresh worker rejects a task"))
      // One of the two rejections is logged (throttled per queue), whichever came first: it names the worker's store.
      expect(warnings).toHaveLength(1)
      expect(warnings[0]).toContain(`"redis:${elsewhere}"`)
      expect(Option.isNone(yield* storedValue(job, 5).pipe(Effect.provide(RedisCacheStore.layer(target.store(elsewhere)))))).toBe(true)
      expect(Option.isNone(yield* storedValue(job, 5))).toBe(true)

      yield* RefreshWorker.start({ jobs: [job] })
      const task = failed.find((task) => task.data.input === 5)!
      yield* Effect.promise(() => task.retry())
      expect(yield* poll("a worker on the producer's store refreshes it", 5_000, Effect.map(storedValue(job, 5), Option.getOrUndefined))).toBe(10)
    }).pipe(Effect.scoped, Effect.provide(Layer.merge(layer, logs.layer)))
  })

  it.live("RefreshWorker.run runs until interrupted: forked, it refreshes a task enqueued later; interrupted, it stops and says so", () => {
    const { inspect, layer } = setup("run")
    const job = Job.make({ name: "running", fetch: (n: number) => Effect.succeed(n * 2) }).pipe(
      Job.withSchema({ input: Schema.Number, value: Schema.Number })
    )
    const logs = captureLogs()
    return Effect.gen(function*() {
      const worker = yield* Effect.fork(Effect.scoped(RefreshWorker.run({ jobs: [job], name: "runner" })))
      yield* Effect.sleep("500 millis")
      yield* Job.asyncRefresh(job, 21)
      expect(yield* poll("a task enqueued later is refreshed", 5_000, Effect.map(storedValue(job, 21), Option.getOrUndefined))).toBe(42)
      yield* Fiber.interrupt(worker)
      expect(logs.lines).toContain(`INFO cacheback: refresh worker "runner" stopped (interrupted); no refresh was running`)
      // Stopped: a task enqueued now waits for another worker.
      yield* Job.asyncRefresh(job, 5)
      yield* Effect.sleep("500 millis")
      const bull = yield* inspect()
      expect(yield* Effect.promise(() => bull.getWaitingCount())).toBe(1)
      expect(Option.isNone(yield* storedValue(job, 5))).toBe(true)
    }).pipe(Effect.scoped, Effect.provide(Layer.merge(layer, logs.layer)))
  })

  it.live("a worker stopped mid-refresh says how many refreshes were running and that they did not finish within closeTimeout", () => {
    const { layer } = setup("cut")
    const logs = captureLogs()
    return Effect.gen(function*() {
      const started = yield* Deferred.make<void>()
      const job = Job.make({
        name: "endless",
        fetch: (n: number) => Deferred.succeed(started, undefined).pipe(Effect.zipRight(Effect.never), Effect.as(n))
      }).pipe(Job.withSchema({ input: Schema.Number, value: Schema.Number }))
      yield* Effect.scoped(Effect.gen(function*() {
        yield* RefreshWorker.start({ jobs: [job], name: "cut", closeTimeout: "200 millis" })
        yield* Job.asyncRefresh(job, 1)
        yield* Deferred.await(started)
      }))
      expect(logs.lines).toContain(
        `WARN cacheback: refresh worker "cut" stopped (its scope closed); refreshes running: 1; 1 did not finish within ` +
          `closeTimeout (200 ms) and are interrupted: their tasks go to another worker once their locks expire`
      )
    }).pipe(Effect.scoped, Effect.provide(Layer.merge(layer, logs.layer)))
  })

  it.live("a worker logs each refresh at DEBUG and none at INFO: its INFO lines are its start and stop", () => {
    const { layer, queueName } = setup("levels")
    const job = Job.make({ name: "levels", fetch: (n: number) => Effect.succeed(n) }).pipe(
      Job.withSchema({ input: Schema.Number, value: Schema.Number })
    )
    const inputs = Array.from({ length: 20 }, (_, n) => n)
    const logs = captureLogs()
    return Effect.gen(function*() {
      yield* Effect.scoped(Effect.gen(function*() {
        yield* RefreshWorker.start({ jobs: [job], concurrency: 4, name: "levels" })
        yield* Effect.forEach(inputs, (n) => Job.asyncRefresh(job, n), { discard: true })
        yield* poll(
          "every task is refreshed",
          10_000,
          Effect.map(Effect.forEach(inputs, (n) => storedValue(job, n)), (values) => values.every(Option.isSome) ? true : undefined)
        )
      }))
      const refreshed = (level: string) => logs.lines.filter((line) => line.startsWith(level) && line.includes("cacheback: refreshed"))
      expect(refreshed("INFO")).toEqual([])
      expect(refreshed("DEBUG")).toHaveLength(20)
      const info = logs.lines.filter((line) => line.startsWith("INFO") && line.includes("refresh worker"))
      expect(info).toHaveLength(2)
      expect(info[0]).toBe(`INFO cacheback: refresh worker "levels" runs levels from "${queueName}"`)
      expect(info[1]).toMatch(/^INFO cacheback: refresh worker "levels" stopped \(its scope closed\); /)
    }).pipe(Effect.scoped, Effect.provide(Layer.mergeAll(layer, logs.layer, Logger.minimumLogLevel(LogLevel.Debug))))
  })

  it("refuses bad options at once: two jobs with one name, bad queue names and counts", () => {
    const a = Job.make({ name: "same", fetch: (n: number) => Effect.succeed(n) })
    const b = Job.make({ name: "same", fetch: (n: number) => Effect.succeed(n + 1) })
    expect(() => RefreshWorker.run({ jobs: [a, b] })).toThrow(/two different jobs are named "same"/)
    expect(() => RefreshWorker.run({ jobs: [a, a] })).not.toThrow()
    expect(() => RefreshWorker.run({ jobs: [] })).toThrow(/at least one job/)
    expect(() => RefreshWorker.run({ jobs: [a], concurrency: 0 })).toThrow(/concurrency/)
    expect(() => RefreshWorker.start({ jobs: [a, b] })).toThrow(/RefreshWorker.start: two different jobs/)
    expect(() => RefreshWorker.layer({ jobs: [] })).toThrow(/RefreshWorker.layer: expected at least one job/)
    expect(() => BullRefreshQueue.layer({ connection: { url: redisUrl }, queueName: "a:b" })).toThrow(/cannot contain ":"/)
    expect(() => BullRefreshQueue.layer({ connection: { url: redisUrl }, queueName: "" })).toThrow(/queueName/)
    expect(() => BullRefreshQueue.layer({ connection: { url: redisUrl }, queueName: "q", keepFailed: -1 })).toThrow(/keepFailed/)
  })

  // BullMQ's scripts touch every key of a queue, which must share a slot.
  it.live("on a cluster, a queue without a hash tag is refused at once, naming it: by the layer, at enqueue, by a worker", () => {
    const onCluster = "cluster" in target.queue
    const plain = unique("plain")
    const tagged = target.queueName("tagged")
    queues.push(plain, tagged)
    const build = (options: { readonly queueName: string; readonly prefix?: string }) => () =>
      BullRefreshQueue.layer({ ...target.queue, ...options })
    if (onCluster) {
      expect(build({ queueName: plain })).toThrow(
        `BullRefreshQueue.layer: on a Redis Cluster, BullMQ needs all the keys of a queue in one hash slot, and neither ` +
          `the prefix "bull" nor the queue name "${plain}" has a hash tag: name the queue "{${plain}}"`
      )
      expect(build({ queueName: plain, prefix: "cb{}" })).toThrow(/neither the prefix "cb\{\}"/)
    } else {
      expect(build({ queueName: plain })).not.toThrow()
    }
    expect(build({ queueName: plain, prefix: "{cbtest}" })).not.toThrow()
    // A client passed as the connection: a Cluster is checked as cluster options are.
    const client = target.raw()
    try {
      const withClient = () => BullRefreshQueue.layer({ connection: client, queueName: plain })
      if (onCluster) expect(withClient).toThrow(/on a Redis Cluster, BullMQ needs all the keys of a queue in one hash slot/)
      else expect(withClient).not.toThrow()
    } finally {
      client.disconnect()
    }
    expect(build({ queueName: tagged })).not.toThrow()
    const routed = Job.make({ name: "routedPlain", fetch: (n: number) => Effect.succeed(n) }).pipe(
      Job.withSchema({ input: Schema.Number, value: Schema.Number }),
      Job.withQueueOptions({ queue: plain })
    )
    return Effect.gen(function*() {
      const queue = yield* RefreshQueue.RefreshQueue
      const enqueued = yield* Effect.either(queue.enqueue({
        job: routed.name,
        key: keyOf(routed, 1),
        input: 1,
        inputSchema: routed.inputSchema,
        options: routed.queueOptions,
        refresh: Effect.void
      }))
      const worker = yield* Effect.exit(Effect.scoped(RefreshWorker.start({ jobs: [routed], name: "untagged" })))
      if (onCluster) {
        expect(Either.isLeft(enqueued) && enqueued.left.reason).toContain(`the job's queue option: on a Redis Cluster`)
        expect(String(Exit.isFailure(worker) && Cause.squash(worker.cause))).toContain(
          `RefreshWorker "untagged": on a Redis Cluster, BullMQ needs all the keys of a queue in one hash slot`
        )
      } else {
        expect(Either.isRight(enqueued)).toBe(true)
        expect(Exit.isSuccess(worker)).toBe(true)
      }
    }).pipe(
      Effect.scoped,
      Effect.provide(Layer.merge(BullRefreshQueue.layer({ ...target.queue, queueName: tagged }), CacheStore.layerMemory({ capacity: 10 }))),
      quiet
    )
  })
})
