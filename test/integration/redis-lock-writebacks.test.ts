/**
 * Compare-and-set write-backs (DESIGN.md §3.2). A stale read answers at once and
 * writes the stale value back (expiring a refresh timeout later) in the background; a
 * refresh may store a newer value before that write-back lands. These tests force that
 * order: the reader's store holds each write-back at a gate until the test opens it, after
 * the refresh of another client (a worker's) stored its value. The newer value must stay.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Layer, Option, Queue } from "effect"
import { CacheStore, Entry, Job, TestRefreshQueue } from "effect-cacheback"
import { RedisCacheStore } from "effect-cacheback/redis"
import { redisUrl, requireService } from "../support/services.js"
import { cleanUp, keyOf, rawClient, redisKey, storeStale, unique } from "./fixtures/redis.js"

const up = await requireService("redis")

/**
 * `inner` with its write-backs held until `open`, their outcomes on `landed`. `plain`: the
 * store offers no compare-and-set, so the engine writes back with `set` (the race of 0.1).
 */
const gated = (inner: CacheStore.Service, plain = false) =>
  Effect.gen(function*() {
    const landed = yield* Queue.unbounded<boolean>()
    let gate = yield* Deferred.make<void>()
    const held = <X, E>(write: Effect.Effect<X, E>) =>
      Effect.suspend(() => Deferred.await(gate)).pipe(Effect.zipRight(write), Effect.tap((x) => Queue.offer(landed, x !== false)))
    const { compareAndSet: _, ...withoutCas } = inner
    const service: CacheStore.Service = plain
      ? { ...withoutCas, set: (key, entry, ttl, schema) => held(inner.set(key, entry, ttl, schema)) }
      : { ...inner, compareAndSet: (key, entry, ttl, schema, over) => held(inner.compareAndSet!(key, entry, ttl, schema, over)) }
    return {
      service,
      /** Whether the next write-back wrote. */
      landed: Queue.take(landed),
      open: Effect.suspend(() => Deferred.succeed(gate, undefined)),
      close: Effect.suspend(() => Deferred.make<void>().pipe(Effect.map((next) => void (gate = next))))
    }
  })

let fetches = 0
const job = Job.make({ name: "writeBacks", fetch: (input: string) => Effect.sync(() => `${input}: fresh #${++fetches}`) }).pipe(
  Job.withLifetime("1 minute"),
  Job.withCacheTtl("1 hour")
)
const lazy = Job.make({ name: "writeBacksLazy", fetch: (input: string) => Effect.sync(() => `${input}: fresh #${++fetches}`) }).pipe(
  Job.withSyncOnMiss(false)
)

const storedValue = (store: CacheStore.Service, key: string) =>
  Effect.map(store.get<string>(key, undefined), (entry) =>
    Option.flatMap(entry, (found) => (found._tag === "Value" ? Option.some(found.value) : Option.none())))

/** The forced interleavings, on a reader's store and a worker's that share the entries. */
const interleavings = (reader: CacheStore.Service, worker: CacheStore.Service) =>
  Effect.gen(function*() {
    const gate = yield* gated(reader)
    const asReader = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.provide(effect, Layer.merge(Layer.succeed(CacheStore.CacheStore, gate.service), TestRefreshQueue.layer))
    const asWorker = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provideService(effect, CacheStore.CacheStore, worker)
    for (let round = 0; round < 20; round++) {
      const input = `k${round}`
      const key = keyOf(job, input)

      // The refresh lands first, then the write-back of the stale read: refused.
      yield* gate.close
      yield* asWorker(storeStale(job, input, "old"))
      expect(yield* asReader(Job.lookup(job, input))).toEqual({ value: "old", status: "stale", syncFetch: false })
      const refreshed = yield* asWorker(Job.refresh(job, input))
      yield* gate.open
      expect(yield* gate.landed).toBe(false)
      expect(yield* storedValue(worker, key)).toEqual(Option.some(refreshed))

      // The write-back lands first (it writes, the stale value a refresh timeout longer), then the refresh.
      yield* asWorker(storeStale(job, input, "old"))
      yield* asReader(Job.lookup(job, input))
      expect(yield* gate.landed).toBe(true)
      const after = yield* worker.get<string>(key, undefined)
      expect(Option.map(after, (entry) => entry._tag === "Value" && entry.value === "old" && entry.expiresAt > Date.now())).toEqual(Option.some(true))
      const again = yield* asWorker(Job.refresh(job, input))
      expect(yield* storedValue(worker, key)).toEqual(Option.some(again))

      // A pending marker held until a refresh stored a value: refused, the value stays.
      yield* gate.close
      const missing = `missing${round}`
      expect(yield* asReader(Job.lookup(lazy, missing))).toEqual({ value: undefined, status: "miss", syncFetch: false })
      const value = yield* asWorker(Job.refresh(lazy, missing))
      yield* gate.open
      expect(yield* gate.landed).toBe(false)
      expect(yield* storedValue(worker, keyOf(lazy, missing))).toEqual(Option.some(value))
    }
  })

describe.skipIf(!up)("compare-and-set write-backs", () => {
  const raw = rawClient()
  const prefixes: Array<string> = []
  afterAll(async () => {
    await cleanUp(raw, prefixes, [])
    raw.disconnect()
  })
  const redisStore = (prefix: string) => RedisCacheStore.make({ url: redisUrl, prefix })

  it.live("on Redis: a write-back or a marker that lands after a worker's refresh never replaces its value (20 rounds of each order)", () =>
    Effect.gen(function*() {
      const prefix = unique("cas")
      prefixes.push(prefix)
      // Two clients, as a web process and a worker would have.
      yield* interleavings(yield* redisStore(prefix), yield* redisStore(prefix))
    }).pipe(Effect.scoped))

  it.live("the same order without compare-and-set loses the refreshed value (the race the script closes)", () =>
    Effect.gen(function*() {
      const prefix = unique("cas-plain")
      prefixes.push(prefix)
      const worker = yield* redisStore(prefix)
      const gate = yield* gated(yield* redisStore(prefix), true)
      yield* Effect.provideService(storeStale(job, "p", "old"), CacheStore.CacheStore, worker)
      yield* Effect.provide(Job.lookup(job, "p"), Layer.merge(Layer.succeed(CacheStore.CacheStore, gate.service), TestRefreshQueue.layer))
      yield* Effect.provideService(Job.refresh(job, "p"), CacheStore.CacheStore, worker)
      yield* gate.open
      yield* gate.landed
      expect(yield* storedValue(worker, keyOf(job, "p"))).toEqual(Option.some("old"))
    }).pipe(Effect.scoped))

  it.live("a fetched value whose write lands after a newer Job.set is refused too; the newer value stays", () =>
    Effect.gen(function*() {
      const prefix = unique("cas-fetched")
      prefixes.push(prefix)
      const worker = yield* redisStore(prefix)
      const gate = yield* gated(yield* redisStore(prefix))
      const asReader = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
        Effect.provide(effect, Layer.merge(Layer.succeed(CacheStore.CacheStore, gate.service), TestRefreshQueue.layer))
      for (let round = 0; round < 10; round++) {
        const input = `fetched${round}`
        yield* gate.close
        // A miss: fetched, answered, and its write held at the gate.
        const fetched = yield* asReader(Job.get(job, input))
        yield* Effect.sleep("2 millis") // a later millisecond than the fetch's
        yield* Effect.provideService(Job.set(job, input, "set later"), CacheStore.CacheStore, worker)
        yield* gate.open
        expect(yield* gate.landed).toBe(false)
        expect(fetched).toMatch(/fresh/)
        expect(yield* storedValue(worker, keyOf(job, input))).toEqual(Option.some("set later"))
      }
    }).pipe(Effect.scoped))

  it.live("an entry without the header (0.1's format) still reads, as an entry without a token", () =>
    Effect.gen(function*() {
      const prefix = unique("cas-legacy")
      prefixes.push(prefix)
      const store = yield* redisStore(prefix)
      const legacy = JSON.stringify(Entry.value("old", Date.now() - 7_200_000, Date.now() - 3_600_000))
      yield* Effect.promise(() => raw.set(redisKey(prefix, job, "legacy"), legacy, "PX", 3_600_000))
      const read = Effect.provide(Job.lookup(job, "legacy"), Layer.merge(Layer.succeed(CacheStore.CacheStore, store), TestRefreshQueue.layer))
      expect(yield* read).toEqual({ value: "old", status: "stale", syncFetch: false })
      // A write over another token leaves it alone; one over no token replaces it.
      const over = (expected: string) =>
        store.compareAndSet!(keyOf(job, "legacy"), Entry.value("new", 1, 2, undefined, "t1"), Duration.hours(1), undefined, expected)
      // The stale read wrote it back (for another refresh timeout) with no token, as it was.
      const before = yield* Effect.promise(() => raw.get(redisKey(prefix, job, "legacy")))
      expect(before).toMatch(/^v2\|\|/)
      expect(yield* over("t0")).toBe(false)
      expect(yield* Effect.promise(() => raw.get(redisKey(prefix, job, "legacy")))).toBe(before)
      expect(yield* over("")).toBe(true)
      expect(yield* Effect.promise(() => raw.get(redisKey(prefix, job, "legacy")))).toMatch(/^v2\|t1\|/)
    }).pipe(Effect.scoped))

  it.live("an entry of 0.2 (v1|<fetchedAt>|JSON) reads as an entry without a token; the refresh replaces it with a v2 one", () =>
    Effect.gen(function*() {
      const prefix = unique("cas-v1")
      prefixes.push(prefix)
      const store = yield* redisStore(prefix)
      const fetchedAt = Date.now() - 60_000
      const v1 = `v1|${fetchedAt}|${JSON.stringify(Entry.value("of 0.2", fetchedAt, Date.now() + 600_000))}`
      yield* Effect.promise(() => raw.set(redisKey(prefix, job, "v1"), v1, "PX", 3_600_000))
      const layer = Layer.merge(Layer.succeed(CacheStore.CacheStore, store), TestRefreshQueue.layer)
      expect(yield* Effect.provide(Job.lookup(job, "v1"), layer)).toEqual({ value: "of 0.2", status: "hit", syncFetch: undefined })
      yield* Effect.provide(Job.refresh(job, "v1"), layer)
      expect(yield* Effect.promise(() => raw.get(redisKey(prefix, job, "v1")))).toMatch(/^v2\|[0-9a-z]{22}\|/)
    }).pipe(Effect.scoped))

  it.live("in one process too: the memory store's write-backs are compare-and-set", () =>
    Effect.gen(function*() {
      const store = yield* CacheStore.makeMemory({ capacity: 1_000 })
      yield* interleavings(store, store)
    }).pipe(Effect.scoped))
})
