/**
 * The simulation's speed (DESIGN.md §11): 100 generated schedules of 200 operation steps for
 * a 4-process, 2-worker deployment, sampled with `FastCheck.sample` and each run with
 * `Simulation.run`, with faults (the default kinds, at most 3 a schedule) and without. The
 * requirement is a throughput, not a timed test: "100 schedules of 4 processes × 200 events
 * in under 5 s". A round samples and runs the 100 with faults, then without, then the
 * baseline (memory-store `Job.get` hits); the rows show the medians of 5 rounds after a
 * warm-up, never the best.
 */
import { Effect, Layer, Random, Schema } from "effect"
import * as FastCheck from "effect/FastCheck"
import { CacheStore, Job, RefreshQueue } from "effect-cacheback"
import { Simulation } from "effect-cacheback/testing"
import { perSecond, record } from "./harness.js"

// The bench's own job, untagged, with the origin of the measured rows (5–300 ms): test/support/simulation.ts's
// job differs (tags, a slower origin), and sharing it would change what these rows measure.
const article = Job.make({
  name: "article",
  fetch: (id: string) => Effect.map(Random.nextIntBetween(0, 1_000_000), (n) => `${id}@${n}`)
}).pipe(
  Job.withSchema({ input: Schema.String, value: Schema.String }),
  Job.withLifetime("2 seconds"),
  Job.withStaleRefresh({ syncAfter: "6 seconds" }),
  Job.withStaleIfError("20 seconds")
)

const deployment = Simulation.make({
  jobs: [{ job: article, inputs: ["a", "b"], value: (input: string, n: number) => `${input}=set${n}` }],
  processes: 4,
  workers: 2,
  originLatency: { min: 5, max: 300 }
})

const schedules = 100
const operations = 200
const rounds = 5
const seed = 2026
const target = 5

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

interface Measure {
  readonly sampling: number
  readonly running: number
  readonly steps: number
  readonly records: number
}

/**
 * Samples the 100 schedules and runs each: seconds spent in each, steps and trace records.
 * A collection first (under `--expose-gc`), so that a round does not pay for the last one's
 * garbage: 100 runs leave ~60 MB on the heap.
 */
const measure = (faults: boolean): Measure => {
  ;(globalThis as { gc?: () => void }).gc?.()
  const options: Simulation.ScheduleOptions = faults
    ? { steps: { min: operations, max: operations }, span: 20_000, maxFaults: 3 }
    : { steps: { min: operations, max: operations }, span: 20_000, faults: false }
  const start = performance.now()
  const sampled = FastCheck.sample(Simulation.schedules(deployment, options), { seed, numRuns: schedules })
  const sampledAt = performance.now()
  let steps = 0
  let records = 0
  for (const schedule of sampled) {
    steps += schedule.steps.length
    records += Effect.runSync(Simulation.run(deployment, schedule)).records.length
  }
  const end = performance.now()
  return { sampling: (sampledAt - start) / 1e3, running: (end - sampledAt) / 1e3, steps, records }
}

// The baseline: a plain hit on the memory store, 100 passes over 1,000 keys.
const keys = Array.from({ length: 1_000 }, (_, i) => `user:${i}`)
const passes = 100
const hit = Job.make({ name: "bench.simulation.hit", fetch: (key: string) => Effect.succeed(key.length) })
const hits = Effect.gen(function*() {
  const start = performance.now()
  for (let pass = 0; pass < passes; pass++) yield* Effect.forEach(keys, (key) => Job.get(hit, key), { discard: true })
  return (passes * keys.length) / ((performance.now() - start) / 1e3)
})

const rows = (label: string, runs: ReadonlyArray<Measure>, baseline: number) => {
  const total = median(runs.map((m) => m.sampling + m.running))
  const sampling = median(runs.map((m) => m.sampling))
  const running = median(runs.map((m) => m.running))
  // Every round runs the same 100 schedules (one seed): the same steps and records each time.
  const { records, steps } = runs[0]!
  const rate = steps / total
  record({
    section: "simulation",
    what: `${schedules} schedules × ${operations} operation steps (${steps.toLocaleString("en")} steps in all), ` +
      `4 processes + 2 workers, ${label}: sampled and run, steps/s vs memory-store Job.get hits`,
    ours: `${perSecond(rate)} (${total.toFixed(2)} s)`,
    baseline: perSecond(baseline),
    ratio: `1 step ≈ ${Math.round(baseline / rate).toLocaleString("en")} hits`,
    target: `${schedules} × ${operations} in < ${target} s`,
    met: total < target
  })
  record({
    section: "simulation",
    what: `the same, ${label}: trace records/s (${records.toLocaleString("en")} records); time sampling / running`,
    ours: `${perSecond(records / total)}; ${sampling.toFixed(2)} s / ${running.toFixed(2)} s`,
    baseline: "—",
    ratio: `${((100 * running) / (sampling + running)).toFixed(0)}% running`,
    target: "reported",
    met: undefined
  })
}

export const simulation = Effect.gen(function*() {
  // Warm-up: one round of each, then the rounds interleaved.
  measure(true)
  measure(false)
  yield* hits
  const withFaults: Array<Measure> = []
  const without: Array<Measure> = []
  const baseline: Array<number> = []
  for (let round = 0; round < rounds; round++) {
    withFaults.push(measure(true))
    without.push(measure(false))
    baseline.push(yield* hits)
  }
  const base = median(baseline)
  rows("faults (default kinds, at most 3)", withFaults, base)
  rows("no faults", without, base)
}).pipe(
  Effect.provide(Layer.mergeAll(CacheStore.layerMemory({ capacity: 10_000 }), RefreshQueue.layerMemory({ concurrency: 4 })))
)
