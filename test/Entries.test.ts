/**
 * Entries know whose they are (DESIGN.md §5.2): an entry written by a job of
 * another value schema or version is a miss, never a wrongly typed hit; `undefined` and
 * `null` values round-trip through every in-process store (Redis: the store suite).
 */
import { KeyValueStore } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Metric, Option, Schema } from "effect"
import { CacheStore, Entry, Job, TestRefreshQueue } from "effect-cacheback"
import { storedBy } from "./support/kit.js"

const count = (counter: Metric.Metric.Counter<number>) => Effect.map(Metric.value(counter), (state) => state.count)

const stores = {
  memory: CacheStore.layerMemory({ capacity: 100 }),
  keyValueStore: CacheStore.layerKeyValueStore().pipe(Layer.provide(KeyValueStore.layerMemory))
}

describe("entries carry their job's fingerprint", () => {
  const Person = Schema.Struct({ name: Schema.String, age: Schema.Number })
  const Old = Schema.Struct({ name: Schema.String })

  for (const [name, store] of Object.entries(stores)) {
    it.effect(`${name}: an entry written under another value schema is a miss, counted, then overwritten`, () =>
      Effect.gen(function*() {
        let fetches = 0
        const before = Job.make({ name: `people-${name}`, fetch: (_: string) => Effect.succeed({ name: "old" }) }).pipe(
          Job.withSchema({ value: Old })
        )
        const after = Job.make({
          name: `people-${name}`,
          fetch: (_: string) => Effect.sync(() => ({ name: "new", age: ++fetches }))
        }).pipe(Job.withSchema({ value: Person }))
        expect(yield* Job.get(before, "k")).toEqual({ name: "old" })
        // A read's write follows its answer.
        yield* storedBy(before, "k")
        expect(before.fingerprint).not.toBe(after.fingerprint)
        // The deploy that added `age`: the old shape is never served. A store that decodes
        // through the schema refuses the old entry first (a decode error), the memory store
        // hands it over and its fingerprint does not match: a miss either way, counted.
        const decodeErrors = CacheStore.decodeErrors("keyValueStore")
        const refused = yield* count(decodeErrors)
        expect(yield* Job.lookup(after, "k")).toEqual({ value: { name: "new", age: 1 }, status: "miss", syncFetch: true })
        yield* storedBy(after, "k")
        expect((yield* count(Job.metrics(after).fingerprintMisses)) + (yield* count(decodeErrors)) - refused).toBe(1)
        expect(yield* Job.lookup(after, "k")).toEqual({ value: { name: "new", age: 1 }, status: "hit", syncFetch: undefined })
        expect(fetches).toBe(1)
      }).pipe(Effect.provide(Layer.merge(store, TestRefreshQueue.layer))))
  }

  it.effect("a job without a value schema tells shapes apart by Job.withVersion alone", () =>
    Effect.gen(function*() {
      const v1 = Job.make({ name: "versioned", fetch: (_: string) => Effect.succeed(42 as unknown) })
      const v2 = Job.make({ name: "versioned", fetch: (_: string) => Effect.succeed({ name: "x", age: 1 } as unknown) }).pipe(
        Job.withVersion(2)
      )
      const unbumped = Job.make({ name: "versioned", fetch: (_: string) => Effect.succeed("never fetched" as unknown) })
      yield* Job.get(v1, "k")
      // Without a bump, nothing tells the shapes apart: the old value is served (the README says so).
      expect(yield* Job.get(unbumped, "k")).toBe(42)
      expect(yield* Job.get(v2, "k")).toEqual({ name: "x", age: 1 })
      expect(yield* count(Job.metrics(v2).fingerprintMisses)).toBe(1)
      expect(Option.isNone(yield* Job.rawGet(v1, "k"))).toBe(true)
    }).pipe(Effect.provide(Layer.merge(stores.memory, TestRefreshQueue.layer))))

  it.effect("entries written before fingerprints (0.1) are read by a job with no value schema at version 0", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "legacy", fetch: (_: string) => Effect.succeed("fetched") })
      const store = yield* CacheStore.CacheStore
      const key = yield* job.key("k")
      yield* store.set(key, Entry.value("written by 0.1", 0, 600_000), job.cacheTtl("k"), undefined)
      expect(job.fingerprint).toBeUndefined()
      expect(yield* Job.get(job, "k")).toBe("written by 0.1")
      // With a value schema the job cannot know their shape: a miss.
      const typed = job.pipe(Job.withSchema({ value: Schema.String }))
      expect(yield* Job.lookup(typed, "k")).toEqual({ value: "fetched", status: "miss", syncFetch: true })
    }).pipe(Effect.provide(Layer.merge(stores.keyValueStore, TestRefreshQueue.layer))))

  it("withVersion throws at once for a negative or fractional version", () => {
    const job = Job.make({ name: "badVersion", fetch: (_: string) => Effect.succeed(1) })
    expect(() => Job.withVersion(job, -1)).toThrow(/Job\.withVersion: expected version to be a non-negative integer, got -1/)
    expect(() => Job.withVersion(job, 1.5)).toThrow(/got 1\.5/)
  })
})

describe("undefined and null values round-trip through every store (cacheback caches None)", () => {
  for (const [name, store] of Object.entries(stores)) {
    for (const [label, value, schema] of [
      ["undefined, no value schema", undefined, undefined],
      ["null, no value schema", null, undefined],
      ["undefined, Schema.Undefined", undefined, Schema.Undefined],
      ["null, Schema.NullOr", null, Schema.NullOr(Schema.String)]
    ] as const) {
      it.effect(`${name}: ${label}`, () =>
        Effect.gen(function*() {
          let fetches = 0
          const base = Job.make({ name: `none-${name}-${label}`, fetch: (_: string) => Effect.sync(() => (++fetches, value)) })
          const job = schema === undefined ? base : base.pipe(Job.withSchema({ value: schema as Schema.Schema<typeof value> }))
          expect(yield* Job.get(job, "k")).toBe(value)
          yield* storedBy(job, "k")
          expect(yield* Job.lookup(job, "k")).toEqual({ value, status: "hit", syncFetch: undefined })
          expect(fetches).toBe(1)
        }).pipe(Effect.provide(Layer.merge(store, TestRefreshQueue.layer))))
    }
  }
})
