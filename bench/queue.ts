/**
 * The memory queue under a backlog: N distinct keys enqueued at once, 1 ms
 * refreshes, `layerMemory({ concurrency: 4, capacity: 100_000 })`. The baseline is the same
 * refreshes run by `Effect.forEach` with concurrency 4 in the same run: an executor with no
 * queue at all, so that the ratio is the cost of queueing (a 1 ms sleep takes longer than
 * 1 ms on this machine, which the baseline pays too). Also: the heap the backlog holds, and
 * how long an unrelated memory hit waits while it drains.
 */
import { Context, Deferred, Effect, Layer } from "effect"
import { CacheStore, Job, RefreshQueue } from "effect-cacheback"
import { record } from "./harness.js"

const concurrency = 4

const task = (key: string, refresh: Effect.Effect<void>): RefreshQueue.Task => ({
  job: "bench.queue",
  key,
  input: key,
  inputSchema: undefined,
  options: {},
  refresh
})

const percentile = (sorted: ReadonlyArray<number>, p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0

const heapMB = () => process.memoryUsage().heapUsed / 2 ** 20

const gc = () => (globalThis as { gc?: () => void }).gc?.()

/** Enqueues `n` keys of 1 ms refreshes and waits for all: elapsed ms, heap held by the backlog. */
const throughQueue = (n: number, probe: Array<number> | undefined) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(Layer.merge(
      RefreshQueue.layerMemory({ concurrency, capacity: 100_000 }),
      CacheStore.layerMemory({ capacity: 1_000 })
    ))
    const queue = Context.get(context, RefreshQueue.RefreshQueue)
    const done = yield* Deferred.make<void>()
    let finished = 0
    const refresh = Effect.zipRight(
      Effect.sleep("1 millis"),
      Effect.suspend(() => (++finished === n ? Deferred.succeed(done, undefined) : Effect.void))
    )
    gc()
    const heapBefore = heapMB()
    const start = performance.now()
    for (let i = 0; i < n; i++) yield* queue.enqueue(task(`k${i}`, refresh))
    gc()
    const held = heapMB() - heapBefore
    // After the forced GC, so that its pause is not counted as a hit's wait.
    if (probe !== undefined) {
      // An unrelated request: a memory hit every millisecond, timed.
      const hits = Job.make({ name: "bench.queue.hits", fetch: (key: string) => Effect.succeed(key.length) })
      yield* Effect.forkScoped(Effect.provide(
        Effect.forever(Effect.gen(function*() {
          const start = performance.now()
          yield* Job.get(hits, "hot")
          probe.push(performance.now() - start)
          yield* Effect.sleep("1 millis")
        })),
        context
      ))
    }
    yield* Deferred.await(done)
    return { elapsed: performance.now() - start, held }
  }).pipe(Effect.scoped)

/** The same refreshes with no queue: `Effect.forEach` at the same concurrency. */
const baseline = (n: number) =>
  Effect.gen(function*() {
    const start = performance.now()
    yield* Effect.forEach(Array.from({ length: n }), () => Effect.sleep("1 millis"), { concurrency, discard: true })
    return performance.now() - start
  })

const drainRow = (n: number) =>
  Effect.gen(function*() {
    const probe = n === 10_000 ? [] as Array<number> : undefined
    const base = yield* baseline(n)
    const { elapsed, held } = yield* throughQueue(n, probe)
    const ratio = elapsed / base
    record({
      section: "queue",
      what: `drain of ${n.toLocaleString("en")} queued keys, 1 ms refreshes, concurrency 4, vs Effect.forEach of the same refreshes`,
      ours: `${(elapsed / 1000).toFixed(2)} s`,
      baseline: `${(base / 1000).toFixed(2)} s`,
      ratio: `${ratio.toFixed(2)}×`,
      target: "≤ 1.5×",
      met: ratio <= 1.5
    })
    if (probe === undefined) return
    record({
      section: "queue",
      what: "heap held by 10,000 queued keys (after GC, all enqueued)",
      ours: `+${held.toFixed(1)} MB`,
      baseline: "—",
      ratio: "—",
      target: "< 20 MB",
      met: held < 20
    })
    const sorted = [...probe].sort((a, b) => a - b)
    const p99 = percentile(sorted, 0.99)
    record({
      section: "queue",
      what: `a memory hit every ms during the 10,000-key drain: p50 / p99 / max of ${sorted.length.toLocaleString("en")}`,
      ours: `${percentile(sorted, 0.5).toFixed(3)} / ${p99.toFixed(3)} / ${(sorted.at(-1) ?? 0).toFixed(1)} ms`,
      baseline: "—",
      ratio: "—",
      target: "p99 < 2 ms",
      met: p99 < 2
    })
  })

export const queue = Effect.all([drainRow(1_000), drainRow(10_000), drainRow(100_000)], { discard: true })
