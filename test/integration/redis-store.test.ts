/**
 * RedisCacheStore on the real Redis and on the local Redis Cluster
 * (DESIGN.md §5.2, §5.3): entries through the job's value schema, TTL, one MGET for many
 * keys (one per slot on a cluster), corrupt entries as misses, tags.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber, Layer, Metric, Option, Schema } from "effect"
import { CacheStore, Entry, Job, TestRefreshQueue } from "effect-cacheback"
import { RedisCacheStore } from "effect-cacheback/redis"
import { Cluster, Redis } from "ioredis"
import calculateSlot from "cluster-key-slot"
import { captureLogs, count, counting, lostWriteScenario, supersededAtLeast, tagRaceScenario, tagScenario } from "../support/kit.js"
import { clusterNodes, redisUrl } from "../support/services.js"
import { Profile } from "./fixtures/jobs.js"
import { entryJson } from "./fixtures/entries.js"
import { keyOf, poll, storedValue, unique } from "./fixtures/redis.js"
import { cleanUp, targets } from "./fixtures/targets.js"
import { monitor as monitorServer } from "../support/monitor.js"

/** Waits until a read's write of `input` lands: it runs in the background, after the answer. */
const isStored = <A>(job: Job.Job<any, A, any, any, any, any, any, any>, input: unknown) =>
  poll("the read's value is stored", 2_000, Effect.map(storedValue(job, input), Option.getOrUndefined))

describe.each(await targets())("RedisCacheStore on $name", (target) => {
  if (!target.up) return it.skip("its servers are not running")
  const onCluster = target.name === "a Redis Cluster"
  const raw = target.raw()
  const prefixes: Array<string> = []
  const prefix = (label: string) => {
    const name = unique(label)
    prefixes.push(name)
    return name
  }
  afterAll(() => cleanUp(target, raw, prefixes, []))

  /** A job name of this target's: a job's metrics are per name, for the whole process. */
  const named = (name: string) => `${name}@${onCluster ? "cluster" : "redis"}`
  const store = (prefix: string) => Layer.merge(RedisCacheStore.layer(target.store(prefix)), TestRefreshQueue.layer)
  const redisKey = (prefix: string, job: Job.Job.Any, input: unknown) => target.entryKey(prefix, keyOf(job, input))
  /** Every command Redis runs that names a key under `prefix`, on each server. */
  const monitor = (prefix: string) =>
    Effect.map(
      Effect.acquireRelease(
        Effect.promise(() => Promise.all(target.servers(raw).map(monitorServer))),
        (monitors) => Effect.sync(() => monitors.forEach((m) => m.disconnect()))
      ),
      (monitors) => {
        const seen: Array<{ command: string; keys: ReadonlyArray<string>; source: string }> = []
        for (const m of monitors) {
          m.on("monitor", (_time: string, args: ReadonlyArray<string>, source: string) => {
            const keys = args.slice(1).filter((arg) => arg.startsWith(`${prefix}:`))
            if (keys.length > 0) seen.push({ command: args[0].toLowerCase(), keys, source })
          })
        }
        return seen
      }
    )
  /** MONITOR reports commands as Redis runs them: waits until each server ran what was sent before. */
  const settled = Effect.zipRight(
    Effect.promise(() => Promise.all(target.servers(raw).map((server) => server.ping()))),
    Effect.sleep("100 millis")
  )

  it.live("a value schema brings back a Date, an Option and a class instance through another client", () => {
    const at = prefix("schema")
    const job = Job.make({
      name: named("profileStore"),
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
    const job = Job.make({ name: named("plainStore"), fetch: (id: number) => Effect.succeed({ id, tags: ["a", "b"], ok: true }) })
    const logs = captureLogs()
    return Effect.gen(function*() {
      yield* Job.get(job, 1)
      yield* isStored(job, 1) // a read's write follows its answer
      expect(yield* Job.lookup(job, 1)).toEqual({ value: { id: 1, tags: ["a", "b"], ok: true }, status: "hit", syncFetch: undefined })

      const dated = Job.make({ name: named("datedStore"), fetch: (_: number) => Effect.succeed({ when: new Date(0) }) })
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
    const job = Job.make({ name: named("ttlStore"), fetch: f.fetch }).pipe(Job.withCacheTtl("90 seconds"))
    const brief = Job.make({ name: named("briefStore"), fetch: f.fetch }).pipe(Job.withCacheTtl("150 millis"))
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

  it.live(`Job.getMany reads every key with one MGET${onCluster ? " per slot" : ""}`, () => {
    const at = prefix("mget")
    // Per process: the read of the missing key takes no lock across processes.
    const job = Job.make({ name: named("manyStore"), fetch: (n: number) => Effect.succeed(n * 10) }).pipe(Job.withSingleFlight("process"))
    const inputs = Array.from({ length: 12 }, (_, i) => i)
    return Effect.gen(function*() {
      yield* Effect.forEach(inputs.filter((n) => n !== 2), (n) => Job.set(job, n, n * 10), { discard: true })
      const seen = yield* monitor(at)
      expect(yield* Job.getMany(job, inputs)).toEqual(inputs.map((n) => n * 10))
      yield* settled
      // Commands a script runs (the fetched value's compare-and-set) are not the reads counted here.
      const reads = seen.filter((command) => command.source !== "lua" && command.command !== "evalsha")
      const slots = new Set(inputs.map((n) => calculateSlot(redisKey(at, job, n))))
      expect(reads.every((read) => read.command === "mget")).toBe(true)
      expect(reads).toHaveLength(onCluster ? slots.size : 1)
      expect(reads.flatMap((read) => read.keys).sort()).toEqual(inputs.map((n) => redisKey(at, job, n)).sort())
      // Each MGET names the keys of one slot.
      for (const read of reads) expect(onCluster ? new Set(read.keys.map(calculateSlot)).size : 1).toBe(1)
      // The fetched value's write is compare-and-set: a script.
      expect(seen.filter((command) => command.command === "evalsha")).toHaveLength(1)
      expect(yield* Job.getMany(job, [])).toEqual([])
    }).pipe(Effect.scoped, Effect.provide(store(at)))
  })

  it.live("concurrent reads share round trips: 64 readers, two MGETs a round; a lone reader, one GET a read", () => {
    const at = prefix("batch")
    // The "}" makes "batch" the hash tag of every key of the job on a cluster (entries at
    // "<prefix>:{batch}Store:<hash>}"): all in one slot, as the keys of one Redis are.
    const job = Job.make({ name: named("batch}Store"), fetch: (n: number) => Effect.succeed(n) })
    return Effect.gen(function*() {
      yield* Effect.forEach(Array.from({ length: 64 }, (_, i) => i), (i) => Job.set(job, i, i), { discard: true })
      const seen = yield* monitor(at)
      // 64 fibers, three reads each: after the first round they read again together.
      const readers = Array.from({ length: 64 }, (_, i) =>
        Effect.forEach([0, 1, 2], () => Job.get(job, i), { discard: true }))
      yield* Effect.all(readers, { concurrency: "unbounded", discard: true })
      yield* settled
      expect(seen.reduce((keys, command) => keys + command.keys.length, 0)).toBe(192)
      // Two round trips in flight: two lone GETs, then about two MGETs a round (the grouping
      // itself is checked in test/Reads.test.ts); one read a command would be 192.
      expect(seen.length).toBeLessThanOrEqual(12)
      expect(Math.max(...seen.map((command) => command.keys.length))).toBeGreaterThanOrEqual(16)
      seen.length = 0
      for (let i = 0; i < 5; i++) yield* Job.get(job, i)
      yield* settled
      expect(seen.map(({ command, keys }) => ({ command, keys: keys.length }))).toEqual(
        Array.from({ length: 5 }, () => ({ command: "get", keys: 1 }))
      )
    }).pipe(Effect.scoped, Effect.provide(store(at)))
  })

  it.live("an entry that does not decode is a miss, logged and counted, and the fetch overwrites it", () => {
    const at = prefix("corrupt")
    const f = counting()
    const job = Job.make({ name: named("corruptStore"), fetch: f.fetch }).pipe(Job.withSchema({ value: Schema.String }))
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
    const job = Job.make({ name: named("legacyPeople"), fetch: (_: string) => Effect.succeed({ name: "new", age: 3 }) }).pipe(
      Job.withSchema({ value: Schema.Struct({ name: Schema.String, age: Schema.Number }) })
    )
    const sameShape = Job.make({ name: named("legacyNames"), fetch: (_: string) => Effect.succeed({ name: "new" }) }).pipe(
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
    const job = Job.make({ name: named("shapeStore"), fetch: (_: string) => Effect.succeed(1) })
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

  it.live("tags: invalidating a tag makes its entries stale (served, refreshed), leaving others fresh; tag keys have no TTL, in one slot", () => {
    const at = prefix("tags")
    return Effect.gen(function*() {
      yield* tagScenario(named("taggedStore"), {
        stored: isStored,
        // The stale read queues its refresh after it answered.
        queued: poll("the refresh is queued", 2_000, Effect.map(TestRefreshQueue.pending, (tasks) => tasks.length > 0 || undefined))
      })
      // user:1, user:2, version:1, version:2, version:3 and the generation: kept without a
      // TTL (they must outlive the entries), and in one slot (the scripts touch several).
      const tags = (yield* Effect.promise(() => target.keys(raw, at))).filter((key) => key.startsWith(`${at}|tag:`))
      expect(tags).toHaveLength(6)
      expect(new Set(tags.map(calculateSlot)).size).toBe(1)
      for (const key of tags) expect(yield* Effect.promise(() => raw.pttl(key))).toBe(-1)
    }).pipe(Effect.provide(store(at)))
  })

  it.live("tags: a restarted process reads the tokens and the generation its entries recorded, and invalidates each of two tags", () => {
    const at = prefix("tags-restart")
    let fetches = 0
    const job = Job.make({ name: named("taggedRestart"), fetch: (id: string) => Effect.sync(() => `${id}#${++fetches}`) }).pipe(
      Job.withTags((id) => [`table:${id}`, "all"])
    )
    const generation = Effect.flatMap(CacheStore.CacheStore, (store) => store.tags!.generation)
    return Effect.gen(function*() {
      const before = yield* Effect.gen(function*() {
        yield* CacheStore.invalidateTags(["warm-up"]) // the generation is then a token, not ""
        yield* Job.get(job, "a")
        yield* Job.get(job, "b")
        yield* isStored(job, "a")
        yield* isStored(job, "b")
        return yield* generation
      }).pipe(Effect.provide(store(at)))
      expect(before).not.toBe("")
      // A restart: another layer, another client; nothing is shared but Redis.
      yield* Effect.gen(function*() {
        expect(yield* generation).toBe(before)
        expect((yield* Job.lookup(job, "a")).status).toBe("hit")
        yield* CacheStore.invalidateTags(["table:a"])
        expect(yield* generation).not.toBe(before)
        expect((yield* Job.lookup(job, "a")).status).toBe("stale")
        expect((yield* Job.lookup(job, "b")).status).toBe("hit")
        yield* CacheStore.invalidateTags(["all"])
        expect((yield* Job.lookup(job, "b")).status).toBe("stale")
      }).pipe(Effect.provide(store(at)))
      expect(fetches).toBe(2)
    })
  })

  it.live("tags: a fetch that began before an invalidation of its tag stores an entry that is stale at once", () => {
    const at = prefix("tags-race")
    return tagRaceScenario(named("taggedRaceStore"), isStored).pipe(Effect.provide(store(at)))
  })

  it.live("tags: invalidating 100,000 tags at once works (in chunks), and each of them is invalidated", () => {
    const at = prefix("many-tags")
    return Effect.gen(function*() {
      const names = Array.from({ length: 100_000 }, (_, i) => `t${i}`)
      const job = Job.make({ name: named("manyTags"), fetch: (i: number) => Effect.succeed(i) }).pipe(
        Job.withTags((i) => [`t${i}`])
      )
      yield* Job.get(job, 99_999)
      yield* isStored(job, 99_999)
      expect((yield* Job.lookup(job, 99_999)).status).toBe("hit")
      yield* CacheStore.invalidateTags(names)
      expect((yield* Job.lookup(job, 99_999)).status).toBe("stale")
    }).pipe(Effect.provide(store(at)))
  }, 30_000)

  it.live("no lost write: a set, delete or invalidate during a slower fetch is never overwritten by it", () => {
    const at = prefix("lost-write")
    return lostWriteScenario(named("lostWrite"), supersededAtLeast).pipe(Effect.provide(store(at)))
  })

  it.live("no lost write across processes: another client's set or delete during this one's fetch stays", () => {
    const at = prefix("lost-write-two")
    return Effect.gen(function*() {
      const a = yield* Layer.build(store(at))
      const b = yield* Layer.build(store(at))
      for (const [name, write, expected] of [
        ["lostWriteSet", (job: Job.Job<string, string>) => Job.set(job, "k", "set by B"), "set by B"],
        ["lostWriteDelete", (job: Job.Job<string, string>) => Job.delete(job, "k"), undefined]
      ] as const) {
        const gate = yield* Deferred.make<void>()
        const started = yield* Deferred.make<void>()
        const job = Job.make({
          name: named(name),
          fetch: (k: string) => Effect.zipRight(Effect.zipRight(Deferred.succeed(started, undefined), Deferred.await(gate)), Effect.succeed(`${k}#A`))
        })
        const read = yield* Effect.fork(Effect.provide(Job.get(job, "k"), a))
        yield* Deferred.await(started)
        yield* Effect.provide(write(job), b)
        yield* Deferred.succeed(gate, undefined)
        expect(yield* Fiber.join(read)).toBe("k#A")
        yield* supersededAtLeast(job, 1)
        const found = yield* Effect.provide(Job.rawGet(job, "k"), b)
        expect(Option.getOrUndefined(Option.map(found, (entry) => entry._tag === "Value" ? entry.value : entry._tag))).toBe(expected)
      }
    }).pipe(Effect.scoped)
  })

  it.live("the first commands after the layer is built, many at once on every master, all succeed (each node connected before)", () => {
    const at = prefix("first")
    // On a cluster ioredis connects a node on its first command and, without an offline
    // queue, failed every other command sent while that connection was being made.
    const keys = Array.from({ length: 30 }, (_, i) => `first-${i}`)
    return Effect.gen(function*() {
      const redis = yield* CacheStore.CacheStore
      const written = yield* Effect.forEach(keys, (key) => Effect.either(redis.set(key, Entry.pending(1), Duration.minutes(1), undefined)), {
        concurrency: "unbounded"
      })
      expect(written.filter((write) => write._tag === "Left")).toEqual([])
      const read = yield* Effect.forEach(keys, (key) => redis.get(key, undefined), { concurrency: "unbounded" })
      expect(read.every(Option.isSome)).toBe(true)
    }).pipe(Effect.provide(store(at)))
  })

  it.live("a client passed in is used and left open; one the layer makes is closed with the layer, near-cache connections too", () => {
    const at = prefix("client")
    const client = onCluster ? new Cluster([...clusterNodes]) : new Redis(redisUrl)
    const job = Job.make({ name: named("clientStore"), fetch: (n: number) => Effect.succeed(n) })
    const logs = captureLogs()
    return Effect.gen(function*() {
      yield* Job.set(job, 1, 1).pipe(Effect.provide(RedisCacheStore.layer({ client, prefix: at })), Effect.provide(logs.layer))
      expect(client.status).toBe("ready")
      // This one queues commands while Redis is down: reads would wait, and the layer says so.
      const warning = logs.lines.find((line) => line.startsWith("WARN") && line.includes("enableOfflineQueue: false"))
      expect(warning).toBeDefined()
      if (onCluster) expect(warning).toContain("retryDelayOnFailover: 0")
      expect(yield* Effect.promise(() => client.exists(redisKey(at, job, 1)))).toBe(1)
      const name = `cbtest-${at}`
      const named = () =>
        Effect.promise(async () => {
          const lists = await Promise.all(target.servers(raw).map((server) => server.client("LIST") as Promise<string>))
          return lists.join("\n").split("\n").filter((line) => line.includes(`name=${name} `)).length
        })
      const made: RedisCacheStore.Options = onCluster
        ? { cluster: { nodes: clusterNodes, options: { redisOptions: { connectionName: name } } }, prefix: at, nearCache: { capacity: 10 } }
        : { url: redisUrl, prefix: at, redisOptions: { connectionName: name }, nearCache: { capacity: 10 } }
      yield* Effect.scoped(
        Effect.gen(function*() {
          yield* Layer.build(RedisCacheStore.layer(made))
          // The store's connection(s) and the near cache's: a subscriber (and a tracker, on a cluster) per server.
          yield* poll("the store's connections are up", 2_000, Effect.map(named(), (n) => (n >= (onCluster ? 6 : 2) ? n : undefined)))
        })
      )
      yield* poll("every connection the layer made is closed", 2_000, Effect.map(named(), (n) => (n === 0 ? n : undefined)))
    }).pipe(Effect.ensuring(Effect.sync(() => client.disconnect())))
  })
})

describe("RedisCacheStore options", () => {
  it("refuses bad options at once, saying what was expected", () => {
    expect(() => RedisCacheStore.layer({ url: redisUrl, prefix: "" })).toThrow(/non-empty prefix|non-empty string/)
    expect(() => RedisCacheStore.layer({ url: "localhost:6379", prefix: "p" })).toThrow(/redis:\/\//)
    const lazy = new Redis(redisUrl, { lazyConnect: true })
    expect(() => RedisCacheStore.layer({ url: redisUrl, client: lazy, prefix: "p" } as any)).toThrow(/exactly one/)
    expect(() => RedisCacheStore.layer({ url: redisUrl, prefix: "p", commandTimeout: -1 })).toThrow(/commandTimeout/)
  })

  it("on a cluster: refuses a prefix with a brace, redisOptions beside cluster, and a cluster without nodes", () => {
    const nodes = [...clusterNodes]
    for (const prefix of ["{app}", "a{pp", "app}"]) {
      expect(() => RedisCacheStore.layer({ cluster: { nodes }, prefix })).toThrow(/on a Redis Cluster the prefix may not contain "\{" or "\}"/)
    }
    const lazy = new Cluster(nodes, { lazyConnect: true })
    expect(() => RedisCacheStore.layer({ client: lazy, prefix: "{app}" })).toThrow(/may not contain/)
    // The same prefix is fine on one Redis, where hash tags mean nothing.
    expect(() => RedisCacheStore.layer({ url: redisUrl, prefix: "{app}" })).not.toThrow()
    expect(() => RedisCacheStore.layer({ cluster: { nodes }, prefix: "p", redisOptions: {} } as any)).toThrow(/cluster\.options\.redisOptions/)
    expect(() => RedisCacheStore.layer({ cluster: { nodes: [] }, prefix: "p" })).toThrow(/at least one seed node/)
    expect(() => RedisCacheStore.layer({ cluster: { nodes }, url: redisUrl, prefix: "p" } as any)).toThrow(/exactly one/)
  })
})
