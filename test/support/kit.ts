/** Shared pieces of the suites: counting fetches, layers, a store that can fail, the tag scenario. */
import { expect } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Logger, Metric, Option, Ref } from "effect"
import { CacheStore, EnqueueError, Job, RefreshQueue, StoreError, TestRefreshQueue } from "effect-cacheback"

/** A fetch that returns `input#n` for its n-th call and counts its calls. */
export const counting = () => {
  let calls = 0
  return {
    fetch: (input: string) => Effect.sync(() => `${input}#${++calls}`),
    calls: () => calls
  }
}

/** A memory store and a test queue: nothing runs until `TestRefreshQueue.drain`. */
export const testLayer = Layer.mergeAll(CacheStore.layerMemory({ capacity: 1_000 }), TestRefreshQueue.layer)

export interface Faults {
  readonly failReads: boolean
  readonly failWrites: boolean
}

/**
 * A memory store behind switches that make its reads or writes fail, counting calls. It
 * has no `unsafeGet`, so reads take the effectful path a remote store takes.
 */
export const faultyStore = Effect.gen(function*() {
  const inner = yield* CacheStore.makeMemory({ capacity: 1_000 })
  const faults = yield* Ref.make<Faults>({ failReads: false, failWrites: false })
  const calls = { get: 0, getMany: 0, set: 0, delete: 0 }
  const guard = <A, E>(
    operation: "get" | "getMany" | "set" | "delete",
    key: string,
    effect: Effect.Effect<A, E>
  ): Effect.Effect<A, E | StoreError> =>
    Effect.flatMap(Ref.get(faults), (f): Effect.Effect<A, E | StoreError> => {
      calls[operation]++
      const failing = operation === "get" || operation === "getMany" ? f.failReads : f.failWrites
      return failing
        ? Effect.fail(new StoreError({ operation, key, cause: new Error("connection refused") }))
        : effect
    })
  const store = yield* CacheStore.make({
    get: (key, schema) => guard("get", key, inner.get(key, schema)),
    getMany: (keys, schema) => guard("getMany", keys.join(","), inner.getMany(keys, schema)),
    set: (key, entry, ttl, schema) => guard("set", key, inner.set(key, entry, ttl, schema)),
    delete: (key) => guard("delete", key, inner.delete(key))
  })
  return { store, faults, calls }
})

/** Collects what the program logs, as "LEVEL message" lines. */
export const captureLogs = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ logLevel, message }) => {
    lines.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

/** The current count of one of a job's counters. */
/** An entry as a write stores it: with the write's token, whatever its value. */
export const written = <E extends object>(entry: E): E => ({ ...entry, token: expect.any(String) })

export const count = (counter: Metric.Metric.Counter<number>) => Effect.map(Metric.value(counter), (state) => state.count)

/** A queue whose enqueue always fails, as BullMQ does with Redis down. */
export const refusingQueue = Layer.succeed(RefreshQueue.RefreshQueue, {
  enqueue: (task) => Effect.fail(new EnqueueError({ job: task.job, key: task.key, reason: "connection refused" }))
})

/** A job whose values carry their fetch's number, tagged by input and by that number. */
const versionedTagged = (name: string) => {
  let fetches = 0
  return Job.make({ name, fetch: (id: number) => Effect.sync(() => ({ id, version: ++fetches })) }).pipe(
    Job.withTags((id, value) => [`user:${id}`, `version:${value.version}`])
  )
}

/**
 * Tags on the store in context (DESIGN.md §8.3), for every store that keeps them:
 * invalidating a tag makes its entries stale (served, refreshed) and leaves others fresh;
 * the default store's accessor and `getMany` check tags too. A remote store writes and
 * enqueues after a read answered: `stored` waits for a read's value to be stored, `queued`
 * for a refresh to be queued (nothing to wait for on an in-process store). Returns the job.
 */
export const tagScenario = <R1, R2>(
  name: string,
  settle: {
    readonly stored: (job: ReturnType<typeof versionedTagged>, id: number) => Effect.Effect<unknown, unknown, R1>
    readonly queued: Effect.Effect<unknown, unknown, R2>
  }
) =>
  Effect.gen(function*() {
    const job = versionedTagged(name)
    yield* Job.get(job, 1)
    yield* Job.get(job, 2)
    yield* settle.stored(job, 1)
    yield* settle.stored(job, 2)
    expect((yield* Job.lookup(job, 1)).status).toBe("hit")
    yield* Job.invalidateTags(job, ["user:1"])
    expect(yield* Job.lookup(job, 1)).toEqual({ value: { id: 1, version: 1 }, status: "stale", syncFetch: false })
    expect((yield* Job.lookup(job, 2)).status).toBe("hit")
    yield* settle.queued
    expect(yield* TestRefreshQueue.drain).toBe(1)
    expect(yield* Job.lookup(job, 1)).toEqual({ value: { id: 1, version: 3 }, status: "hit", syncFetch: undefined })
    // The default store's accessor reaches the same tags.
    yield* CacheStore.invalidateTags(["user:2"])
    expect((yield* Job.lookup(job, 2)).status).toBe("stale")
    // getMany checks tags too.
    yield* Job.invalidateTags(job, ["version:3"])
    expect(yield* Job.getMany(job, [1, 2])).toEqual([{ id: 1, version: 3 }, { id: 2, version: 2 }])
    expect((yield* TestRefreshQueue.pending).length).toBeGreaterThanOrEqual(1)
    return job
  })

/** A job tagged `table:users` whose fetch waits at `gate` after saying it `started`. */
const gatedTagged = (name: string, started: Deferred.Deferred<void>, gate: Deferred.Deferred<void>) => {
  let fetches = 0
  return Job.make({
    name,
    fetch: (_: string) =>
      Effect.zipRight(Effect.zipRight(Deferred.succeed(started, undefined), Deferred.await(gate)), Effect.sync(() => ++fetches))
  }).pipe(Job.withTags(() => ["table:users"]))
}

/**
 * A fetch that began before an invalidation of its tag stores an entry that is stale at
 * once, on the store in context; `stored` waits for the read's value to be stored.
 */
export const tagRaceScenario = <R>(
  name: string,
  stored: (job: ReturnType<typeof gatedTagged>, input: string) => Effect.Effect<unknown, unknown, R>
) =>
  Effect.gen(function*() {
    const gate = yield* Deferred.make<void>()
    const started = yield* Deferred.make<void>()
    const job = gatedTagged(name, started, gate)
    const read = yield* Effect.fork(Job.get(job, "k"))
    yield* Deferred.await(started)
    // A write to the table and its invalidation land while the fetch reads the old rows.
    yield* CacheStore.invalidateTags(["table:users"])
    yield* Deferred.succeed(gate, undefined)
    expect(yield* Fiber.join(read)).toBe(1)
    yield* stored(job, "k")
    expect((yield* Job.lookup(job, "k")).status).toBe("stale")
  })

/**
 * A job whose fetch answers `input#n` for its n-th call; while `gated.on`, each fetch says
 * it `started` and waits for `gate`.
 */
const gatedCounting = (name: string) =>
  Effect.map(Effect.zip(Deferred.make<void>(), Ref.make(Deferred.unsafeMake<void>(undefined as never))), ([gate, started]) => {
    let calls = 0
    const gated = { on: false }
    const job = Job.make({
      name,
      fetch: (input: string) =>
        Effect.suspend(() => {
          const n = ++calls
          if (!gated.on) return Effect.succeed(`${input}#${n}`)
          return Effect.flatMap(Ref.get(started), (s) => Deferred.succeed(s, undefined)).pipe(
            Effect.zipRight(Deferred.await(gate)),
            Effect.as(`${input}#${n}`)
          )
        })
    })
    const arm = Effect.flatMap(Deferred.make<void>(), (s) => Effect.as(Ref.set(started, s), s)).pipe(
      Effect.tap(() => Effect.sync(() => (gated.on = true)))
    )
    return { job, gate, arm, calls: () => calls }
  })

/**
 * No lost write, on the store in context (DESIGN.md §3.2): a `set`, a `delete` (of a key
 * with or without a value, or after a `set`) or an `invalidate` that lands while a fetch begun before it runs
 * is never overwritten by that fetch's older value; a refresh asked for after the write
 * fetches anew. `superseded` waits until the job counted `n` writes refused that way (a
 * remote store writes after the read answered).
 */
export const lostWriteScenario = <R>(
  name: string,
  superseded: (job: Job.Job<string, string>, n: number) => Effect.Effect<unknown, unknown, R>
) =>
  Effect.gen(function*() {
    // A set during a miss's fetch: the set's value stays.
    const a = yield* gatedCounting(`${name}Set`)
    let started = yield* a.arm
    const read = yield* Effect.fork(Job.get(a.job, "k"))
    yield* Deferred.await(started)
    yield* Job.set(a.job, "k", "set")
    yield* Deferred.succeed(a.gate, undefined)
    expect(yield* Fiber.join(read)).toBe("k#1")
    yield* superseded(a.job, 1)
    expect(yield* Job.lookup(a.job, "k")).toEqual({ value: "set", status: "hit", syncFetch: undefined })

    // A delete of an absent key during a miss's fetch: nothing is stored, the next read fetches.
    const b = yield* gatedCounting(`${name}DeleteAbsent`)
    started = yield* b.arm
    const miss = yield* Effect.fork(Job.get(b.job, "k"))
    yield* Deferred.await(started)
    yield* Job.delete(b.job, "k")
    yield* Deferred.succeed(b.gate, undefined)
    expect(yield* Fiber.join(miss)).toBe("k#1")
    yield* superseded(b.job, 1)
    expect(Option.isNone(yield* Job.rawGet(b.job, "k"))).toBe(true)
    expect(yield* Job.lookup(b.job, "k")).toEqual({ value: "k#2", status: "miss", syncFetch: true })

    // A set then a delete during a miss's fetch: the fetch expected nothing, and nothing
    // is there again after the delete, but its old value still does not land.
    const g = yield* gatedCounting(`${name}SetDelete`)
    started = yield* g.arm
    const cold = yield* Effect.fork(Job.get(g.job, "k"))
    yield* Deferred.await(started)
    yield* Job.set(g.job, "k", "set")
    yield* Job.delete(g.job, "k")
    yield* Deferred.succeed(g.gate, undefined)
    expect(yield* Fiber.join(cold)).toBe("k#1")
    yield* superseded(g.job, 1)
    expect(Option.isNone(yield* Job.rawGet(g.job, "k"))).toBe(true)

    // A delete of a stored key during `Job.refresh`: the refresh's value is not stored.
    const c = yield* gatedCounting(`${name}Delete`)
    yield* Job.get(c.job, "k")
    yield* superseded(c.job, 0)
    started = yield* c.arm
    const refresh = yield* Effect.fork(Job.refresh(c.job, "k"))
    yield* Deferred.await(started)
    yield* Job.delete(c.job, "k")
    yield* Deferred.succeed(c.gate, undefined)
    expect(yield* Fiber.join(refresh)).toBe("k#2")
    expect(Option.isNone(yield* Job.rawGet(c.job, "k"))).toBe(true)
    expect(yield* count(Job.metrics(c.job).writesSuperseded)).toBe(1)

    // An invalidate during `Job.refresh`: the refresh begun before it does not store; the
    // refresh it enqueues fetches anew and does.
    const d = yield* gatedCounting(`${name}Invalidate`)
    yield* Job.get(d.job, "k")
    started = yield* d.arm
    const before = yield* Effect.fork(Job.refresh(d.job, "k"))
    yield* Deferred.await(started)
    yield* Job.invalidate(d.job, "k")
    yield* Deferred.succeed(d.gate, undefined)
    expect(yield* Fiber.join(before)).toBe("k#2")
    expect((yield* Job.lookup(d.job, "k")).value).toBe("k#1")
    expect(yield* TestRefreshQueue.drain).toBe(1)
    expect(d.calls()).toBe(3)
    expect(yield* Job.lookup(d.job, "k")).toEqual({ value: "k#3", status: "hit", syncFetch: undefined })

    // A set during the synchronous fetch of a stale key: the set's value stays, on every store.
    const e = yield* gatedCounting(`${name}SetStale`)
    const sync = e.job.pipe(Job.withLifetime("1 millis"), Job.withStaleRefresh({ syncAfter: "2 millis" }))
    yield* Job.get(sync, "k")
    yield* Effect.sleep("10 millis")
    started = yield* e.arm
    const stale = yield* Effect.fork(Job.get(sync, "k"))
    yield* Deferred.await(started)
    yield* Job.set(sync, "k", "set")
    yield* Deferred.succeed(e.gate, undefined)
    expect(yield* Fiber.join(stale)).toBe("k#2")
    yield* superseded(sync, 1)
    expect((yield* Job.rawGet(sync, "k")).pipe(Option.map((entry) => entry._tag === "Value" && entry.value))).toEqual(
      Option.some("set")
    )
  })

/** Waits (up to 2 s, live) until `job` counted `n` superseded writes; fails naming what it waited for. */
export const supersededAtLeast = (job: Job.Job<string, string>, n: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < 400; i++) {
      if ((yield* count(Job.metrics(job).writesSuperseded)) >= n) return
      yield* Effect.sleep("5 millis")
    }
    return yield* Effect.dieMessage(`${job.name}: ${n} superseded writes not counted within 2 s`)
  })

/**
 * Runs `check` until it passes, yielding between tries (at most 500): a store whose calls
 * are asynchronous writes a read's value after the read answered. The last failure is the
 * test's.
 */
export const eventually = <A, E, R>(check: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
  const attempt = (left: number): Effect.Effect<A, E, R> =>
    left === 0 ? check : Effect.catchAllCause(check, () => Effect.zipRight(Effect.yieldNow(), attempt(left - 1)))
  return attempt(500)
}

/**
 * Waits until the store in context holds a value of `job` for `input` (its fingerprint),
 * read without the job's schema so that waiting reports no decode error.
 */
export const storedBy = <I>(job: Job.Job<I, any, any, any, any, any, any, any>, input: I) =>
  Effect.flatMap(Effect.flatMap(job.key(input), (key) => Effect.map(CacheStore.CacheStore, (store) => [store, key] as const)), ([store, key]) =>
    eventually(
      Effect.map(store.get(key, undefined), (entry) => {
        const found = Option.getOrUndefined(entry)
        expect(found?._tag === "Value" && found.fingerprint === job.fingerprint).toBe(true)
      })
    ))
