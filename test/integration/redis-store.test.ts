/**
 * RedisCacheStore on the real Redis (SPEC §5, issue 3 point 1): entries through the job's
 * value schema, TTL, one MGET for many keys, corrupt entries as misses.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Layer, Metric, Option, Schema } from "effect"
import { CacheStore, Entry, Job, TestRefreshQueue } from "effect-cacheback"
import { RedisCacheStore } from "effect-cacheback/redis"
import { captureLogs, count, counting } from "../support/kit.js"
import { redisUrl, requireService } from "../support/services.js"
import { Profile } from "./fixtures/jobs.js"
import { entryJson } from "./fixtures/entries.js"
import { cleanUp, keyOf, poll, rawClient, redisKey, storedValue, unique } from "./fixtures/redis.js"

const up = await requireService("redis")

/** Waits until a read's write of `input` lands: it follows the read's answer (SPEC §7). */
const isStored = <A>(job: Job.Job<any, A, any, any, any, any, any, any>, input: unknown) =>
  poll("the read's value is stored", 2_000, Effect.map(storedValue(job, input), Option.getOrUndefined))

describe.skipIf(!up)("RedisCacheStore", () => {
  const raw = rawClient()
  const prefixes: Array<string> = []
  const prefix = (label: string) => {
    const name = unique(label)
    prefixes.push(name)
    return name
  }
  afterAll(async () => {
    await cleanUp(raw, prefixes, [])
    raw.disconnect()
  })

  const store = (prefix: string) =>
    Layer.merge(RedisCacheStore.layer({ url: redisUrl, prefix }), TestRefreshQueue.layer)

  it.live("a value schema brings back a Date, an Option and a class instance through another client", () => {
    const at = prefix("schema")
    const job = Job.make({
      name: "profileStore",
      fetch: (name: string) =>
        Effect.succeed(new Profile({ name, joined: new Date("2020-02-29T12:00:00Z"), nickname: Option.none(), by: "test" }))
    }).pipe(Job.withSchema({ input: Schema.String, value: Profile }))
    return Effect.gen(function*() {
      // Written by one layer's client...
      yield* Job.get(job, "ada").pipe(Effect.provide(store(at)))
      // ...read by another's: nothing is shared but Redis.
      const read = yield* Job.lookup(job, "ada").pipe(Effect.provide(store(at)))
      expect(read.status).toBe("hit")
      expect(read.value).toBeInstanceOf(Profile)
      expect(read.value.joined).toBeInstanceOf(Date)
      expect(read.value.joined.toISOString()).toBe("2020-02-29T12:00:00.000Z")
      expect(Option.isNone(read.value.nickname)).toBe(true)
      expect(read.value.greeting).toBe("hello ada, member since 2020")
      // In Redis the entry keeps its shape, with the value in its encoded form.
      const text = yield* Effect.promise(() => raw.get(redisKey(at, job, "ada")))
      expect(entryJson(text)).toMatchObject({
        _tag: "Value",
        value: { name: "ada", joined: "2020-02-29T12:00:00.000Z", nickname: { _tag: "None" } }
      })
    })
  })

  it.live("without a value schema JSON-safe values round-trip; anything else fails at write time, typed", () => {
    const at = prefix("plain")
    const job = Job.make({ name: "plainStore", fetch: (id: number) => Effect.succeed({ id, tags: ["a", "b"], ok: true }) })
    const logs = captureLogs()
    return Effect.gen(function*() {
      yield* Job.get(job, 1)
      yield* isStored(job, 1) // a read's write follows its answer (SPEC §7)
      expect(yield* Job.lookup(job, 1)).toEqual({ value: { id: 1, tags: ["a", "b"], ok: true }, status: "hit", syncFetch: undefined })

      const dated = Job.make({ name: "datedStore", fetch: (_: number) => Effect.succeed({ when: new Date(0) }) })
      const error = yield* Effect.flip(Job.set(dated, 1, { when: new Date(0) }))
      expect(error._tag).toBe("CodecError")
      expect(error.message).toContain("$.when is an instance of Date")
      expect(error.message).toContain("Job.withSchema({ value })")
      // A read whose fetch returns such a value still answers it; the write is logged.
      expect((yield* Job.get(dated, 2)).when).toEqual(new Date(0))
      yield* poll("the write fails", 2_000, Effect.map(count(Job.metrics(dated).storeErrors), (n) => (n === 1 ? n : undefined)))
      expect(logs.lines.some((line) => line.startsWith("WARN") && line.includes("JSON-safe"))).toBe(true)
      expect(yield* Effect.promise(() => raw.exists(redisKey(at, dated, 2)))).toBe(0)
    }).pipe(Effect.provide(Layer.merge(store(at), logs.layer)))
  })

  it.live("Redis forgets an entry after the job's cache TTL", () => {
    const at = prefix("ttl")
    const f = counting()
    const job = Job.make({ name: "ttlStore", fetch: f.fetch }).pipe(Job.withCacheTtl("90 seconds"))
    const brief = Job.make({ name: "briefStore", fetch: f.fetch }).pipe(Job.withCacheTtl("150 millis"))
    return Effect.gen(function*() {
      yield* Job.get(job, "a")
      yield* isStored(job, "a")
      const ttl = yield* Effect.promise(() => raw.pttl(redisKey(at, job, "a")))
      expect(ttl).toBeGreaterThan(80_000)
      expect(ttl).toBeLessThanOrEqual(90_000)

      yield* Job.get(brief, "b")
      yield* isStored(brief, "b")
      expect((yield* Job.lookup(brief, "b")).status).toBe("hit")
      yield* Effect.sleep("300 millis")
      expect(yield* Job.lookup(brief, "b")).toEqual({ value: "b#3", status: "miss", syncFetch: true })
    }).pipe(Effect.provide(store(at)))
  })

  it.live("Job.getMany reads every key with one MGET", () => {
    const at = prefix("mget")
    // Per process: the read of the missing key takes no lock across processes (SPEC §9).
    const job = Job.make({ name: "manyStore", fetch: (n: number) => Effect.succeed(n * 10) }).pipe(Job.withSingleFlight("process"))
    return Effect.gen(function*() {
      yield* Job.set(job, 1, 10)
      yield* Job.set(job, 3, 30)
      const monitor = yield* Effect.acquireRelease(Effect.promise(() => raw.duplicate().monitor()), (m) =>
        Effect.sync(() => m.disconnect()))
      const seen: Array<string> = []
      // Commands a script runs (the fetch's lock, SPEC §9) are not the reads counted here.
      monitor.on("monitor", (_time: string, args: ReadonlyArray<string>, source: string) => {
        if (source !== "lua" && args.slice(1).some((arg) => arg.startsWith(`${at}:`))) seen.push(args[0].toLowerCase())
      })
      expect(yield* Job.getMany(job, [1, 2, 3])).toEqual([10, 20, 30])
      // MONITOR reports commands as Redis runs them; wait until the write of the miss shows.
      yield* Effect.promise(() => raw.ping())
      yield* Effect.sleep("100 millis")
      expect(seen.filter((command) => command === "mget")).toHaveLength(1)
      expect(seen.filter((command) => command === "get")).toHaveLength(0)
      // The fetched value's write is compare-and-set: a script.
      expect(seen.filter((command) => command === "evalsha")).toHaveLength(1)
      expect(yield* Job.getMany(job, [])).toEqual([])
    }).pipe(Effect.scoped, Effect.provide(store(at)))
  })

  it.live("concurrent reads share round trips: 64 readers, one MGET a round; a lone reader, one GET a read", () => {
    const at = prefix("batch")
    const job = Job.make({ name: "batchStore", fetch: (n: number) => Effect.succeed(n) })
    return Effect.gen(function*() {
      yield* Effect.forEach(Array.from({ length: 64 }, (_, i) => i), (i) => Job.set(job, i, i), { discard: true })
      const monitor = yield* Effect.acquireRelease(Effect.promise(() => raw.duplicate().monitor()), (m) =>
        Effect.sync(() => m.disconnect()))
      const seen: Array<{ command: string; keys: number }> = []
      monitor.on("monitor", (_time: string, args: ReadonlyArray<string>) => {
        const keys = args.slice(1).filter((arg) => arg.startsWith(`${at}:`)).length
        if (keys > 0) seen.push({ command: args[0].toLowerCase(), keys })
      })
      // 64 fibers, three reads each: after the first round they read again together.
      const readers = Array.from({ length: 64 }, (_, i) =>
        Effect.forEach([0, 1, 2], () => Job.get(job, i), { discard: true }))
      yield* Effect.all(readers, { concurrency: "unbounded", discard: true })
      yield* Effect.promise(() => raw.ping())
      yield* Effect.sleep("100 millis")
      expect(seen.reduce((keys, command) => keys + command.keys, 0)).toBe(192)
      expect(seen.length).toBeLessThanOrEqual(6)
      seen.length = 0
      for (let i = 0; i < 5; i++) yield* Job.get(job, i)
      yield* Effect.promise(() => raw.ping())
      yield* Effect.sleep("100 millis")
      expect(seen).toEqual(Array.from({ length: 5 }, () => ({ command: "get", keys: 1 })))
    }).pipe(Effect.scoped, Effect.provide(store(at)))
  })

  it.live("an entry that does not decode is a miss, logged and counted, and the fetch overwrites it", () => {
    const at = prefix("corrupt")
    const f = counting()
    const job = Job.make({ name: "corruptStore", fetch: f.fetch }).pipe(Job.withSchema({ value: Schema.String }))
    const decodeErrors = CacheStore.decodeErrors("redis")
    const logs = captureLogs()
    return Effect.gen(function*() {
      const before = (yield* Metric.value(decodeErrors)).count
      const garbage = [
        "not json at all",
        JSON.stringify({ old: "format" }),
        // Another schema: a number where this job's value schema wants a string.
        JSON.stringify({ _tag: "Value", value: 42, fetchedAt: 0, expiresAt: 1 })
      ]
      for (const [i, text] of garbage.entries()) {
        yield* Effect.promise(() => raw.set(redisKey(at, job, `k${i}`), text))
        expect(yield* Job.lookup(job, `k${i}`)).toEqual({ value: `k${i}#${i + 1}`, status: "miss", syncFetch: true })
        yield* isStored(job, `k${i}`)
        const written = entryJson(yield* Effect.promise(() => raw.get(redisKey(at, job, `k${i}`))))
        expect(written).toMatchObject({ _tag: "Value", value: `k${i}#${i + 1}` })
      }
      expect((yield* Metric.value(decodeErrors)).count - before).toBe(3)
      expect(logs.lines.filter((line) => line.includes("does not decode and counts as a miss"))).toHaveLength(3)
      // getMany treats them the same way.
      yield* Effect.promise(() => raw.set(redisKey(at, job, "m"), "{"))
      expect(yield* Job.getMany(job, ["k0", "m"])).toEqual(["k0#1", "m#4"])
    }).pipe(Effect.provide(Layer.merge(store(at), logs.layer)))
  })

  it.live("undefined and null values round-trip (with and without a value schema); undefined is stored without a value field", () => {
    const at = prefix("none")
    return Effect.gen(function*() {
      for (const [label, value, schema] of [
        ["undefined", undefined, undefined],
        ["null", null, undefined],
        ["undefinedSchema", undefined, Schema.Undefined],
        ["nullSchema", null, Schema.NullOr(Schema.Number)]
      ] as const) {
        let fetches = 0
        const base = Job.make({ name: `none-${label}`, fetch: (_: number) => Effect.sync(() => (++fetches, value)) })
        const job = schema === undefined ? base : base.pipe(Job.withSchema({ value: schema as Schema.Schema<typeof value> }))
        expect(yield* Job.get(job, 1)).toBe(value)
        yield* poll("the value is stored", 2_000, Effect.promise(async () => (await raw.exists(redisKey(at, job, 1))) === 1 || undefined))
        expect(yield* Job.lookup(job, 1)).toEqual({ value, status: "hit", syncFetch: undefined })
        expect(fetches).toBe(1)
        const text = entryJson(yield* Effect.promise(() => raw.get(redisKey(at, job, 1))))
        expect("value" in text).toBe(value !== undefined)
      }
    }).pipe(Effect.provide(store(at)))
  })

  it.live("an entry written before fingerprints (0.1) is a miss for a job with a value schema, never a hit of an old shape", () => {
    const at = prefix("legacy")
    const job = Job.make({ name: "legacyPeople", fetch: (_: string) => Effect.succeed({ name: "new", age: 3 }) }).pipe(
      Job.withSchema({ value: Schema.Struct({ name: Schema.String, age: Schema.Number }) })
    )
    const sameShape = Job.make({ name: "legacyNames", fetch: (_: string) => Effect.succeed({ name: "new" }) }).pipe(
      Job.withSchema({ value: Schema.Struct({ name: Schema.String }) })
    )
    const legacy = JSON.stringify({ _tag: "Value", value: { name: "old" }, fetchedAt: Date.now(), expiresAt: Date.now() + 600_000 })
    return Effect.gen(function*() {
      yield* Effect.promise(() => raw.set(redisKey(at, job, "k"), legacy))
      yield* Effect.promise(() => raw.set(redisKey(at, sameShape, "k"), legacy))
      expect(yield* Job.lookup(job, "k")).toEqual({ value: { name: "new", age: 3 }, status: "miss", syncFetch: true })
      // Even where the old value decodes, it carries no fingerprint: a miss, counted.
      expect(yield* Job.lookup(sameShape, "k")).toEqual({ value: { name: "new" }, status: "miss", syncFetch: true })
      expect(yield* count(Job.metrics(sameShape).fingerprintMisses)).toBe(1)
    }).pipe(Effect.provide(store(at)))
  })

  it.live("set, rawGet and delete keep the Entry shape, Pending markers included", () => {
    const at = prefix("shape")
    const job = Job.make({ name: "shapeStore", fetch: (_: string) => Effect.succeed(1) })
    return Effect.gen(function*() {
      const redis = yield* CacheStore.CacheStore
      yield* redis.set(keyOf(job, "p"), Entry.pending(1234), Duration.minutes(1), undefined)
      expect(yield* Job.rawGet(job, "p")).toEqual(Option.some(Entry.pending(1234)))
      yield* Job.set(job, "v", 7)
      const entry = yield* Job.rawGet(job, "v")
      expect(Option.getOrThrow(entry)).toMatchObject({ _tag: "Value", value: 7 })
      yield* Job.delete(job, "v")
      expect(yield* Job.rawGet(job, "v")).toEqual(Option.none())
    }).pipe(Effect.provide(store(at)))
  })

  it.live("a client passed in is used and left open; one made from a URL is closed with the layer", () => {
    const at = prefix("client")
    const client = rawClient()
    const job = Job.make({ name: "clientStore", fetch: (n: number) => Effect.succeed(n) })
    const logs = captureLogs()
    return Effect.gen(function*() {
      yield* Job.set(job, 1, 1).pipe(Effect.provide(RedisCacheStore.layer({ client, prefix: at })), Effect.provide(logs.layer))
      expect(client.status).toBe("ready")
      // This one queues commands while Redis is down: reads would wait, and the layer says so.
      expect(logs.lines.some((line) => line.startsWith("WARN") && line.includes("enableOfflineQueue: false"))).toBe(true)
      expect(yield* Effect.promise(() => client.exists(redisKey(at, job, 1)))).toBe(1)
      const name = `cbtest-${at}`
      const clients = () => Effect.promise(() => raw.client("LIST") as Promise<string>)
      yield* Effect.scoped(
        Effect.gen(function*() {
          yield* Layer.build(RedisCacheStore.layer({ url: redisUrl, prefix: at, redisOptions: { connectionName: name } }))
          expect(yield* clients()).toContain(`name=${name}`)
        })
      )
      yield* Effect.sleep("100 millis")
      expect(yield* clients()).not.toContain(`name=${name}`)
    }).pipe(Effect.ensuring(Effect.sync(() => client.disconnect())))
  })

  it("refuses bad options at once, saying what was expected", () => {
    expect(() => RedisCacheStore.layer({ url: redisUrl, prefix: "" })).toThrow(/non-empty prefix|non-empty string/)
    expect(() => RedisCacheStore.layer({ url: "localhost:6379", prefix: "p" })).toThrow(/redis:\/\//)
    const lazy = rawClient(true)
    expect(() => RedisCacheStore.layer({ url: redisUrl, client: lazy, prefix: "p" } as any)).toThrow(/exactly one/)
    expect(() => RedisCacheStore.layer({ url: redisUrl, prefix: "p", commandTimeout: -1 })).toThrow(/commandTimeout/)
  })
})
