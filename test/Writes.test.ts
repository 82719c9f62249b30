/** No lost write (DESIGN.md §3.2): every write has a token of its own; a fetch stores only over the token it read. */
import { KeyValueStore } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer, Option, TestClock } from "effect"
import { CacheStore, Entry, Job, TestRefreshQueue } from "effect-cacheback"
import { count, counting, lostWriteScenario, supersededAtLeast, testLayer } from "./support/kit.js"

const tokenOf = (entry: Option.Option<Entry.Entry<unknown>>) => Option.getOrUndefined(entry)?.token

describe("no lost write", () => {
  const stores = {
    memory: CacheStore.layerMemory({ capacity: 100 }),
    keyValueStore: CacheStore.layerKeyValueStore().pipe(Layer.provide(KeyValueStore.layerMemory))
  }
  for (const [name, store] of Object.entries(stores)) {
    it.live(`${name}: a set, delete or invalidate during a slower fetch is never overwritten by it`, () =>
      lostWriteScenario(`lost-${name}`, supersededAtLeast).pipe(Effect.provide(Layer.merge(store, TestRefreshQueue.layer))))
  }

  it.effect("two writes in the same millisecond have different tokens", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "tokens", fetch: counting().fetch })
      yield* Job.set(job, "k", "a")
      const first = tokenOf(yield* Job.rawGet(job, "k"))
      yield* Job.set(job, "k", "b")
      const second = tokenOf(yield* Job.rawGet(job, "k"))
      expect(first).toMatch(/^[0-9a-z]{22}$/)
      expect(second).toMatch(/^[0-9a-z]{22}$/)
      expect(second).not.toBe(first)
    }).pipe(Effect.provide(testLayer)))

  it.effect("a stale read's write-back keeps the token: a storm of stale reads refuses no refresh", () =>
    Effect.gen(function*() {
      const f = counting()
      const job = Job.make({ name: "staleStorm", fetch: f.fetch })
      yield* Job.get(job, "k")
      const fetched = tokenOf(yield* Job.rawGet(job, "k"))
      yield* TestClock.setTime(600_001)
      yield* Effect.forEach(Array.from({ length: 50 }), () => Job.get(job, "k"), { discard: true })
      expect(tokenOf(yield* Job.rawGet(job, "k"))).toBe(fetched)
      expect(yield* TestRefreshQueue.drain).toBe(1)
      expect(yield* Job.lookup(job, "k")).toEqual({ value: "k#2", status: "hit", syncFetch: undefined })
      expect(yield* count(Job.metrics(job).writesSuperseded)).toBe(0)
    }).pipe(Effect.provide(testLayer)))

  it.effect("a delete leaves a tombstone that outlives the job's fetch deadline plus backgroundTimeout, read as no entry", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "tombstone", fetch: counting().fetch }).pipe(Job.withFetchTimeout("5 seconds"))
      yield* Job.delete(job, "k")
      const store = yield* CacheStore.CacheStore
      const stored = yield* store.get(Either.getOrThrow(job.key("k")), undefined)
      expect(Option.map(stored, (entry) => [entry._tag, entry.expiresAt])).toEqual(Option.some(["Tombstone", 15_000]))
      expect(yield* Job.rawGet(job, "k")).toEqual(Option.none())
      expect(yield* Job.lookup(job, "k")).toEqual({ value: "k#1", status: "miss", syncFetch: true })
    }).pipe(Effect.provide(testLayer)))

  it.effect("an invalidate of an absent key leaves a tombstone and enqueues nothing", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "invalidateAbsent", fetch: counting().fetch })
      yield* Job.invalidate(job, "k")
      const store = yield* CacheStore.CacheStore
      const stored = yield* store.get(Either.getOrThrow(job.key("k")), undefined)
      expect(Option.map(stored, (entry) => entry._tag)).toEqual(Option.some("Tombstone"))
      expect(yield* TestRefreshQueue.pending).toEqual([])
    }).pipe(Effect.provide(testLayer)))
})
