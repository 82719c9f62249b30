import { describe, expect, expectTypeOf, it } from "@effect/vitest"
import { Context, Deferred, Duration, Effect, Either, Fiber, Layer, Option, Schema, TestClock } from "effect"
import { CacheStore, Entry, FetchTimeout, Job, KeyError, RefreshQueue, TestRefreshQueue } from "effect-cacheback"
import { count, counting, testLayer, written } from "./support/kit.js"

const raw = <A>(job: Job.Job<string, A, any, any, any, any, any>, input: string) =>
  Effect.map(Job.rawGet(job, input), Option.getOrNull)
const pendingKeys = Effect.map(TestRefreshQueue.pending, (tasks) => tasks.map((task) => task.input))

describe("Job.make and the combinators", () => {
  it("has cacheback's defaults", () => {
    const job = Job.make({ name: "defaults", fetch: (_: string) => Effect.succeed(1) })
    expect(job.name).toBe("defaults")
    expect(Duration.toMillis(job.expiry("x"))).toBe(600_000)
    expect(Duration.toMillis(job.refreshTimeout("x"))).toBe(60_000)
    expect(Duration.toMillis(job.cacheTtl("x"))).toBe(30 * 86_400_000)
    expect(job.syncOnMiss("x")).toBe(true)
    expect(job.staleRefresh).toEqual({ _tag: "Serve" })
    expect(job.empty("x")).toBeUndefined()
    expect(job.store).toBe(CacheStore.CacheStore)
    expect(job.spans).toBe(false)
  })

  it("every combinator is dual and returns a new record, leaving the original as it was", () => {
    const job = Job.make({ name: "dual", fetch: (_: string) => Effect.succeed(1) })
    const piped = job.pipe(Job.withLifetime("20 minutes"))
    const direct = Job.withLifetime(job, "20 minutes")
    expect(Duration.toMillis(piped.expiry("x"))).toBe(1_200_000)
    expect(Duration.toMillis(direct.expiry("x"))).toBe(1_200_000)
    expect(Duration.toMillis(job.expiry("x"))).toBe(600_000)
    expect(piped).not.toBe(job)
    const tagged = job.pipe(Job.withSpans())
    expect([tagged.spans, Job.withSpans(job).spans, Job.withSpans(job, false).spans, job.spans]).toEqual([true, true, false, false])
  })

  describe("programmer errors throw when the job is built, naming the combinator and the value", () => {
    const job = Job.make({ name: "bad", fetch: (_: string) => Effect.succeed(1) })
    const cases: Array<[string, () => unknown, RegExp]> = [
      ["an empty name", () => Job.make({ name: "", fetch: () => Effect.void }), /Job\.make: expected a non-empty name, got ""/],
      ["a blank name", () => Job.make({ name: "  ", fetch: () => Effect.void }), /non-empty name/],
      ["a negative lifetime", () => Job.withLifetime(job, -5), /Job\.withLifetime: .*got -5/],
      ["a negative string duration", () => Job.withRefreshTimeout(job, "-5 minutes"), /Job\.withRefreshTimeout: .*got "-5 minutes"/],
      ["a NaN duration", () => Job.withCacheTtl(job, Number.NaN), /Job\.withCacheTtl: .*got NaN/],
      ["an infinite duration", () => Job.withLifetime(job, Infinity), /Job\.withLifetime: .*got Infinity \(not finite\)/],
      ["a string that is no duration", () => Job.withLifetime(job, "5 potatoes" as Duration.DurationInput), /got "5 potatoes" \(not a duration\)/],
      ["a negative syncAfter", () => Job.withStaleRefresh(job, { syncAfter: -1 }), /Job\.withStaleRefresh syncAfter: .*got -1/],
      ["zero attempts", () => Job.withQueueOptions(job, { attempts: 0 }), /Job\.withQueueOptions: expected attempts .* got 0/],
      ["no queue options", () => Job.withQueueOptions(job, null as never), /Job\.withQueueOptions: expected \{ queue\?, priority\?, attempts\?, backoff\? \}, got null/],
      ["a duration tuple holding NaN", () => Job.withLifetime(job, [Number.NaN, 0]), /Job\.withLifetime: .*got \[NaN, 0\] \(not finite\)/],
      ["a duration of 1e308 ms", () => Job.withLifetime(job, 1e308), /Job\.withLifetime: .*got 1e\+308 \(longer than 100 years\)/],
      [
        "a timer longer than Node's timers can wait",
        () => Job.withFetchTimeout(job, 2 ** 31),
        /Job\.withFetchTimeout: .*got 2147483648 \(longer than 2147483647 ms, about 24\.8 days, the longest a timer can wait\)/
      ],
      ["a refresh timeout of a year", () => Job.withRefreshTimeout(job, "365 days"), /Job\.withRefreshTimeout: .*the longest a timer can wait/],
      ["a billion attempts", () => Job.withQueueOptions(job, { attempts: 1e9 }), /expected attempts to be a positive integer of at most 1,000, got 1000000000/],
      ["a backoff beyond a timer", () => Job.withQueueOptions(job, { backoff: { type: "fixed", delay: "30 days" } }), /backoff\.delay: .*the longest a timer can wait/],
      ["a queue name with a colon", () => Job.withQueueOptions(job, { queue: "a:b" }), /Job\.withQueueOptions: expected queue to be a BullMQ queue name, which cannot contain ":" .*got "a:b"/],
      ["a name of 1 MB", () => Job.make({ name: "x".repeat(1_000_000), fetch: () => Effect.void }), /Job\.make: expected a name of at most 200 UTF-8 bytes .* got one of 1000000/],
      ["a name of 201 UTF-8 bytes in 67 characters", () => Job.make({ name: "é".repeat(100) + "x", fetch: () => Effect.void }), /at most 200 UTF-8 bytes .* got one of 201/],
      ["a name with a lone surrogate", () => Job.make({ name: "a\uD800", fetch: () => Effect.void }), /Job\.make: expected a name without lone surrogates/],
      ["a memory queue of a billion fibers", () => RefreshQueue.layerMemory({ concurrency: 1e9 }), /expected concurrency to be a positive integer of at most 10,000, got 1000000000/],
      ["a tag capacity of zero", () => CacheStore.layerMemory({ capacity: 10, tagCapacity: 0 }), /CacheStore\.layerMemory: expected tagCapacity to be a positive integer, got 0/],
      ["a key-value store timeout beyond a timer", () => CacheStore.layerKeyValueStore({ timeout: "30 days" }), /CacheStore\.layerKeyValueStore timeout: .*the longest a timer can wait/],
      [
        "withSyncOnMiss after withProcessResult",
        () => Job.withSyncOnMiss(Job.withProcessResult(job, (n) => n + 1) as never, false),
        /Job\.withSyncOnMiss: job "bad" already has withProcessResult/
      ]
    ]
    for (const [name, build, message] of cases) {
      it(name, () => expect(build).toThrow(message))
    }
  })

  it("a per-input duration that turns out negative is a defect naming the combinator", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "perInputBad", fetch: (_: string) => Effect.succeed(1) }).pipe(
        Job.withExpiry(() => -1)
      )
      const defect = yield* Job.get(job, "x").pipe(Effect.catchAllDefect((defect) => Effect.succeed(String(defect))))
      expect(defect).toMatch(/Job\.withExpiry: the function's result: expected a finite, non-negative duration/)
    }).pipe(Effect.provide(testLayer), Effect.runPromise))

  it("result types tell the truth", () => {
    const sync = Job.make({ name: "types", fetch: (_: string) => Effect.succeed(1) })
    expectTypeOf(Job.get(sync, "x")).toEqualTypeOf<
      Effect.Effect<number, KeyError | FetchTimeout, CacheStore.CacheStore | RefreshQueue.RefreshQueue>
    >()
    const async = sync.pipe(Job.withSyncOnMiss(false))
    expectTypeOf(Job.get(async, "x")).toEqualTypeOf<
      Effect.Effect<number | undefined, KeyError | FetchTimeout, CacheStore.CacheStore | RefreshQueue.RefreshQueue>
    >()
    // withSyncOnMiss's three results, data last and data first: `true` keeps `A`; `false` or
    // a predicate gives `A | Z`; a `boolean` known only at run time gives `A | Z` too.
    type Get<Out> = Effect.Effect<Out, KeyError | FetchTimeout, CacheStore.CacheStore | RefreshQueue.RefreshQueue>
    const onMiss: boolean = Math.random() < 2
    const results = {
      trueLast: sync.pipe(Job.withSyncOnMiss(true)),
      trueFirst: Job.withSyncOnMiss(sync, true),
      falseLast: sync.pipe(Job.withSyncOnMiss(false)),
      falseFirst: Job.withSyncOnMiss(sync, false),
      predicateLast: sync.pipe(Job.withSyncOnMiss((input: string) => input === "sync")),
      predicateFirst: Job.withSyncOnMiss(sync, (input) => input === "sync"),
      booleanLast: sync.pipe(Job.withSyncOnMiss(onMiss)),
      booleanFirst: Job.withSyncOnMiss(sync, onMiss)
    }
    expectTypeOf(Job.get(results.trueLast, "x")).toEqualTypeOf<Get<number>>()
    expectTypeOf(Job.get(results.trueFirst, "x")).toEqualTypeOf<Get<number>>()
    expectTypeOf(Job.get(results.falseLast, "x")).toEqualTypeOf<Get<number | undefined>>()
    expectTypeOf(Job.get(results.falseFirst, "x")).toEqualTypeOf<Get<number | undefined>>()
    expectTypeOf(Job.get(results.predicateLast, "x")).toEqualTypeOf<Get<number | undefined>>()
    expectTypeOf(Job.get(results.predicateFirst, "x")).toEqualTypeOf<Get<number | undefined>>()
    expectTypeOf(Job.get(results.booleanLast, "x")).toEqualTypeOf<Get<number | undefined>>()
    expectTypeOf(Job.get(results.booleanFirst, "x")).toEqualTypeOf<Get<number | undefined>>()
    expectTypeOf(async.pipe(Job.withSyncOnMiss(true))).toEqualTypeOf<Job.Job<string, number, never, never, number, undefined, false>>()
    const emptyAfter = sync.pipe(Job.withSyncOnMiss(false), Job.withEmpty(() => [] as Array<string>))
    const emptyBefore = sync.pipe(Job.withEmpty(() => [] as Array<string>), Job.withSyncOnMiss(false))
    expectTypeOf(Job.get(emptyAfter, "x")).toEqualTypeOf(Job.get(emptyBefore, "x"))
    expectTypeOf(Job.get(emptyAfter, "x"))
      .toEqualTypeOf<Effect.Effect<number | Array<string>, KeyError | FetchTimeout, CacheStore.CacheStore | RefreshQueue.RefreshQueue>>()
    const emptyOnSync = sync.pipe(Job.withEmpty(() => "none" as const))
    expectTypeOf(Job.get(emptyOnSync, "x"))
      .toEqualTypeOf<Effect.Effect<number, KeyError | FetchTimeout, CacheStore.CacheStore | RefreshQueue.RefreshQueue>>()
    expectTypeOf(Job.get(emptyOnSync, "x")).toEqualTypeOf(Job.get(sync, "x"))
    const processed = async.pipe(Job.withProcessResult((value, { status }) => `${value ?? "none"}:${status}`))
    expectTypeOf(Job.get(processed, "x")).toEqualTypeOf<
      Effect.Effect<string, KeyError | FetchTimeout, CacheStore.CacheStore | RefreshQueue.RefreshQueue>
    >()
    expectTypeOf(Job.lookup(processed, "x")).toEqualTypeOf<
      Effect.Effect<Job.Lookup<number | undefined, FetchTimeout>, KeyError | FetchTimeout, CacheStore.CacheStore | RefreshQueue.RefreshQueue>
    >()
    class Other extends Context.Tag("Other")<Other, CacheStore.Service>() {}
    expectTypeOf(Job.rawGet(sync.pipe(Job.withStore(Other)), "x")).toEqualTypeOf<
      Effect.Effect<Option.Option<Entry.Entry<number>>, KeyError | import("effect-cacheback").StoreError, Other>
    >()
    // @ts-expect-error a job of strings does not take a number
    Job.get(sync, 1)
    // @ts-expect-error a schema of strings cannot encode the numbers this job fetches
    sync.pipe(Job.withSchema({ value: Schema.String }))
    // @ts-expect-error the input schema must accept the job's input
    sync.pipe(Job.withSchema({ input: Schema.Number }))
    sync.pipe(Job.withSchema({ input: Schema.String, value: Schema.Number }))
    const arrays = Job.make({ name: "arrays", fetch: (_: string) => Effect.succeed(["a"]) })
    arrays.pipe(Job.withSchema({ value: Schema.Array(Schema.String) }))
    expect(() =>
      // @ts-expect-error withSyncOnMiss must come before withProcessResult
      processed.pipe(Job.withSyncOnMiss(false))
    ).toThrow(/withProcessResult/)
  })
})

describe("the cacheback lifecycle under TestClock", () => {
  // cacheback's parity case: lifetime 600 s, fetch_on_stale_threshold 900 s.
  const parity = (fetch: (input: string) => Effect.Effect<string>) =>
    Job.make({ name: "lifecycle", fetch }).pipe(
      Job.withLifetime("600 seconds"),
      Job.withStaleRefresh({ syncAfter: "900 seconds" })
    )

  it.scoped("miss with a synchronous fetch: fetched, stored fresh for the lifetime, nothing queued", () =>
    Effect.gen(function*() {
      const f = counting()
      const job = Job.make({ name: "lifecycle", fetch: f.fetch })
      yield* TestClock.setTime(1_000)
      expect(yield* Job.lookup(job, "alan")).toEqual({ value: "alan#1", status: "miss", syncFetch: true })
      expect(yield* raw(job, "alan")).toEqual(written(Entry.value("alan#1", 1_000, 601_000)))
      expect(yield* pendingKeys).toEqual([])
    }).pipe(Effect.provide(testLayer)))

  it.scoped("miss with the empty value, then a drained refresh fills it", () =>
    Effect.gen(function*() {
      const f = counting()
      const job = Job.make({ name: "lifecycle", fetch: f.fetch }).pipe(
        Job.withSyncOnMiss(false),
        Job.withEmpty(() => "nothing yet")
      )
      expect(yield* Job.lookup(job, "alan")).toEqual({ value: "nothing yet", status: "miss", syncFetch: false })
      expect(yield* raw(job, "alan")).toEqual(Entry.pending(60_000))
      expect(yield* Job.lookup(job, "alan")).toEqual({ value: "nothing yet", status: "miss", syncFetch: false })
      expect(yield* pendingKeys).toEqual(["alan"])
      expect(f.calls()).toBe(0)
      expect(yield* TestRefreshQueue.drain).toBe(1)
      expect(yield* Job.lookup(job, "alan")).toEqual({ value: "alan#1", status: "hit", syncFetch: undefined })
    }).pipe(Effect.provide(testLayer)))

  it.scoped("a pending marker enqueues again once it expires (its refresh failed)", () =>
    Effect.gen(function*() {
      const job = Job.make({
        name: "pendingAgain",
        fetch: (_: string): Effect.Effect<string, string> => Effect.fail("upstream down")
      }).pipe(
        Job.withSyncOnMiss(false),
        Job.withQueueOptions({ attempts: 1 })
      )
      const enqueued = Job.metrics(job).enqueued
      yield* Job.get(job, "alan")
      expect(yield* raw(job, "alan")).toEqual(Entry.pending(60_000))
      expect(yield* TestRefreshQueue.drain).toBe(1)
      yield* TestClock.adjust("60 seconds")
      expect(yield* Job.get(job, "alan")).toBeUndefined()
      expect(yield* pendingKeys).toEqual([])
      yield* TestClock.adjust("1 millis")
      expect(yield* Job.get(job, "alan")).toBeUndefined()
      expect(yield* raw(job, "alan")).toEqual(Entry.pending(120_001))
      expect(yield* pendingKeys).toEqual(["alan"])
      expect(yield* count(enqueued)).toBe(2)
    }).pipe(Effect.provide(testLayer)))

  it.scoped("hit: the stored value, no fetch, nothing queued", () =>
    Effect.gen(function*() {
      const f = counting()
      const job = Job.make({ name: "lifecycle", fetch: f.fetch })
      yield* Job.get(job, "alan")
      yield* TestClock.adjust("10 minutes")
      expect(yield* Job.lookup(job, "alan")).toEqual({ value: "alan#1", status: "hit", syncFetch: undefined })
      expect(f.calls()).toBe(1)
      expect(yield* pendingKeys).toEqual([])
    }).pipe(Effect.provide(testLayer)))

  it.scoped("stale within the sync threshold: the stale value at once, one refresh queued, then the new value", () =>
    Effect.gen(function*() {
      const f = counting()
      const job = parity(f.fetch)
      yield* Job.get(job, "alan")
      yield* TestClock.setTime(840_000)
      expect(yield* Job.lookup(job, "alan")).toEqual({ value: "alan#1", status: "stale", syncFetch: false })
      expect(yield* raw(job, "alan")).toEqual(written(Entry.value("alan#1", 0, 900_000)))
      expect(yield* pendingKeys).toEqual(["alan"])
      expect(f.calls()).toBe(1)
      yield* TestRefreshQueue.drain
      expect(yield* Job.lookup(job, "alan")).toEqual({ value: "alan#2", status: "hit", syncFetch: undefined })
    }).pipe(Effect.provide(testLayer)))

  it.scoped("stale beyond the sync threshold: fetched while the caller waits", () =>
    Effect.gen(function*() {
      const f = counting()
      const job = parity(f.fetch)
      yield* Job.get(job, "alan")
      yield* TestClock.setTime(960_000)
      expect(yield* Job.lookup(job, "alan")).toEqual({ value: "alan#2", status: "stale", syncFetch: true })
      expect(yield* raw(job, "alan")).toEqual(written(Entry.value("alan#2", 960_000, 1_560_000)))
      expect(yield* pendingKeys).toEqual([])
    }).pipe(Effect.provide(testLayer)))

  it.scoped("repeated stale reads within the refresh timeout queue one refresh", () =>
    Effect.gen(function*() {
      const f = counting()
      const job = Job.make({ name: "staleRepeated", fetch: f.fetch })
      yield* Job.get(job, "alan")
      yield* TestClock.setTime(600_001)
      const statuses: Array<string> = []
      for (let i = 0; i < 10; i++) {
        statuses.push((yield* Job.lookup(job, "alan")).status)
        yield* TestClock.adjust("5 seconds")
      }
      expect(statuses).toEqual(["stale", ...Array(9).fill("hit")])
      expect(yield* pendingKeys).toEqual(["alan"])
      expect(yield* count(Job.metrics(job).enqueued)).toBe(1)
      expect(yield* count(Job.metrics(job).deduplicated)).toBe(0)
      expect(f.calls()).toBe(1)
    }).pipe(Effect.provide(testLayer)))

  it.scoped("stale reads after the refresh timeout queue again (the first refresh never ran)", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "staleAgain", fetch: counting().fetch })
      yield* Job.get(job, "alan")
      yield* TestClock.setTime(600_001)
      yield* Job.get(job, "alan")
      expect(yield* pendingKeys).toEqual(["alan"])
      yield* TestClock.adjust("61 seconds")
      expect((yield* Job.lookup(job, "alan")).status).toBe("stale")
      expect(yield* raw(job, "alan")).toEqual(written(Entry.value("alan#1", 0, 721_001)))
      // Asked twice; the test queue collapsed the second into the waiting first.
      expect(yield* count(Job.metrics(job).enqueued)).toBe(1)
      expect(yield* count(Job.metrics(job).deduplicated)).toBe(1)
    }).pipe(Effect.provide(testLayer)))

  it.scoped("invalidate on a miss does nothing", () =>
    Effect.gen(function*() {
      const f = counting()
      const job = Job.make({ name: "lifecycle", fetch: f.fetch })
      yield* Job.invalidate(job, "alan")
      expect(yield* raw(job, "alan")).toBeNull()
      expect(yield* pendingKeys).toEqual([])
      expect(f.calls()).toBe(0)
    }).pipe(Effect.provide(testLayer)))

  it.scoped("invalidate on a hit keeps the value until now + refresh timeout and queues one refresh", () =>
    Effect.gen(function*() {
      const f = counting()
      const job = Job.make({ name: "invalidateHit", fetch: f.fetch }).pipe(Job.withRefreshTimeout("30 seconds"))
      yield* Job.get(job, "alan")
      yield* TestClock.setTime(5_000)
      yield* Job.invalidate(job, "alan")
      expect(yield* raw(job, "alan")).toEqual(written(Entry.value("alan#1", 0, 35_000)))
      expect(yield* pendingKeys).toEqual(["alan"])
      expect(yield* count(Job.metrics(job).enqueued)).toBe(1)
      yield* Job.invalidate(job, "alan")
      expect(yield* pendingKeys).toEqual(["alan"])
      expect(yield* count(Job.metrics(job).deduplicated)).toBe(1)
      yield* TestRefreshQueue.drain
      expect(yield* Job.get(job, "alan")).toBe("alan#2")
    }).pipe(Effect.provide(testLayer)))

  // Another process (or a worker) stored a value between invalidate's read and its write.
  it.scoped("invalidate does not put back the value it read over one stored meanwhile: it invalidates that one; the refresh is queued still", () =>
    Effect.gen(function*() {
      const f = counting()
      const job = Job.make({ name: "invalidateRace", fetch: f.fetch })
      const inner = yield* CacheStore.makeMemory({ capacity: 10 })
      const newer = Entry.value("alan#other", 2_000, 602_000, job.fingerprint)
      let reads = 0
      const racing = CacheStore.CacheStore.of({
        ...inner,
        get: (key, schema) =>
          Effect.tap(inner.get(key, schema), () => ++reads === 1 ? Effect.orDie(inner.set(key, newer, Duration.days(1), undefined)) : Effect.void)
      })
      const store = Layer.succeed(CacheStore.CacheStore, racing)
      yield* Job.set(job, "alan", "alan#0").pipe(Effect.provide(store))
      yield* TestClock.setTime(5_000)
      yield* Job.invalidate(job, "alan").pipe(Effect.provide(store))
      // The value stored meanwhile may be a fetch begun before the invalidate: it expires
      // within the refresh timeout (60 s) too, rather than staying fresh for its lifetime.
      const after = yield* raw(job, "alan").pipe(Effect.provide(store))
      expect(after).toMatchObject({ _tag: "Value", value: "alan#other", fetchedAt: 2_000, expiresAt: 65_000 })
      expect(yield* pendingKeys).toEqual(["alan"])
    }).pipe(Effect.provide(TestRefreshQueue.layer)))

  it.scoped("a refresh never stores over a value written after its fetch began (another process's)", () =>
    Effect.gen(function*() {
      const f = counting()
      const gate = yield* Deferred.make<void>()
      let gated = false
      const job = Job.make({
        name: "refreshRace",
        fetch: (input: string) => gated ? Effect.zipRight(Deferred.await(gate), f.fetch(input)) : f.fetch(input)
      })
      yield* Job.get(job, "alan")
      yield* TestClock.setTime(600_001)
      expect(yield* Job.lookup(job, "alan")).toEqual({ value: "alan#1", status: "stale", syncFetch: false })
      gated = true
      const refresh = yield* Effect.fork(TestRefreshQueue.drain)
      yield* Effect.yieldNow()
      // Written by another process while the refresh fetches, with a token of its own.
      const later = Entry.value("alan#later", 600_500, 1_200_500, job.fingerprint, "another")
      const store = yield* CacheStore.CacheStore
      yield* store.set(Either.getOrThrow(job.key("alan")), later, Duration.days(1), undefined)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(refresh)
      expect(f.calls()).toBe(2)
      expect(yield* raw(job, "alan")).toEqual(later)
      expect(yield* count(Job.metrics(job).refreshFailures)).toBe(0)
    }).pipe(Effect.provide(testLayer)))

  it.scoped("delete removes the entry: the next read is a miss", () =>
    Effect.gen(function*() {
      const f = counting()
      const job = Job.make({ name: "lifecycle", fetch: f.fetch })
      yield* Job.get(job, "alan")
      yield* Job.delete(job, "alan")
      expect(yield* raw(job, "alan")).toBeNull()
      expect(yield* Job.lookup(job, "alan")).toEqual({ value: "alan#2", status: "miss", syncFetch: true })
    }).pipe(Effect.provide(testLayer)))

  it.scoped("set stores a value with the normal expiry; reads are hits", () =>
    Effect.gen(function*() {
      const f = counting()
      const job = Job.make({ name: "lifecycle", fetch: f.fetch }).pipe(Job.withLifetime("2 minutes"))
      yield* TestClock.setTime(7_000)
      yield* Job.set(job, "alan", "given")
      expect(yield* raw(job, "alan")).toEqual(written(Entry.value("given", 7_000, 127_000)))
      expect(yield* Job.lookup(job, "alan")).toEqual({ value: "given", status: "hit", syncFetch: undefined })
      expect(f.calls()).toBe(0)
    }).pipe(Effect.provide(testLayer)))

  it.scoped("rawGet never triggers a refresh, even on a stale entry", () =>
    Effect.gen(function*() {
      const f = counting()
      const job = Job.make({ name: "lifecycle", fetch: f.fetch })
      yield* Job.get(job, "alan")
      yield* TestClock.setTime(3_600_000)
      expect(yield* raw(job, "alan")).toEqual(written(Entry.value("alan#1", 0, 600_000)))
      expect(yield* pendingKeys).toEqual([])
      expect(f.calls()).toBe(1)
    }).pipe(Effect.provide(testLayer)))
})

describe("the other combinators", () => {
  it.scoped("withKey: the key is name: and the function's result; two jobs never share an entry", () =>
    Effect.gen(function*() {
      const a = Job.make({ name: "a", fetch: (user: { id: number; name: string }) => Effect.succeed(`a:${user.name}`) })
        .pipe(Job.withKey((user) => String(user.id)))
      const b = Job.make({ name: "b", fetch: (user: { id: number; name: string }) => Effect.succeed(`b:${user.name}`) })
        .pipe(Job.withKey((user) => String(user.id)))
      expect(a.key({ id: 7, name: "x" })).toEqual(expect.objectContaining({ right: "a:7" }))
      yield* Job.get(a, { id: 7, name: "alan" })
      expect(yield* Job.get(a, { id: 7, name: "renamed" })).toBe("a:alan")
      expect(yield* Job.get(b, { id: 7, name: "alan" })).toBe("b:alan")
    }).pipe(Effect.provide(testLayer)))

  it.scoped("two jobs never share a key, even when one's name looks like another's key", () =>
    Effect.gen(function*() {
      const section = Job.make({ name: "user", fetch: (name: string) => Effect.succeed(`section ${name}`) }).pipe(
        Job.withKey((name) => name)
      )
      const settings = Job.make({ name: "user:settings", fetch: () => Effect.succeed("theme: dark") })
      expect(yield* Job.get(section, "settings")).toBe("section settings")
      expect(yield* Job.get(settings)).toBe("theme: dark")
      expect(section.key("settings")).not.toEqual(settings.key(undefined))
    }).pipe(Effect.provide(testLayer)))

  it.scoped("a withKey function that returns no string is a KeyError", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "badKey", fetch: (_: string) => Effect.succeed(1) }).pipe(
        Job.withKey(() => undefined as unknown as string)
      )
      expect(yield* Effect.flip(Job.get(job, "x"))).toMatchObject({
        _tag: "KeyError",
        reason: "the withKey function returned undefined, not a string"
      })
    }).pipe(Effect.provide(testLayer)))

  it.scoped("withKey keys inputs that have no canonical encoding", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "fn", fetch: (f: () => number) => Effect.sync(f) })
      expect((yield* Effect.flip(Job.get(job, () => 1)))._tag).toBe("KeyError")
      expect(yield* Job.get(job.pipe(Job.withKey(() => "one")), () => 1)).toBe(1)
    }).pipe(Effect.provide(testLayer)))

  it.scoped("withExpiry: a lifetime per input", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "expiry", fetch: counting().fetch }).pipe(
        Job.withExpiry((input: string) => input === "short" ? "1 minute" : "1 hour")
      )
      yield* Job.get(job, "short")
      yield* Job.get(job, "long")
      expect((yield* raw(job, "short"))!.expiresAt).toBe(60_000)
      expect((yield* raw(job, "long"))!.expiresAt).toBe(3_600_000)
    }).pipe(Effect.provide(testLayer)))

  it.scoped("withRefreshTimeout as a function of the input", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "timeout", fetch: counting().fetch }).pipe(
        Job.withSyncOnMiss(false),
        Job.withRefreshTimeout((input: string) => input.length * 1_000)
      )
      yield* Job.get(job, "abc")
      expect(yield* raw(job, "abc")).toEqual(Entry.pending(3_000))
    }).pipe(Effect.provide(testLayer)))

  it.scoped("withCacheTtl: after it the backend forgets the entry, even a fresh one: a real miss", () =>
    Effect.gen(function*() {
      const f = counting()
      const job = Job.make({ name: "ttl", fetch: f.fetch }).pipe(Job.withLifetime("1 hour"), Job.withCacheTtl("5 minutes"))
      yield* Job.get(job, "alan")
      yield* TestClock.adjust("4 minutes")
      expect((yield* Job.lookup(job, "alan")).status).toBe("hit")
      yield* TestClock.adjust("2 minutes")
      expect(yield* raw(job, "alan")).toBeNull()
      expect(yield* Job.lookup(job, "alan")).toEqual({ value: "alan#2", status: "miss", syncFetch: true })
    }).pipe(Effect.provide(testLayer)))

  it.scoped("withSyncOnMiss(predicate): asked per input", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "predicate", fetch: counting().fetch }).pipe(
        Job.withSyncOnMiss((input: string) => input.startsWith("vip"))
      )
      expect((yield* Job.lookup(job, "vip-1")).syncFetch).toBe(true)
      expect(yield* Job.lookup(job, "guest")).toEqual({ value: undefined, status: "miss", syncFetch: false })
      const back = job.pipe(Job.withSyncOnMiss(true))
      expect((yield* Job.lookup(back, "guest-2")).syncFetch).toBe(true)
    }).pipe(Effect.provide(testLayer)))

  it.scoped("withEmpty is told the input", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "empty", fetch: counting().fetch }).pipe(
        Job.withSyncOnMiss(false),
        Job.withEmpty((input: string) => `no ${input} yet`)
      )
      expect(yield* Job.get(job, "alan")).toBe("no alan yet")
    }).pipe(Effect.provide(testLayer)))

  it.scoped("withStaleRefresh(predicate): fetches a stale value when the predicate says so", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "stalePredicate", fetch: counting().fetch }).pipe(
        Job.withStaleRefresh(({ staleFor }, input: string) => input === "strict" || staleFor > 60_000)
      )
      yield* Job.get(job, "strict")
      yield* Job.get(job, "lax")
      yield* TestClock.setTime(600_001)
      expect(yield* Job.lookup(job, "strict")).toEqual({ value: "strict#3", status: "stale", syncFetch: true })
      expect(yield* Job.lookup(job, "lax")).toEqual({ value: "lax#2", status: "stale", syncFetch: false })
    }).pipe(Effect.provide(testLayer)))

  it.scoped("withProcessResult: told input, status and syncFetch; applied twice, composed", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "processed", fetch: counting().fetch }).pipe(
        Job.withProcessResult((value, context) => ({ value, ...context })),
        Job.withProcessResult((result) => `${result.value}/${result.status}/${result.syncFetch}/${result.input}`)
      )
      expect(yield* Job.get(job, "alan")).toBe("alan#1/miss/true/alan")
      expect(yield* Job.get(job, "alan")).toBe("alan#1/hit/undefined/alan")
    }).pipe(Effect.provide(testLayer)))

  it.scoped("withSchema: an input schema keys class instances by their encoding", () =>
    Effect.gen(function*() {
      class UserId extends Schema.Class<UserId>("UserId")({ id: Schema.Number }) {}
      const f = counting()
      const job = Job.make({ name: "schema", fetch: (user: UserId) => f.fetch(String(user.id)) }).pipe(
        Job.withSchema({ input: UserId, value: Schema.String })
      )
      expect(yield* Job.get(job, new UserId({ id: 1 }))).toBe("1#1")
      expect(yield* Job.get(job, new UserId({ id: 1 }))).toBe("1#1")
      expect(f.calls()).toBe(1)
      expect(job.valueSchema).toBe(Schema.String)
    }).pipe(Effect.provide(testLayer)))

  it.scoped("withStore: reads and writes another CacheStore service", () =>
    Effect.gen(function*() {
      class Sessions extends Context.Tag("Sessions")<Sessions, CacheStore.Service>() {}
      const job = Job.make({ name: "sessions", fetch: counting().fetch }).pipe(Job.withStore(Sessions))
      const sessions = yield* CacheStore.makeMemory({ capacity: 10 })
      yield* Job.get(job, "alan").pipe(Effect.provideService(Sessions, sessions))
      expect(Option.isSome(yield* sessions.get(Option.getOrThrow(Option.getRight(job.key("alan"))), undefined))).toBe(true)
      const main = yield* CacheStore.CacheStore
      expect(Option.isNone(yield* main.get(Option.getOrThrow(Option.getRight(job.key("alan"))), undefined))).toBe(true)
    }).pipe(Effect.provide(testLayer)))

  it.scoped("withQueueOptions: attempts and backoff drive the retries of a background refresh", () =>
    Effect.gen(function*() {
      let calls = 0
      const job = Job.make({
        name: "retries",
        fetch: (_: string) => Effect.suspend(() => ++calls === 1 ? Effect.succeed(0) : Effect.fail("down"))
      }).pipe(Job.withQueueOptions({ attempts: 3, backoff: { type: "fixed", delay: "10 seconds" } }))
      yield* Job.get(job, "x")
      yield* TestClock.setTime(600_001)
      yield* Job.get(job, "x")
      const drained = yield* Effect.fork(TestRefreshQueue.drain)
      yield* TestClock.adjust("10 seconds")
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(drained)
      expect(calls).toBe(4)
      expect(job.queueOptions).toEqual({ attempts: 3, backoff: { type: "fixed", delay: 10_000 }, queue: undefined, priority: undefined })
    }).pipe(Effect.provide(testLayer)))
})

describe("the operations", () => {
  it.scoped("refresh fetches now, even on a hit, and stores", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "ops", fetch: counting().fetch })
      yield* Job.get(job, "alan")
      expect(yield* Job.refresh(job, "alan")).toBe("alan#2")
      expect(yield* Job.get(job, "alan")).toBe("alan#2")
    }).pipe(Effect.provide(testLayer)))

  it.scoped("asyncRefresh enqueues; the refresh stores when it runs", () =>
    Effect.gen(function*() {
      const f = counting()
      const job = Job.make({ name: "ops", fetch: f.fetch })
      yield* Job.asyncRefresh(job, "alan")
      expect(f.calls()).toBe(0)
      expect(yield* pendingKeys).toEqual(["alan"])
      yield* TestRefreshQueue.drain
      expect(yield* raw(job, "alan")).toEqual(written(Entry.value("alan#1", 0, 600_000)))
    }).pipe(Effect.provide(testLayer)))

  it.scoped("a void job is read without an input and keyed by its name", () =>
    Effect.gen(function*() {
      let calls = 0
      const job = Job.make({ name: "config", fetch: () => Effect.sync(() => ++calls) })
      expect(yield* Job.get(job)).toBe(1)
      expect(yield* Job.get(job)).toBe(1)
      const store = yield* CacheStore.CacheStore
      expect(Option.isSome(yield* store.get("config", undefined))).toBe(true)
    }).pipe(Effect.provide(testLayer)))

  it.scoped("getMany: values in order, one store read for all, misses fetched", () =>
    Effect.gen(function*() {
      const f = counting()
      const job = Job.make({ name: "many", fetch: f.fetch })
      yield* Job.get(job, "b")
      expect(yield* Job.getMany(job, ["a", "b", "c", "a"])).toEqual(["a#2", "b#1", "c#3", "a#2"])
      expect(f.calls()).toBe(3)
      expect(yield* Job.getMany(job, [])).toEqual([])
    }).pipe(Effect.provide(testLayer)))

  it.scoped("getMany applies withProcessResult once to every value, hits, misses and stale ones alike, as get does", () =>
    Effect.gen(function*() {
      const f = counting()
      const job = Job.make({ name: "manyProcessed", fetch: f.fetch }).pipe(
        Job.withProcessResult((value, { status, syncFetch }) => `${value}/${status}/${syncFetch}`)
      )
      yield* Job.get(job, "hit")
      yield* Job.get(job, "old")
      yield* TestClock.adjust("5 minutes")
      yield* Job.get(job, "hit") // not stale yet: both were fetched at 0
      yield* TestClock.adjust("6 minutes") // both stale now
      yield* Job.refresh(job, "hit") // fresh again
      const values = yield* Job.getMany(job, ["hit", "old", "new"])
      expect(values).toEqual(["hit#3/hit/undefined", "old#2/stale/false", "new#4/miss/true"])
      // The same answers as get, for the same states.
      expect(yield* Job.get(job, "hit")).toBe("hit#3/hit/undefined")
      expect(yield* TestRefreshQueue.pending).toHaveLength(1)
    }).pipe(Effect.provide(testLayer)))

  it.scoped("getMany fails with KeyError before reading anything when one input cannot be keyed", () =>
    Effect.gen(function*() {
      const f = counting()
      const job = Job.make({ name: "many", fetch: f.fetch as (input: unknown) => Effect.Effect<string> })
      const error = yield* Effect.flip(Job.getMany(job, ["a", Symbol("b")]))
      expect(error).toMatchObject({ _tag: "KeyError", path: "$" })
      expect(f.calls()).toBe(0)
    }).pipe(Effect.provide(testLayer)))

  it.scoped("a fetch error of a synchronous fetch is the caller's, and is never cached", () =>
    Effect.gen(function*() {
      let fail = true
      const job = Job.make({
        name: "fails",
        fetch: (_: string) => Effect.suspend(() => fail ? Effect.fail({ _tag: "HttpError" as const }) : Effect.succeed(1))
      })
      expect(yield* Effect.flip(Job.get(job, "x"))).toEqual({ _tag: "HttpError" })
      expect(yield* raw(job, "x")).toBeNull()
      fail = false
      expect(yield* Job.get(job, "x")).toBe(1)
    }).pipe(Effect.provide(testLayer)))

  it.scoped("Job.cached is the decorator: a function with get's behaviour and its .job", () =>
    Effect.gen(function*() {
      const f = counting()
      const tweets = Job.cached("tweets", f.fetch, { lifetime: "1 minute" })
      expect(yield* tweets("alan")).toBe("alan#1")
      expect(yield* tweets("alan")).toBe("alan#1")
      expect(Duration.toMillis(tweets.job.expiry("alan"))).toBe(60_000)
      const lazy = Job.cached("lazyTweets", f.fetch, { syncOnMiss: false })
      expectTypeOf(lazy).returns.toEqualTypeOf<
        Effect.Effect<string | undefined, KeyError | FetchTimeout, CacheStore.CacheStore | RefreshQueue.RefreshQueue>
      >()
      expect(yield* lazy("bob")).toBeUndefined()
      const maybe = Job.cached("maybeTweets", f.fetch, { syncOnMiss: Math.random() < 2 })
      expectTypeOf(maybe).returns.toEqualTypeOf<
        Effect.Effect<string | undefined, KeyError | FetchTimeout, CacheStore.CacheStore | RefreshQueue.RefreshQueue>
      >()
      const fromJob = Job.cached(tweets.job)
      expect(yield* fromJob("alan")).toBe("alan#1")
    }).pipe(Effect.provide(testLayer)))
})

describe("single flight", () => {
  it.scoped("concurrent synchronous fetches of one key share one fetch", () =>
    Effect.gen(function*() {
      let calls = 0
      const job = Job.make({
        name: "flight",
        fetch: (input: string) => Effect.zipRight(Effect.sleep("1 second"), Effect.sync(() => `${input}#${++calls}`))
      })
      const readers = yield* Effect.fork(Effect.all(Array.from({ length: 1_000 }, () => Job.get(job, "k")), {
        concurrency: "unbounded"
      }))
      yield* TestClock.adjust("1 second")
      const values = yield* Fiber.join(readers)
      expect(calls).toBe(1)
      expect(new Set(values)).toEqual(new Set(["k#1"]))
    }).pipe(Effect.provide(testLayer)))

  it.scoped("a caller that gives up leaves the shared fetch to finish and store", () =>
    Effect.gen(function*() {
      const started = yield* Deferred.make<void>()
      const job = Job.make({
        name: "flightInterrupted",
        fetch: (_: string) => Effect.zipRight(Deferred.succeed(started, undefined), Effect.as(Effect.sleep("1 second"), "v"))
      })
      const first = yield* Effect.fork(Job.get(job, "k"))
      yield* Deferred.await(started)
      const second = yield* Effect.fork(Job.get(job, "k"))
      yield* Fiber.interrupt(first)
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(second)).toBe("v")
      expect(yield* raw(job, "k")).toMatchObject({ value: "v" })
    }).pipe(Effect.provide(testLayer)))

  it.live("a reader interrupted at any step never leaves its key waiting on a fetch that never runs", () =>
    Effect.gen(function*() {
      let fetches = 0
      const job = Job.make({ name: "flightWedge", fetch: (_: string) => Effect.sync(() => ++fetches) })
      for (const ops of [10, 11, 12, 13, 16]) {
        for (let steps = 0; steps < 30; steps++) {
          const key = `k${ops}-${steps}`
          const reader = yield* Effect.fork(Job.get(job, key).pipe(Effect.withMaxOpsBeforeYield(ops)))
          for (let i = 0; i < steps; i++) yield* Effect.yieldNow()
          yield* Fiber.interrupt(reader)
          const again = yield* Job.get(job, key).pipe(Effect.timeout("2 seconds"), Effect.option)
          expect(Option.isSome(again), key).toBe(true)
        }
      }
    }).pipe(Effect.provide(testLayer)))

  it.scoped("a shared fetch counts as one synchronous fetch", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "flightCounted", fetch: (_: string) => Effect.as(Effect.sleep("1 second"), 1) })
      const readers = yield* Effect.fork(Effect.all(Array.from({ length: 50 }, () => Job.get(job, "k")), { concurrency: "unbounded" }))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(readers)
      expect(yield* count(Job.metrics(job).syncFetches)).toBe(1)
      expect(yield* count(Job.metrics(job).misses)).toBe(50)
    }).pipe(Effect.provide(testLayer)))

  it.scoped("two stores never share a flight", () =>
    Effect.gen(function*() {
      let calls = 0
      const job = Job.make({
        name: "flightStores",
        fetch: (_: string) => Effect.zipRight(Effect.sleep("1 second"), Effect.sync(() => ++calls))
      })
      const one = yield* CacheStore.makeMemory({ capacity: 10 })
      const two = yield* CacheStore.makeMemory({ capacity: 10 })
      const both = yield* Effect.fork(Effect.all([
        Job.get(job, "k").pipe(Effect.provideService(CacheStore.CacheStore, one)),
        Job.get(job, "k").pipe(Effect.provideService(CacheStore.CacheStore, two))
      ], { concurrency: "unbounded" }))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(both)
      expect(calls).toBe(2)
    }).pipe(Effect.provide(testLayer)))
})

describe("background refreshes", () => {
  it.scoped("run in a scope of their own, not in the scope of the read that queued them", () =>
    Effect.gen(function*() {
      const events: Array<string> = []
      const connection = Effect.acquireRelease(
        Effect.sync(() => events.push("acquire")),
        () => Effect.sync(() => events.push("release"))
      )
      let open = false
      const job = Job.make({
        name: "scopedFetch",
        fetch: (_: string) =>
          Effect.zipRight(
            Effect.zipRight(connection, Effect.sync(() => (open = true))),
            Effect.sync(() => events.push(events.at(-1) === "acquire" && open ? "query on an open connection" : "query"))
          )
      })
      yield* Effect.scoped(Job.get(job, "k"))
      events.length = 0
      yield* TestClock.setTime(600_001)
      yield* Effect.scoped(Job.get(job, "k")) // the request's scope closes here, before the refresh runs
      yield* TestRefreshQueue.drain
      expect(events).toEqual(["acquire", "query on an open connection", "release"])
    }).pipe(Effect.provide(testLayer)))
})

describe("the memory queue behind Job.get", () => {
  it.scoped("a stale read answers at once while the refresh runs in a background fiber", () =>
    Effect.gen(function*() {
      let calls = 0
      const job = Job.make({
        name: "background",
        fetch: (_: string) => Effect.zipRight(Effect.sleep("1 second"), Effect.sync(() => ++calls))
      })
      const get = Effect.fork(Job.get(job, "k"))
      const first = yield* get
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(first)).toBe(1)
      yield* TestClock.setTime(700_000)
      expect(yield* Job.lookup(job, "k")).toEqual({ value: 1, status: "stale", syncFetch: false })
      yield* TestClock.adjust("1 second")
      yield* Effect.yieldNow()
      expect(yield* Job.lookup(job, "k")).toEqual({ value: 2, status: "hit", syncFetch: undefined })
    }).pipe(Effect.provide(Layer.mergeAll(CacheStore.layerMemory({ capacity: 10 }), RefreshQueue.layerMemory({ concurrency: 2 })))))
})
