/** Shared pieces of the suites: counting fetches, layers, a store that can fail, the tag scenario. */
import { expect } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Logger, Metric, Ref } from "effect"
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
