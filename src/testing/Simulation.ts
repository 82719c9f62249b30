/**
 * A whole deployment in one test (DESIGN.md §11): N processes, each its own runtime with its
 * own engine, store layer and optional near tier, over one simulated Redis; one simulated
 * BullMQ queue with W workers; the origin behind a wrapper the schedule makes fail, hang or
 * slow down; one simulated clock and a deterministic scheduler shared by all. The library's
 * own code runs unchanged (the Redis store with its engine, near tier and tracking state
 * machine, the worker's attempt at a task); only Redis, BullMQ and the network are simulated.
 *
 * Schedules of reads, writes and faults are fast-check arbitraries (`schedules`); a run
 * records a `Trace`; invariants are named functions over it (`noLostWrite`, `noStampede`…),
 * and users write their own. `check` runs many schedules and, on a failure, fails with the
 * shrunk schedule as a timeline and a token that `replay` reruns. Same seed, same trace,
 * byte for byte.
 *
 * The README's "Testing a deployment" shows a test in full.
 *
 * @since 0.4.0
 */
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import type * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type * as Job from "../Job.js"
import { integer, positiveMillis } from "../internal/options.js"
import * as Arbitrary from "./internal/arbitrary.js"
import * as Engine from "./internal/deployment.js"
import * as Invariants from "./internal/invariants.js"
import * as Timeline from "./internal/timeline.js"
import type * as T from "./internal/trace.js"

/**
 * @since 0.4.0
 * @category models
 */
export type Schedule = T.Schedule
/**
 * @since 0.4.0
 * @category models
 */
export type Step = T.Step
/**
 * @since 0.4.0
 * @category models
 */
export type Operation = T.Operation
/**
 * @since 0.4.0
 * @category models
 */
export type Fault = T.Fault
/**
 * What a run recorded: every read, write, fetch, change of an entry in Redis, task, fault,
 * crash and warning, in the order they began, with the world's times (ms). Plain data:
 * `JSON.stringify` of two runs of one schedule is the same string.
 *
 * @since 0.4.0
 * @category models
 */
export type Trace = T.Trace
/**
 * @since 0.4.0
 * @category models
 */
export type TraceRecord = T.TraceRecord
/**
 * @since 0.4.0
 * @category models
 */
export type KeyPolicy = T.KeyPolicy
/**
 * A named check of a trace: the records that break its promise, none when it holds.
 *
 * @since 0.4.0
 * @category models
 */
export type Invariant = Invariants.Invariant
/**
 * @since 0.4.0
 * @category models
 */
export type Violation = Invariants.Violation
/**
 * @since 0.4.0
 * @category models
 */
export type ScheduleOptions = Arbitrary.ScheduleOptions

/**
 * A job of the deployment: the inputs the schedule's steps read and write, what `set`
 * writes (`value(input, n)`; without it, no `set`), the tags `invalidateTags` may name. The
 * job must be on the default `CacheStore` and, as on Redis, have an input schema when it
 * takes an input (tasks carry it to the workers).
 *
 * @since 0.4.0
 * @category models
 */
export interface JobSpec<I = any, A = any> {
  readonly job: Job.Job<I, A, any, any, any, any, any, any>
  readonly inputs: ReadonlyArray<I>
  readonly value?: ((input: I, n: number) => A) | undefined
  readonly tags?: ReadonlyArray<string> | undefined
}

/**
 * A deployment to simulate. Defaults: 4 processes, 2 workers of concurrency 1, no near tier,
 * the store's lock TTL 3 s and command timeout 1 s, the queue's lock 5 s and stalled check
 * every 5 s (BullMQ's 30 s would only slow the runs), network 0–2 ms each way, origin
 * 1–20 ms, and 10 s of quiet after the last step for the deployment to settle.
 *
 * @since 0.4.0
 * @category models
 */
export interface Options<R = never> {
  readonly jobs: ReadonlyArray<JobSpec>
  /** The services the jobs' fetches need (the origin), built in each process. */
  readonly layer?: Layer.Layer<R>
  readonly processes?: number
  readonly workers?: number
  readonly workerConcurrency?: number
  /** A near tier in every process (`RedisCacheStore`'s `nearCache`). */
  readonly nearCache?: { readonly capacity: number }
  readonly lockTtl?: number
  readonly commandTimeout?: number
  readonly queue?: { readonly lockDuration?: number; readonly stalledInterval?: number; readonly maxStalledCount?: number }
  readonly latency?: { readonly min: number; readonly max: number }
  readonly originLatency?: { readonly min: number; readonly max: number }
  readonly settle?: number
  /** The most scheduler tasks one run may take before it stops as unsettled. Default 5,000,000. */
  readonly maxTasks?: number
}

/**
 * A deployment, ready to run schedules.
 *
 * @since 0.4.0
 * @category models
 */
export interface Deployment {
  readonly settings: Engine.Settings
}

/**
 * A deployment of `options`. Throws at once for no jobs, a job without inputs, or a count or
 * duration that is not a positive integer.
 *
 * @since 0.4.0
 * @category constructors
 */
export const make = <R>(options: Options<R>): Deployment => {
  const where = "Simulation.make"
  if (typeof options !== "object" || options === null || !Array.isArray(options.jobs) || options.jobs.length === 0) {
    throw new TypeError(`${where}: expected { jobs: [{ job, inputs }] } with at least one job`)
  }
  for (const spec of options.jobs) {
    if (!Array.isArray(spec.inputs) || spec.inputs.length === 0) {
      throw new TypeError(`${where}: job "${spec.job?.name}" needs at least one input for the schedule to read`)
    }
  }
  const latency = (name: string, given: { readonly min: number; readonly max: number } | undefined, fallback: { min: number; max: number }) => {
    const value = given ?? fallback
    const min = integer(where, `${name}.min`, value.min, 0)
    return { min, max: integer(where, `${name}.max`, value.max, min) }
  }
  const ms = (name: string, value: number | undefined, fallback: number) => positiveMillis(`${where} ${name}`, value ?? fallback)
  return {
    settings: {
      jobs: options.jobs,
      layer: options.layer,
      processes: integer(where, "processes", options.processes ?? 4, 1, 64),
      workers: integer(where, "workers", options.workers ?? 2, 0, 64),
      workerConcurrency: integer(where, "workerConcurrency", options.workerConcurrency ?? 1, 1, 1_000),
      near: options.nearCache === undefined ? undefined : { capacity: integer(where, "nearCache.capacity", options.nearCache.capacity, 1) },
      lockTtl: ms("lockTtl", options.lockTtl, 3_000),
      commandTimeout: ms("commandTimeout", options.commandTimeout, 1_000),
      queue: {
        lockDuration: ms("queue.lockDuration", options.queue?.lockDuration, 5_000),
        stalledInterval: ms("queue.stalledInterval", options.queue?.stalledInterval, 5_000),
        maxStalledCount: integer(where, "queue.maxStalledCount", options.queue?.maxStalledCount ?? 1, 0)
      },
      latency: latency("latency", options.latency, { min: 0, max: 2 }),
      originLatency: latency("originLatency", options.originLatency, { min: 1, max: 20 }),
      settle: ms("settle", options.settle, 10_000),
      maxSteps: integer(where, "maxTasks", options.maxTasks ?? 5_000_000, 1)
    }
  }
}

/**
 * Runs `schedule` on a fresh deployment: every process and worker starts empty at time 0,
 * each step applies at its time, and the run goes on until `settle` ms after the last step
 * and the last fault's healing.
 *
 * @since 0.4.0
 * @category running
 */
export const run = (deployment: Deployment, schedule: Schedule): Effect.Effect<Trace> =>
  Effect.sync(() => Engine.run(deployment.settings, schedule))

/**
 * Schedules of the deployment's processes: reads and writes of its jobs' inputs at random
 * times, and faults (crashes and restarts of processes and workers, a worker dying
 * mid-refresh, partitions from Redis, late or lost invalidations, an origin that fails,
 * hangs or slows down), from `effect/FastCheck`. They shrink to fewer, earlier, shorter steps.
 *
 * @since 0.4.0
 * @category arbitraries
 */
export const schedules = (deployment: Deployment, options?: ScheduleOptions): FastCheck.Arbitrary<Schedule> =>
  Arbitrary.schedules(deployment.settings, options)

/**
 * The violations of `invariants` in `trace`, in the order of their times.
 *
 * @since 0.4.0
 * @category checking
 */
export const violations = (trace: Trace, invariants: ReadonlyArray<Invariant>): ReadonlyArray<Violation> =>
  invariants.flatMap((invariant) => invariant.check(trace)).sort((a, b) => a.at - b.at)

/**
 * A schedule that broke an invariant, shrunk: the token that `replay` reruns it with, what
 * broke, and the schedule as a timeline.
 *
 * @since 0.4.0
 * @category errors
 */
export class SimulationFailure extends Schema.TaggedError<SimulationFailure>("effect-cacheback/SimulationFailure")("SimulationFailure", {
  token: Schema.String,
  violations: Schema.Array(Schema.Struct({ invariant: Schema.String, at: Schema.Number, message: Schema.String })),
  timeline: Schema.String,
  runs: Schema.Number
}) {
  override get message(): string {
    return [
      `a simulated schedule broke ${Array.from(new Set(this.violations.map((v) => v.invariant))).join(", ")} (after ${this.runs} runs, shrunk)`,
      ...this.violations.slice(0, 10).map((v) => `  ${v.invariant} at ${v.at} ms: ${v.message}`),
      ...(this.violations.length > 10 ? [`  … and ${this.violations.length - 10} more`] : []),
      `replay: Simulation.replay(deployment, ${JSON.stringify(this.token)}, { invariants }) with the same schedule options`,
      "the shrunk schedule:",
      this.timeline
    ].join("\n")
  }
}

/**
 * @since 0.4.0
 * @category models
 */
export interface CheckOptions {
  readonly invariants: ReadonlyArray<Invariant>
  /** Schedules to run. Default 100. */
  readonly runs?: number
  /** fast-check's seed, for a run of your own choosing. */
  readonly seed?: number
  readonly schedules?: ScheduleOptions
  /** Whether a failure is shrunk before it is reported. Default true; `false` reports the first failing schedule as found (a faster search). */
  readonly shrink?: boolean
}

/**
 * Runs `runs` generated schedules and checks `invariants` on each trace; on the first
 * failure, shrinks it and fails with a `SimulationFailure` that prints the shrunk schedule
 * as a timeline and its replay token.
 *
 * @since 0.4.0
 * @category checking
 */
export const check = (deployment: Deployment, options: CheckOptions): Effect.Effect<void, SimulationFailure> =>
  Effect.suspend(() => {
    const outcome = explore(deployment, options, {
      numRuns: options.runs ?? 100,
      endOnFailure: options.shrink === false,
      ...(options.seed !== undefined ? { seed: options.seed } : {})
    })
    return outcome === undefined ? Effect.void : Effect.fail(outcome.failure)
  })

/**
 * Reruns the shrunk schedule of a `SimulationFailure` from its token, with the deployment and
 * schedule options of the check that printed it: its schedule, trace and violations.
 *
 * @since 0.4.0
 * @category checking
 */
export const replay = (
  deployment: Deployment,
  token: string,
  options: Omit<CheckOptions, "runs" | "seed" | "shrink">
): Effect.Effect<{ readonly schedule: Schedule; readonly trace: Trace; readonly violations: ReadonlyArray<Violation> }> =>
  Effect.suspend(() => {
    const [seed, path] = parseToken(token)
    const outcome = explore(deployment, options, { seed, path, numRuns: 1, endOnFailure: true })
    if (outcome !== undefined) return Effect.succeed(outcome.found)
    // It passes now (fixed since): its schedule and trace all the same.
    const schedule = FastCheck.sample(schedules(deployment, options.schedules), { seed, path, numRuns: 1 })[0]!
    const trace = Engine.run(deployment.settings, schedule)
    return Effect.succeed({ schedule, trace, violations: violations(trace, options.invariants) })
  })

/**
 * A trace as a timeline: one line per record, one column per process and worker, and one for
 * Redis and the queue.
 *
 * @since 0.4.0
 * @category formatting
 */
export const timeline = (trace: Trace): string => Timeline.ofTrace(trace)

/**
 * A schedule as a timeline: one line per step, one column per actor.
 *
 * @since 0.4.0
 * @category formatting
 */
export const scheduleTimeline = (deployment: Deployment, schedule: Schedule): string =>
  Timeline.ofSchedule(schedule, actorsOf(deployment), inputsOf(deployment))

const actorsOf = (deployment: Deployment) => [
  ...Array.from({ length: deployment.settings.processes }, (_, i) => `p${i}`),
  ...Array.from({ length: deployment.settings.workers }, (_, i) => `w${i}`),
  "origin"
]

const inputsOf = (deployment: Deployment) => deployment.settings.jobs.map((spec) => ({ name: spec.job.name, inputs: spec.inputs }))

const parseToken = (token: string): [number, string] => {
  const colon = token.indexOf(":")
  const seed = Number(colon < 0 ? token : token.slice(0, colon))
  if (!Number.isInteger(seed)) throw new TypeError(`Simulation.replay: expected a token "<seed>:<path>" as a SimulationFailure prints it, got ${JSON.stringify(token)}`)
  return [seed, colon < 0 ? "" : token.slice(colon + 1)]
}

const explore = (
  deployment: Deployment,
  options: Omit<CheckOptions, "runs" | "seed">,
  parameters: FastCheck.Parameters<[Schedule]>
) => {
  let found: { schedule: Schedule; trace: Trace; violations: ReadonlyArray<Violation> } | undefined
  const property = FastCheck.property(schedules(deployment, options.schedules), (schedule) => {
    const trace = Engine.run(deployment.settings, schedule)
    const broken = violations(trace, options.invariants)
    if (broken.length === 0) return true
    found = { schedule, trace, violations: broken }
    return false
  })
  const details = FastCheck.check(property, parameters)
  if (!details.failed) return undefined
  if (found === undefined) {
    // The run itself threw: a fault of the simulation, not of the deployment.
    throw details.errorInstance ?? new Error(String(details.error))
  }
  const failure = new SimulationFailure({
    token: `${details.seed}:${details.counterexamplePath ?? ""}`,
    violations: found.violations.map((v) => ({ invariant: v.invariant, at: v.at, message: v.message })),
    timeline: Timeline.ofSchedule(found.schedule, actorsOf(deployment), inputsOf(deployment)),
    runs: details.numRuns
  })
  return { failure, found }
}

export {
  /**
   * Availability: no read fails while stale-if-error covers a value in Redis, for a process
   * reaching Redis throughout the read.
   *
   * @since 0.4.0
   * @category invariants
   */
  availability,
  /**
   * Bounded background work: at most `max` refresh tasks of a key between two values stored
   * for it, while no fault is active (a stale storm enqueues one). Default 2.
   *
   * @since 0.4.0
   * @category invariants
   */
  boundedBackgroundWork,
  /**
   * Bounded staleness: no value served older than the job's `syncAfter` ceiling since its
   * fetch, but where stale-if-error covers it.
   *
   * @since 0.4.0
   * @category invariants
   */
  boundedStaleness,
  /**
   * Liveness: after the faults heal, a key read stale is refreshed within `within` ms.
   *
   * @since 0.4.0
   * @category invariants
   */
  liveness,
  /**
   * Invalidations honoured: a read after an `invalidate` (and its refresh timeout, for which
   * the value stays fresh while it is refreshed) or an `invalidateTags` of its key resolved
   * (and, with a near tier, after the invalidation delay) never answers a fresh hit
   * of a value fetched before it; it may serve it stale, per the job's policy.
   *
   * @since 0.4.0
   * @category invariants
   */
  invalidationsHonoured,
  /**
   * Monotonic reads: a process never reads a key's value older than one it read before.
   *
   * @since 0.4.0
   * @category invariants
   */
  monotonicReads,
  /**
   * No lost write: a read after a `set` or `delete` resolved (and, with a near tier, after the
   * invalidation delay) never answers a value older than the write, unless its process was
   * cut off from Redis (crashed or partitioned) since the write.
   *
   * @since 0.4.0
   * @category invariants
   */
  noLostWrite,
  /**
   * No stampede: at most `max` fetches of a key begin within `window` ms across the
   * deployment, while no fault is active and no write asked for one (a write between a
   * fetch's first waiting read and a later fetch).
   *
   * @since 0.4.0
   * @category invariants
   */
  noStampede
} from "./internal/invariants.js"

export {
  /**
   * The failure a schedule's origin fault gives a fetch.
   *
   * @since 0.4.0
   * @category errors
   */
  OriginFault
} from "./internal/deployment.js"
