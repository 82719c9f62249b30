import { KeyValueStore } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Layer, Option, Schema, TestClock } from "effect"
import { execFileSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { CacheStore, Entry, Job, TestRefreshQueue } from "effect-cacheback"
import { captureLogs, count, counting, eventually } from "./support/kit.js"

const minute = Duration.minutes(1)
const found = (option: Option.Option<Entry.Entry<unknown>>) => Option.getOrNull(option)

describe("CacheStore.layerMemory", () => {
  it.scoped("holds at most `capacity` entries, evicting one not read since it was written (LRU by CLOCK)", () =>
    Effect.gen(function*() {
      const store = yield* CacheStore.makeMemory({ capacity: 2 })
      yield* store.set("a", Entry.value(1, 0, 1), minute, undefined)
      yield* store.set("b", Entry.value(2, 0, 1), minute, undefined)
      yield* store.get("a", undefined)
      yield* store.set("c", Entry.value(3, 0, 1), minute, undefined)
      expect((yield* store.getMany(["a", "b", "c"], undefined)).map(Option.isSome)).toEqual([true, false, true])
    }))

  it.scoped("when every entry was read, the newest one written is kept, and the oldest evicted", () =>
    Effect.gen(function*() {
      const store = yield* CacheStore.makeMemory({ capacity: 2 })
      yield* store.set("a", Entry.value(1, 0, 1), minute, undefined)
      yield* store.set("b", Entry.value(2, 0, 1), minute, undefined)
      yield* store.getMany(["a", "b"], undefined)
      yield* store.set("c", Entry.value(3, 0, 1), minute, undefined)
      expect((yield* store.getMany(["a", "b", "c"], undefined)).map(Option.isSome)).toEqual([false, true, true])
    }))

  it.scoped("rewriting a key never evicts another", () =>
    Effect.gen(function*() {
      const store = yield* CacheStore.makeMemory({ capacity: 2 })
      yield* store.set("a", Entry.value(1, 0, 1), minute, undefined)
      yield* store.set("b", Entry.value(2, 0, 1), minute, undefined)
      yield* store.set("b", Entry.value(3, 0, 1), minute, undefined)
      expect((yield* store.getMany(["a", "b"], undefined)).map(Option.isSome)).toEqual([true, true])
    }))

  it.scoped("forgets an entry after its TTL by the caller's Clock", () =>
    Effect.gen(function*() {
      const store = yield* CacheStore.makeMemory({ capacity: 10 })
      yield* store.set("a", Entry.value(1, 0, 1), minute, undefined)
      yield* TestClock.adjust("59 seconds")
      expect(found(yield* store.get("a", undefined))).toEqual(Entry.value(1, 0, 1))
      expect(found(store.unsafeGet!("a", 59_999)!)).toEqual(Entry.value(1, 0, 1))
      yield* TestClock.adjust("1 second")
      expect(found(yield* store.get("a", undefined))).toBeNull()
    }))

  it.scoped("delete removes; set replaces", () =>
    Effect.gen(function*() {
      const store = yield* CacheStore.makeMemory({ capacity: 10 })
      yield* store.set("a", Entry.value(1, 0, 1), minute, undefined)
      yield* store.set("a", Entry.pending(5), minute, undefined)
      expect(found(yield* store.get("a", undefined))).toEqual(Entry.pending(5))
      yield* store.delete("a")
      expect(found(yield* store.get("a", undefined))).toBeNull()
    }))

  it("rejects a capacity that is not a positive integer, at once", () => {
    expect(() => CacheStore.layerMemory({ capacity: 0 })).toThrow(/CacheStore\.layerMemory: expected capacity to be a positive integer, got 0/)
    expect(() => CacheStore.layerMemory({ capacity: 1.5 })).toThrow(/got 1\.5/)
  })
})

describe("CacheStore.layerKeyValueStore", () => {
  const layer = Layer.mergeAll(
    CacheStore.layerKeyValueStore().pipe(Layer.provideMerge(KeyValueStore.layerMemory)),
    TestRefreshQueue.layer
  )
  const Report = Schema.Struct({ at: Schema.Date, tags: Schema.Array(Schema.String) })

  it.scoped("values go through the job's value schema: a Date comes back a Date", () =>
    Effect.gen(function*() {
      const job = Job.make({
        name: "kvSchema",
        fetch: (_: string) => Effect.succeed({ at: new Date("2024-01-01T00:00:00Z"), tags: ["a"] })
      }).pipe(Job.withSchema({ value: Report }))
      yield* Job.get(job, "x")
      // The read's write follows its answer.
      yield* eventually(Effect.map(Job.rawGet(job, "x"), (entry) => expect(Option.isSome(entry)).toBe(true)))
      const again = yield* Job.lookup(job, "x")
      expect(again.status).toBe("hit")
      expect(again.value.at).toBeInstanceOf(Date)
      expect(again.value.at.toISOString()).toBe("2024-01-01T00:00:00.000Z")
    }).pipe(Effect.provide(layer)))

  it.scoped("without a schema a value must be JSON-safe: set fails with a CodecError that says what to do", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "kvUnsafe", fetch: (_: string) => Effect.succeed({ at: new Date(0) }) })
      const error = yield* Effect.flip(Job.set(job, "x", { at: new Date(0) }))
      expect(error._tag).toBe("CodecError")
      expect(error.message).toMatch(/\$\.at is an instance of Date.*Job\.withSchema\(\{ value \}\)/)
    }).pipe(Effect.provide(layer)))

  it.scoped("a value that cannot be encoded does not break a read: it is returned and the write is logged", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const job = Job.make({ name: "kvUnsafeRead", fetch: (_: string) => Effect.succeed(10n) })
      expect(yield* Job.get(job, "x")).toBe(10n)
      yield* eventually(Effect.map(count(Job.metrics(job).storeErrors), (errors) => expect(errors).toBe(1)))
      expect(logs.lines.some((line) => line.includes("$ is a bigint"))).toBe(true)
    }).pipe(Effect.provide(Layer.merge(layer, logs.layer)))
  })

  it.scoped("an entry that does not decode is a miss, counted, and overwritten by the fetch", () =>
    Effect.gen(function*() {
      const kv = yield* KeyValueStore.KeyValueStore
      const job = Job.make({ name: "kvCorrupt", fetch: counting().fetch }).pipe(Job.withSchema({ value: Schema.String }))
      const key = Option.getOrThrow(Option.getRight(job.key("x")))
      const decodeErrors = CacheStore.decodeErrors("keyValueStore")
      const before = yield* count(decodeErrors)
      for (const garbage of ["not json", JSON.stringify({ deadline: 1e15, entry: { _tag: "Value", value: 42, fetchedAt: 0, expiresAt: 1 } })]) {
        yield* kv.set(key, garbage)
        expect((yield* Job.lookup(job, "x")).status).toBe("miss")
        yield* eventually(Effect.map(kv.get(key), (text) => expect(text).not.toEqual(Option.some(garbage))))
        expect((yield* Job.lookup(job, "x")).status).toBe("hit")
        yield* Job.delete(job, "x")
      }
      expect((yield* count(decodeErrors)) - before).toBe(2)
    }).pipe(Effect.provide(layer)))

  it.live("a KeyValueStore that never answers: reads fetch after the store's timeout, writes fail typed after it, nothing hangs", () =>
    Effect.gen(function*() {
      const f = counting()
      const job = Job.make({ name: "kvHung", fetch: f.fetch })
      // Answered (the test would time out otherwise): the hung get counted as a miss.
      expect(yield* Job.lookup(job, "x")).toEqual({ value: "x#1", status: "miss", syncFetch: true })
      expect(yield* count(Job.metrics(job).storeErrors)).toBeGreaterThanOrEqual(1)
      const error = yield* Effect.flip(Job.set(job, "x", "v"))
      expect(error.message).toMatch(/cache store set of ".*" failed: .*no answer within 50 ms \(timeout\)/)
    }).pipe(Effect.provide(Layer.merge(
      CacheStore.layerKeyValueStore({ timeout: "50 millis" }).pipe(Layer.provide(Layer.succeed(
        KeyValueStore.KeyValueStore,
        KeyValueStore.make({
          get: () => Effect.never,
          getUint8Array: () => Effect.never,
          set: () => Effect.never,
          remove: () => Effect.never,
          clear: Effect.never,
          size: Effect.never
        })
      ))),
      TestRefreshQueue.layer
    ))))

  it.live("a write slower than the timeout fails its caller at the timeout and still lands whole (never cut halfway)", () =>
    Effect.gen(function*() {
      const inner = yield* KeyValueStore.KeyValueStore
      const job = Job.make({ name: "kvSlowWrite", fetch: counting().fetch })
      const error = yield* Effect.flip(Job.set(job, "x", "v"))
      expect(error.message).toMatch(/no answer within 50 ms \(timeout\)/)
      // The write goes on in the background, holding the key's lock, and lands.
      yield* Effect.sleep("250 millis")
      expect(yield* inner.size).toBe(1)
      expect((yield* Job.lookup(job, "x")).value).toBe("v")
    }).pipe(Effect.provide((() => {
      const inner = KeyValueStore.layerMemory
      const slow = Layer.effect(
        KeyValueStore.KeyValueStore,
        Effect.map(KeyValueStore.KeyValueStore, (kv) => KeyValueStore.make({ ...kv, set: (key, value) => Effect.zipRight(Effect.sleep("150 millis"), kv.set(key, value)) }))
      ).pipe(Layer.provide(inner))
      return Layer.mergeAll(
        CacheStore.layerKeyValueStore({ timeout: "50 millis" }).pipe(Layer.provide(slow)),
        slow,
        TestRefreshQueue.layer
      )
    })())))

  it.scoped("a record past its TTL reads as a miss and is removed", () =>
    Effect.gen(function*() {
      const kv = yield* KeyValueStore.KeyValueStore
      const job = Job.make({ name: "kvTtl", fetch: counting().fetch }).pipe(Job.withCacheTtl("1 minute"), Job.withLifetime("1 hour"))
      yield* Job.get(job, "x")
      yield* TestClock.adjust("1 minute")
      expect(yield* Job.rawGet(job, "x")).toEqual(Option.none())
      expect(yield* kv.size).toBe(0)
    }).pipe(Effect.provide(layer)))

  it("with the file-system KeyValueStore the cache survives a restart of the program", () => {
    const directory = mkdtempSync(join(tmpdir(), "cacheback-kv-"))
    const run = () =>
      JSON.parse(execFileSync(process.execPath, ["--import", "tsx", "test/fixtures/kv-restart.ts", directory], { encoding: "utf8" }))
    const [first, second] = (() => {
      try {
        return [run(), run()]
      } finally {
        rmSync(directory, { recursive: true, force: true })
      }
    })()
    expect(first).toMatchObject({ status: "miss", atIsDate: true })
    expect(second).toMatchObject({ status: "hit", atIsDate: true, builtBy: first.pid })
    expect(second.pid).not.toBe(first.pid)
  })
})
