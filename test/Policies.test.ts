/**
 * The resilience policies (DESIGN.md §8) through the engine, under TestClock and
 * `Random.fixed`: stale-if-error, early refresh of hot keys, tag invalidation.
 */
import { KeyValueStore } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Fiber, Layer, Metric, Random, TestClock } from "effect"
import { CacheStore, Job, TestRefreshQueue } from "effect-cacheback"
import { tagRaceScenario, tagScenario } from "./support/kit.js"

const count = (counter: Metric.Metric.Counter<number>) => Effect.map(Metric.value(counter), (state) => state.count)

class Down {
  readonly _tag = "Down"
}

/** An origin that fails with a typed `Down` while `down` holds, counting every fetch. */
const origin = () => {
  const state = { down: false, fetches: 0, at: [] as Array<number> }
  return {
    state,
    fetch: (key: string) =>
      Effect.flatMap(Effect.clockWith((clock) => clock.currentTimeMillis), (now) => {
        state.fetches++
        state.at.push(now)
        return state.down ? Effect.fail(new Down()) : Effect.succeed(`${key}@${now}`)
      })
  }
}

const memory = Layer.merge(CacheStore.layerMemory({ capacity: 100 }), TestRefreshQueue.layer)

describe("Job.withStaleIfError", () => {
  const build = (o: ReturnType<typeof origin>) =>
    Job.make({ name: `staleIfError-${Math.random()}`, fetch: o.fetch }).pipe(
      Job.withLifetime("1 minute"),
      Job.withStaleRefresh({ syncAfter: "2 minutes" }),
      Job.withRefreshTimeout("30 seconds"),
      Job.withStaleIfError("10 minutes")
    )

  it.scoped("an origin down for 5 minutes across syncAfter: no read fails, at most one fetch per refresh timeout", () =>
    Effect.gen(function*() {
      const o = origin()
      const job = build(o)
      yield* Job.get(job, "k") // fetched at 0
      o.state.down = true
      const failed: Array<number> = []
      let served = 0
      for (let t = 5_000; t <= 360_000; t += 5_000) {
        yield* TestClock.setTime(t)
        if (t === 300_000) o.state.down = false // back after 5 minutes of outage
        const read = yield* Effect.either(Job.lookup(job, "k"))
        if (Either.isLeft(read)) failed.push(t)
        else served++
        yield* TestRefreshQueue.drain // the refreshes it asked for (they fail while down)
      }
      expect(failed).toEqual([])
      expect(served).toBe(72)
      // Reads past syncAfter (120 s) fetched while down at most once per 30 s grace: at 125,
      // 160, 195, 230 and 265 s, each failure served stale; never two reads in a row. At 300 s
      // the origin is back and the read's fetch succeeds.
      expect(yield* count(Job.metrics(job).staleIfError)).toBe(5)
      expect(yield* count(Job.metrics(job).syncFetches)).toBe(1 + 5 + 1)
      // Back up: the value is fresh again.
      expect((yield* Job.lookup(job, "k")).value).toMatch(/^k@3\d{5}$/)
    }).pipe(Effect.provide(memory)))

  it.scoped("lookup reports the error it served the stale value for; past maxStale the read fails with it", () =>
    Effect.gen(function*() {
      const o = origin()
      const job = build(o)
      yield* Job.get(job, "k")
      o.state.down = true
      yield* TestClock.setTime(150_000) // past syncAfter: fetched synchronously, fails
      const read = yield* Job.lookup(job, "k")
      expect(read.value).toBe("k@0")
      expect(read.status).toBe("stale")
      expect(read.syncFetch).toBe(false)
      expect(read.error).toBeInstanceOf(Down)
      // Within the grace: served again, without fetching.
      const fetches = o.state.fetches
      yield* TestClock.setTime(170_000)
      expect(yield* Job.lookup(job, "k")).toEqual({ value: "k@0", status: "stale", syncFetch: false })
      expect(o.state.fetches).toBe(fetches)
      // The first read at 10 minutes of age fails, typed.
      yield* TestClock.setTime(600_000)
      const error = yield* Effect.flip(Job.get(job, "k"))
      expect(error).toBeInstanceOf(Down)
    }).pipe(Effect.provide(memory)))

  it.scoped("a fetch that times out is served stale too", () =>
    Effect.gen(function*() {
      let hang = false
      const job = Job.make({
        name: "staleIfTimeout",
        fetch: (_: string) => hang ? Effect.never : Effect.succeed("v")
      }).pipe(Job.withStaleRefresh({ syncAfter: 0 }), Job.withFetchTimeout("1 second"), Job.withStaleIfError("1 hour"))
      yield* Job.get(job, "k")
      hang = true
      yield* TestClock.adjust("1 millis")
      const read = yield* Effect.fork(Job.lookup(job, "k"))
      yield* TestClock.adjust("1 second")
      const found = yield* Fiber.join(read)
      expect([found.value, found.status, (found.error as { _tag?: string } | undefined)?._tag]).toEqual(["v", "stale", "FetchTimeout"])
    }).pipe(Effect.provide(memory)))

  it("throws at once for a negative maxStale, naming the combinator", () => {
    const job = Job.make({ name: "badStaleIfError", fetch: (_: string) => Effect.succeed(1) })
    expect(() => Job.withStaleIfError(job, -1)).toThrow(/Job\.withStaleIfError: expected a finite, non-negative duration/)
  })
})

describe("Job.withEarlyRefresh", () => {
  it.scoped("near expiry a hit enqueues one refresh, by the draw from Random (Random.fixed drives it); the next hits of that value do not", () =>
    Effect.gen(function*() {
      let fetches = 0
      const job = Job.make({
        name: "early",
        fetch: (_: string) => Effect.zipRight(Effect.sleep("50 millis"), Effect.sync(() => ++fetches))
      }).pipe(Job.withLifetime("10 seconds"), Job.withEarlyRefresh({ beta: 1 }))
      const first = yield* Effect.fork(Job.get(job, "k"))
      yield* TestClock.adjust("50 millis")
      yield* Fiber.join(first) // fetched in 50 ms: delta 50, fresh until 10.05 s
      // At 6 s, even the smallest draw does not refresh: 50 ms × ln(draw) cannot reach 4 s.
      yield* TestClock.setTime(6_000)
      expect(yield* Job.lookup(job, "k").pipe(Effect.withRandom(Random.fixed([0.999999])))).toEqual({ value: 1, status: "hit", syncFetch: undefined })
      expect(yield* TestRefreshQueue.pending).toHaveLength(0)
      // At 10 s, 50 ms before expiry: a draw of 1 - 0.7 gives 50 × 1.2 = 60 ms ≥ 50 ms left.
      yield* TestClock.setTime(10_000)
      const draws = Random.fixed([0.7])
      expect((yield* Job.lookup(job, "k").pipe(Effect.withRandom(draws))).status).toBe("hit")
      expect(yield* Job.get(job, "k").pipe(Effect.withRandom(draws))).toBe(1)
      expect(yield* Job.get(job, "k").pipe(Effect.withRandom(draws))).toBe(1)
      expect(yield* TestRefreshQueue.pending).toHaveLength(1)
      expect(yield* count(Job.metrics(job).earlyRefreshes)).toBe(1)
      // A draw that does not reach: no refresh.
      expect((yield* Job.lookup(job, "k").pipe(Effect.withRandom(Random.fixed([0.1])))).status).toBe("hit")
      expect(yield* count(Job.metrics(job).earlyRefreshes)).toBe(1)
    }).pipe(Effect.provide(memory)))

  it("throws at once for a beta that is not a positive number", () => {
    const job = Job.make({ name: "badBeta", fetch: (_: string) => Effect.succeed(1) })
    expect(() => Job.withEarlyRefresh(job, { beta: 0 })).toThrow(/Job\.withEarlyRefresh: expected \{ beta \} with beta a positive/)
  })
})

describe("Job.withTags, invalidateTags", () => {
  const stores = {
    memory: CacheStore.layerMemory({ capacity: 100 }),
    keyValueStore: CacheStore.layerKeyValueStore().pipe(Layer.provide(KeyValueStore.layerMemory))
  }
  for (const [name, store] of Object.entries(stores)) {
    it.effect(`${name}: invalidating a tag makes its entries stale (served, refreshed), leaving others fresh`, () =>
      tagScenario(`tagged-${name}`, { stored: () => Effect.void, queued: Effect.void }).pipe(
        Effect.provide(Layer.merge(store, TestRefreshQueue.layer))
      ))

    it.effect(`${name}: a value stored with Job.set records its tags' tokens, so invalidating a tag makes it stale`, () =>
      Effect.gen(function*() {
        const job = Job.make({ name: `taggedSet-${name}`, fetch: (id: number) => Effect.succeed(id * 10) }).pipe(
          Job.withTags((id) => [`user:${id}`])
        )
        yield* Job.set(job, 1, 11)
        yield* Job.set(job, 2, 22)
        expect((yield* Job.lookup(job, 1)).status).toBe("hit")
        yield* Job.invalidateTags(job, ["user:1"])
        expect(yield* Job.lookup(job, 1)).toEqual({ value: 11, status: "stale", syncFetch: false })
        expect((yield* Job.lookup(job, 2)).status).toBe("hit")
      }).pipe(Effect.provide(Layer.merge(store, TestRefreshQueue.layer))))
  }

  it.scoped("a fetch that began before an invalidation of its tag stores an entry that is stale at once", () =>
    tagRaceScenario("taggedRace", () => Effect.void).pipe(Effect.provide(memory)))

  it.scoped("invalidating over 10,000 tagged entries is one write: O(1) in the entries", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "manyTagged", fetch: (id: number) => Effect.succeed(id) }).pipe(Job.withTags(() => ["all"]))
      yield* Effect.forEach(Array.from({ length: 10_000 }, (_, i) => i), (i) => Job.get(job, i), { discard: true })
      const store = yield* CacheStore.CacheStore
      let writes = 0
      const counted: CacheStore.Service = { ...store, set: (...args) => (writes++, store.set(...args)) }
      yield* Job.invalidateTags(job, ["all"]).pipe(Effect.provideService(CacheStore.CacheStore, counted))
      expect(writes).toBe(0) // no entry is touched
      expect((yield* Job.lookup(job, 9_999)).status).toBe("stale")
    }).pipe(Effect.provide(Layer.merge(CacheStore.layerMemory({ capacity: 20_000 }), TestRefreshQueue.layer))))

  it.scoped("a store without tags: invalidateTags fails with a StoreError that says so", () =>
    Effect.gen(function*() {
      const store = yield* CacheStore.makeMemory({ capacity: 10 })
      const { tags: _, ...untagged } = store
      const error = yield* Effect.flip(CacheStore.invalidateTags(["t"]).pipe(Effect.provideService(CacheStore.CacheStore, untagged)))
      expect(error.message).toMatch(/keeps no tags/)
    }))
})
