/**
 * Bad input gets a typed error and loses nothing: key and tag functions that throw or
 * return what cannot be stored apart, fetches that throw, more tags than a store keeps.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Exit, Layer, Option, TestClock } from "effect"
import { CacheStore, Job, TestRefreshQueue } from "effect-cacheback"
import { captureLogs, counting, testLayer } from "./support/kit.js"

const utf8 = (key: string) => Buffer.from(key, "utf8").toString("hex")

describe("keys and tags that cannot be stored apart are typed errors", () => {
  it.effect("a withKey function that throws is a KeyError naming it", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "keyThrows", fetch: counting().fetch }).pipe(
        Job.withKey((input: string) => {
          if (input === "bad") throw new Error("no key for bad")
          return input
        })
      )
      const error = yield* Effect.flip(Job.get(job, "bad"))
      expect(error._tag).toBe("KeyError")
      expect(error.message).toMatch(/job "keyThrows": .*the withKey function threw: .*no key for bad/)
      expect(yield* Job.get(job, "good")).toBe("good#1")
    }).pipe(Effect.provide(testLayer)))

  it.effect("a withKey key with a lone surrogate is a KeyError: \\uD800 and \\uDC00 are the same UTF-8 bytes", () =>
    Effect.gen(function*() {
      expect(utf8("\uD800")).toBe(utf8("\uDC00"))
      const job = Job.make({ name: "keySurrogate", fetch: counting().fetch }).pipe(Job.withKey((input: string) => input))
      for (const lone of ["\uD800", "\uDC00", "a\uDBFFb"]) {
        const error = yield* Effect.flip(Job.get(job, lone))
        expect(error._tag).toBe("KeyError")
        expect(error.message).toMatch(/lone surrogate/)
      }
      // A pair is a character: stored as it is.
      expect(yield* Job.get(job, "\uD83D\uDE00")).toBe("\uD83D\uDE00#1")
    }).pipe(Effect.provide(testLayer)))

  it("derived keys of strings with lone surrogates are distinct in UTF-8 (escaped)", () => {
    const job = Job.make({ name: "derivedSurrogate", fetch: counting().fetch })
    const keys = ["\uD800", "\uDC00", "\uFFFD"].map((input) => utf8(Either.getOrThrow(job.key(input))))
    expect(new Set(keys).size).toBe(3)
  })

  it.effect("a withTags function that throws, or returns a non-string or a lone surrogate, is a KeyError; the key is free after", () =>
    Effect.gen(function*() {
      let tags: () => ReadonlyArray<string> = () => {
        throw new Error("tags unavailable")
      }
      const f = counting()
      const job = Job.make({ name: "tagsThrow", fetch: f.fetch }).pipe(Job.withTags(() => tags()))
      const thrown = yield* Effect.flip(Job.get(job, "k"))
      expect(thrown._tag).toBe("KeyError")
      expect(thrown.message).toMatch(/job "tagsThrow": cannot tag the value at tags: the withTags function threw: .*tags unavailable/)
      tags = () => ["ok", 42 as never]
      expect((yield* Effect.flip(Job.get(job, "k"))).message).toMatch(/at tags\[1\]: the withTags function returned a number, not a string/)
      tags = () => ["\uDC00"]
      expect((yield* Effect.flip(Job.get(job, "k"))).message).toMatch(/at tags\[0\]: the tag "\\udc00" has a lone surrogate/)
      expect((yield* Effect.flip(Job.set(job, "k", "v")))._tag).toBe("KeyError")
      tags = () => ["ok"]
      expect(yield* Job.get(job, "k")).toBe("k#4")
      expect(yield* Job.lookup(job, "k")).toEqual({ value: "k#4", status: "hit", syncFetch: undefined })
    }).pipe(Effect.provide(testLayer)))

  it.effect("invalidateTags of a non-string or a lone surrogate fails with a StoreError and invalidates nothing", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "invalidateBad", fetch: counting().fetch }).pipe(Job.withTags(() => ["a"]))
      yield* Job.get(job, "k")
      const lone = yield* Effect.flip(CacheStore.invalidateTags(["a", "\uD800"]))
      expect(lone.message).toMatch(/tag 1 \("\\ud800"\) has a lone surrogate.*nothing was invalidated/)
      const number = yield* Effect.flip(CacheStore.invalidateTags(["a", 1 as never]))
      expect(number.message).toMatch(/tag 1 is a number, not a string/)
      expect((yield* Job.lookup(job, "k")).status).toBe("hit")
    }).pipe(Effect.provide(testLayer)))
})

describe("a fetch that throws instead of failing", () => {
  it.effect("is a defect of the reads that wait for it, and frees its key: the next read fetches", () =>
    Effect.gen(function*() {
      let calls = 0
      const job = Job.make({
        name: "fetchThrows",
        fetch: (input: string): Effect.Effect<string> => {
          if (++calls === 1) throw new Error("thrown, not failed")
          return Effect.succeed(`${input}#${calls}`)
        }
      })
      const first = yield* Effect.exit(Effect.all([Job.get(job, "k"), Job.get(job, "k")], { concurrency: "unbounded" }))
      expect(Exit.isFailure(first) && !Exit.isInterrupted(first)).toBe(true)
      expect(String(Exit.isFailure(first) ? first.cause : "")).toMatch(/thrown, not failed/)
      expect(yield* Job.get(job, "k")).toBe("k#2")
      expect(yield* Job.lookup(job, "k")).toEqual({ value: "k#2", status: "hit", syncFetch: undefined })
    }).pipe(Effect.provide(testLayer)))

  it.effect("as a background refresh: fails the attempt, the stale value stays, the key can be refreshed again", () =>
    Effect.gen(function*() {
      let throwing = false
      const f = counting()
      const job = Job.make({
        name: "refreshThrows",
        fetch: (input: string) => {
          if (throwing) throw new Error("thrown in a refresh")
          return f.fetch(input)
        }
      }).pipe(Job.withLifetime("1 millis"))
      yield* Job.get(job, "k")
      yield* TestClock.adjust("5 millis")
      throwing = true
      expect(yield* Job.lookup(job, "k")).toEqual({ value: "k#1", status: "stale", syncFetch: false })
      yield* Effect.exit(TestRefreshQueue.drain)
      throwing = false
      yield* TestClock.adjust("2 minutes")
      expect((yield* Job.lookup(job, "k")).status).toBe("stale")
      expect(yield* TestRefreshQueue.drain).toBe(1)
      expect((yield* Job.rawGet(job, "k")).pipe(Option.map((entry) => entry._tag === "Value" && entry.value))).toEqual(Option.some("k#2"))
    }).pipe(Effect.provide(testLayer)))
})

describe("tags kept apart from the entries", () => {
  it.effect("a store of capacity 1,000 keeps the 1,001 tags of one entry: fresh on its second read", () =>
    Effect.gen(function*() {
      const f = counting()
      const job = Job.make({ name: "manyTagsMemory", fetch: f.fetch }).pipe(
        Job.withTags(() => Array.from({ length: 1_001 }, (_, i) => `t${i}`))
      )
      yield* Job.get(job, "k")
      expect(yield* Job.lookup(job, "k")).toEqual({ value: "k#1", status: "hit", syncFetch: undefined })
      expect(f.calls()).toBe(1)
    }).pipe(Effect.provide(Layer.merge(CacheStore.layerMemory({ capacity: 1_000 }), TestRefreshQueue.layer))))

  it.effect("an entry with more tags than tagCapacity is stale at every read, and a warning says so once", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const job = Job.make({ name: "tooManyTags", fetch: counting().fetch }).pipe(
        Job.withTags(() => Array.from({ length: 11 }, (_, i) => `t${i}`))
      )
      yield* Job.get(job, "k")
      yield* Job.get(job, "j")
      expect((yield* Job.lookup(job, "k")).status).toBe("stale")
      expect(logs.lines.filter((line) => line.includes("more than the memory store's tagCapacity (10)")).length).toBe(1)
    }).pipe(Effect.provide(Layer.mergeAll(CacheStore.layerMemory({ capacity: 100, tagCapacity: 10 }), TestRefreshQueue.layer, logs.layer)))
  })
})

describe("what the reviewers of the reliability work found", () => {
  it.effect("invalidateTags given no array at all fails with a StoreError, never a defect", () =>
    Effect.gen(function*() {
      for (const bad of [undefined, null, 42, [Symbol("s")]]) {
        const error = yield* Effect.flip(CacheStore.invalidateTags(bad as never))
        expect(error._tag).toBe("StoreError")
      }
    }).pipe(Effect.provide(testLayer)))

  it.effect("a withExpiry that throws fails the refresh, never the stale read that enqueued it", () =>
    Effect.gen(function*() {
      let throwing = false
      const job = Job.make({ name: "expiryThrows", fetch: counting().fetch }).pipe(
        Job.withExpiry(() => {
          if (throwing) throw new Error("no lifetime for you")
          return "1 minute"
        })
      )
      yield* Job.get(job, "k")
      yield* TestClock.adjust("2 minutes")
      throwing = true
      expect(yield* Job.lookup(job, "k")).toEqual({ value: "k#1", status: "stale", syncFetch: false })
      expect(yield* TestRefreshQueue.pending).toHaveLength(1)
    }).pipe(Effect.provide(testLayer)))

  it.effect("a pending marker never replaces a value of another version of the job (that version still serves it)", () =>
    Effect.gen(function*() {
      const v1 = Job.make({ name: "markerVersions", fetch: (_: string) => Effect.succeed("v1 value") })
      const v2 = Job.make({ name: "markerVersions", fetch: (_: string) => Effect.succeed("v2 value") }).pipe(
        Job.withVersion(2),
        Job.withSyncOnMiss(false)
      )
      yield* Job.get(v1, "k")
      expect(yield* Job.lookup(v2, "k")).toEqual({ value: undefined, status: "miss", syncFetch: false })
      expect(yield* TestRefreshQueue.pending).toHaveLength(1)
      expect(yield* Job.lookup(v1, "k")).toEqual({ value: "v1 value", status: "hit", syncFetch: undefined })
    }).pipe(Effect.provide(testLayer)))
})
