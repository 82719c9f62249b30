/**
 * The measuring of `npm run bench`: each path and its baseline run alternately in the same
 * process, a few rounds each, and the medians are compared. Results are rows of a table
 * that is printed and written to BENCHMARKS.md.
 */
import { Effect, Metric } from "effect"
import { Job } from "effect-cacheback"
import * as os from "node:os"

export interface Row {
  readonly section: string
  readonly what: string
  readonly ours: string
  readonly baseline: string
  readonly ratio: string
  readonly target: string
  readonly met: boolean | undefined
}

export const rows: Array<Row> = []

export const record = (row: Row): void => {
  rows.push(row)
  const mark = row.met === undefined ? " " : row.met ? "✓" : "✗"
  console.log(`${mark} ${row.section} | ${row.what}: ${row.ours} vs ${row.baseline} = ${row.ratio} (target ${row.target})`)
}

const median = (xs: ReadonlyArray<number>) => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

/** Operations per second of `body`, which performs `ops` operations. */
const rate = <E, R>(ops: number, body: Effect.Effect<unknown, E, R>) =>
  Effect.map(Effect.timed(body), ([elapsed]) => ops / (Number(elapsed.value._tag === "Nanos" ? elapsed.value.nanos : 0n) / 1e9))

/**
 * A row of two rates (ops/s) whose ratio is held to a floor. The ratio prints rounded down
 * to two decimals: one just under its floor never prints as the floor itself next to
 * "missed".
 */
export const floorRow = (section: string, what: string, ours: number, baseline: number, target: number): void =>
  record({
    section,
    what,
    ours: perSecond(ours),
    baseline: perSecond(baseline),
    ratio: `${(Math.floor((ours / baseline) * 100) / 100).toFixed(2)}×`,
    target: `≥ ${target}×`,
    met: ours / baseline >= target
  })

/**
 * Runs `ours` and `baseline` alternately for `rounds` rounds after one warm-up each, and
 * returns the median rates (ops/s).
 */
export const compare = <E1, R1, E2, R2>(options: {
  readonly ops: number
  readonly rounds?: number
  readonly ours: Effect.Effect<unknown, E1, R1>
  readonly baseline: Effect.Effect<unknown, E2, R2>
}) =>
  Effect.gen(function*() {
    yield* options.ours
    yield* options.baseline
    const ours: Array<number> = []
    const baseline: Array<number> = []
    for (let round = 0; round < (options.rounds ?? 7); round++) {
      ours.push(yield* rate(options.ops, options.ours))
      baseline.push(yield* rate(options.ops, options.baseline))
    }
    return { ours: median(ours), baseline: median(baseline) }
  })

export const perSecond = (n: number) =>
  n >= 1e6 ? `${(n / 1e6).toFixed(2)} M/s` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k/s` : `${n.toFixed(0)}/s`

export const machine = () =>
  `${os.cpus().length} × ${os.cpus()[0]?.model.trim() ?? "cpu"}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ` +
  `Node ${process.version}, ${os.platform()} ${os.release()}`

/**
 * 10,000 concurrent reads of one key that just went stale: how many refreshes they queue
 * (the job's `enqueued` counter). `job` must store its value with a lifetime of 0.
 */
export const staleStorm = <R>(section: string, what: string, job: Job.Job<string, number, never, never>, seed: Effect.Effect<unknown, unknown, R>) =>
  Effect.gen(function*() {
    yield* seed
    yield* Effect.sleep("2 millis")
    const enqueued = Job.metrics(job).enqueued
    const before = (yield* Metric.value(enqueued)).count
    yield* Effect.all(Array.from({ length: 10_000 }, () => Job.get(job, "hot")), { concurrency: "unbounded" })
    const tasks = (yield* Metric.value(enqueued)).count - before
    record({ section, what, ours: `${tasks} task`, baseline: "—", ratio: "—", target: "exactly 1 task", met: tasks === 1 })
  })
