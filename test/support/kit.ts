/** Shared pieces of the core suites: counting fetches, layers, and a store that can fail. */
import { Effect, Layer, Logger, Metric, Ref } from "effect"
import { CacheStore, EnqueueError, RefreshQueue, StoreError, TestRefreshQueue } from "effect-cacheback"

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
  const store: CacheStore.Service = {
    get: (key, schema) => guard("get", key, inner.get(key, schema)),
    getMany: (keys, schema) => guard("getMany", keys.join(","), inner.getMany(keys, schema)),
    set: (key, entry, ttl, schema) => guard("set", key, inner.set(key, entry, ttl, schema)),
    delete: (key) => guard("delete", key, inner.delete(key))
  }
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
