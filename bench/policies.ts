/**
 * The resilience policies (DESIGN.md §8), measured: early refresh of a hot key through the
 * engine (memory store and queue, on a `TestClock` so that 100 s of reads run in seconds),
 * what a tag check costs a hit, and what invalidating a tag costs as tagged entries grow.
 */
import { Clock, Duration, Effect, Layer, Metric } from "effect"
import { CacheStore, Job, RefreshQueue } from "effect-cacheback"
import { compare, perSecond, record } from "./harness.js"

const count = (counter: Metric.Metric.Counter<number>) => Effect.map(Metric.value(counter), (state) => state.count)

/**
 * A clock whose time the bench moves by hand: `TestClock` yields to the live clock at each
 * step, which makes 100,000 steps take minutes. Sleepers wake when `advance` passes their
 * time; the bench then yields so that they run.
 */
const manualClock = () => {
  let now = 0
  let sleepers: Array<{ readonly at: number; readonly wake: () => void }> = []
  const clock: Clock.Clock = {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => now,
    currentTimeMillis: Effect.sync(() => now),
    unsafeCurrentTimeNanos: () => BigInt(now) * 1_000_000n,
    currentTimeNanos: Effect.sync(() => BigInt(now) * 1_000_000n),
    sleep: (duration) =>
      Effect.async<void>((resume) => {
        sleepers.push({ at: now + Duration.toMillis(duration), wake: () => resume(Effect.void) })
      })
  }
  const advance = (millis: number) =>
    Effect.suspend(() => {
      now += millis
      const due = sleepers.filter((sleeper) => sleeper.at <= now)
      sleepers = sleepers.filter((sleeper) => sleeper.at > now)
      due.forEach((sleeper) => sleeper.wake())
      // Woken fibers run in a few turns (the fetch's timeout race, the flight, the store).
      return Effect.repeatN(Effect.yieldNow(), due.length === 0 ? 0 : 50)
    })
  return { clock, advance }
}

/** A hot key read every millisecond for 10 lifetimes of 10 s, its fetch taking 50 ms. */
const earlyRefresh = Effect.suspend(() => {
  const { advance, clock } = manualClock()
  return Effect.gen(function*() {
    const job = Job.make({ name: "bench.hot", fetch: (_: string) => Effect.as(Effect.sleep("50 millis"), 1) }).pipe(
      Job.withLifetime("10 seconds"),
      Job.withEarlyRefresh({ beta: 1 })
    )
    const lifetimes = 10
    const reads = lifetimes * 10_000
    let stale = 0
    const first = yield* Effect.fork(Job.get(job, "hot"))
    for (let i = 0; i < 1_000 && first.unsafePoll() === null; i++) yield* advance(1)
    for (let i = 0; i < reads; i++) {
      const found = yield* Job.lookup(job, "hot")
      if (found.status !== "hit") stale++
      yield* advance(1)
    }
    const metrics = Job.metrics(job)
    const refreshes = (yield* count(metrics.enqueued)) + (yield* count(metrics.syncFetches)) - 1
    const staleShare = stale / reads
    record({
      section: "policies",
      what: "early refresh (beta 1): a hot key read 1,000×/s, lifetime 10 s, 50 ms fetch, 10 lifetimes: stale reads",
      ours: `${(staleShare * 100).toFixed(3)}%`,
      baseline: "—",
      ratio: "—",
      target: "≤ 0.1%",
      met: staleShare <= 0.001
    })
    record({
      section: "policies",
      what: "early refresh, the same hot key: refreshes per lifetime",
      ours: (refreshes / lifetimes).toFixed(2),
      baseline: "—",
      ratio: "—",
      target: "≤ 1.2",
      met: refreshes / lifetimes <= 1.2
    })
  }).pipe(
    Effect.provide(Layer.mergeAll(CacheStore.layerMemory({ capacity: 100 }), RefreshQueue.layerMemory({ concurrency: 1 }))),
    Effect.withClock(clock)
  )
})

const keys = Array.from({ length: 1_000 }, (_, i) => i)
const passes = 200

/** A tagged hit against an untagged one: the cost of the tag check (memory store). */
const taggedHit = Effect.gen(function*() {
  const plain = Job.make({ name: "bench.untagged", fetch: (id: number) => Effect.succeed(id) })
  const tagged = Job.make({ name: "bench.tagged", fetch: (id: number) => Effect.succeed(id) }).pipe(
    Job.withTags((id) => [`user:${id}`, "users"])
  )
  const loop = (job: typeof plain) =>
    Effect.gen(function*() {
      for (let pass = 0; pass < passes; pass++) yield* Effect.forEach(keys, (id) => Job.get(job, id), { discard: true })
    })
  const { baseline, ours } = yield* compare({ ops: passes * keys.length, ours: loop(tagged), baseline: loop(plain) })
  record({
    section: "policies",
    what: "memory hit of an entry with 2 tags vs an untagged one (the tag check)",
    ours: perSecond(ours),
    baseline: perSecond(baseline),
    ratio: `${(ours / baseline).toFixed(2)}×`,
    target: "reported",
    met: undefined
  })
}).pipe(Effect.provide(Layer.mergeAll(CacheStore.layerMemory({ capacity: 10_000 }), RefreshQueue.layerMemory({ concurrency: 4 }))))

/**
 * Invalidating one tag over 100,000 tagged entries, against what a cache without tags does
 * instead: deleting each of those entries. O(1) against O(N).
 */
const invalidation = Effect.gen(function*() {
  const entries = 100_000
  const job = Job.make({ name: "bench.invalidate", fetch: (id: number) => Effect.succeed(id) }).pipe(
    Job.withTags(() => ["table:users"])
  )
  const ids = Array.from({ length: entries }, (_, i) => i)
  yield* Effect.forEach(ids, (id) => Job.get(job, id), { discard: true })
  const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.gen(function*() {
      const start = performance.now()
      yield* effect
      return performance.now() - start
    })
  const tag = yield* timed(Job.invalidateTags(job, ["table:users"]))
  const deletes = yield* timed(Effect.forEach(ids, (id) => Job.delete(job, id), { discard: true }))
  record({
    section: "policies",
    what: "invalidate 100,000 tagged entries: invalidateTags of their tag vs Job.delete of each (memory store)",
    ours: `${(tag * 1000).toFixed(0)} µs`,
    baseline: `${(deletes * 1000).toFixed(0)} µs`,
    ratio: `${(deletes / tag).toFixed(0)}× faster`,
    target: "O(1): ≥ 100× faster",
    met: deletes / tag >= 100
  })
}).pipe(Effect.provide(Layer.mergeAll(CacheStore.layerMemory({ capacity: 200_000 }), RefreshQueue.layerMemory({ concurrency: 4 }))))

export const policies = Effect.all([earlyRefresh, taggedHit, invalidation], { discard: true })
