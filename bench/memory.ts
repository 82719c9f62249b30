/**
 * In-process paths: memory hits against Effect's Cache.get, stampedes on the memory queue,
 * and the heap of a store that has seen a million keys.
 */
import { Cache, Effect, Layer } from "effect"
import { CacheStore, Job, RefreshQueue } from "effect-cacheback"
import { compare, floorRow, record, staleStorm } from "./harness.js"

const keys = Array.from({ length: 1_000 }, (_, i) => `user:${i}`)
const passes = 500 // 500 × 1,000 keys = 500,000 reads a round

const hits = Effect.gen(function*() {
  const job = Job.make({ name: "bench.memory", fetch: (key: string) => Effect.succeed(key.length) })
  const cache = yield* Cache.make({
    capacity: 10_000,
    timeToLive: "10 minutes",
    lookup: (key: string) => Effect.succeed(key.length)
  })
  const loop = <R>(read: (key: string) => Effect.Effect<number, unknown, R>) =>
    Effect.gen(function*() {
      for (let pass = 0; pass < passes; pass++) yield* Effect.forEach(keys, read, { discard: true })
    })
  const { baseline, ours } = yield* compare({
    ops: passes * keys.length,
    ours: loop((key) => Job.get(job, key)),
    baseline: loop((key) => cache.get(key))
  })
  floorRow("memory", "hit: Job.get vs Effect Cache.get, one program, 1,000 keys, metrics on", ours, baseline, 1.75)
})

const missStorm = Effect.gen(function*() {
  let fetches = 0
  const job = Job.make({
    name: "bench.missStorm",
    fetch: (_: string) => Effect.zipRight(Effect.sleep("20 millis"), Effect.sync(() => ++fetches))
  })
  yield* Effect.all(Array.from({ length: 1_000 }, () => Job.get(job, "missing")), { concurrency: "unbounded" })
  record({
    section: "memory",
    what: "storm: 1,000 concurrent gets of a missing key",
    ours: `${fetches} fetch`,
    baseline: "—",
    ratio: "—",
    target: "exactly 1 fetch",
    met: fetches === 1
  })
})

const storm = Job.make({ name: "bench.staleStorm", fetch: (_: string) => Effect.succeed(1) }).pipe(
  Job.withLifetime(0),
  Job.withRefreshTimeout("1 minute")
)
const staleStormMemory = staleStorm("memory", "storm: 10,000 concurrent stale reads of one key, memory queue", storm, Job.get(storm, "hot"))

const heap = Effect.scoped(Effect.gen(function*() {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) {
    record({ section: "memory", what: "heap after 1,000,000 keys", ours: "run with node --expose-gc", baseline: "—", ratio: "—", target: "< 50 MB", met: undefined })
    return
  }
  const job = Job.make({ name: "bench.heap", fetch: (key: number) => Effect.succeed({ key, payload: "x".repeat(32) }) })
  const store = yield* CacheStore.makeMemory({ capacity: 10_000 })
  const ids = Array.from({ length: 10_000 }, (_, i) => i)
  gc()
  const before = process.memoryUsage().heapUsed
  yield* Effect.gen(function*() {
    for (let chunk = 0; chunk < 100; chunk++) {
      yield* Effect.forEach(ids, (i) => Job.get(job, chunk * 10_000 + i), { discard: true })
    }
  }).pipe(Effect.provideService(CacheStore.CacheStore, store))
  gc()
  const grown = (process.memoryUsage().heapUsed - before) / 2 ** 20
  record({
    section: "memory",
    what: "heap after GC, 1,000,000 distinct keys through layerMemory({ capacity: 10_000 })",
    ours: `+${grown.toFixed(1)} MB`,
    baseline: "—",
    ratio: "—",
    target: "< 50 MB",
    met: grown < 50
  })
}))

export const memory = Effect.all([hits, missStorm, staleStormMemory, heap], { discard: true }).pipe(
  Effect.provide(Layer.mergeAll(CacheStore.layerMemory({ capacity: 10_000 }), RefreshQueue.layerMemory({ concurrency: 4 })))
)
