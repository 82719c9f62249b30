/**
 * Schedules as fast-check arbitraries (Effect's copy, `effect/FastCheck`, which `it.prop`
 * uses): operations of the processes and faults of every kind, each step a record that
 * shrinks on its own (fewer steps, earlier times, shorter faults), sorted by time.
 */
import * as FastCheck from "effect/FastCheck"
import { integer } from "../../internal/options.js"
import type { Settings } from "./deployment.js"
import type * as T from "./trace.js"

export interface ScheduleOptions {
  /** How many operations: at most a number (shrinking toward one), or a range. Default 1 to 200. */
  readonly steps?: number | { readonly min: number; readonly max: number }
  /** The span of time the steps fall in (ms). Default 20 seconds. */
  readonly span?: number
  /** Which faults to draw (`true`: all, `false`: none). Default all. */
  readonly faults?: boolean | ReadonlyArray<T.Fault["_tag"]>
  /** The most faults in one schedule. Default 3. */
  readonly maxFaults?: number
  /** Whether processes write (`set`, `delete`, `invalidate`, `invalidateTags`) as well as read. Default true. */
  readonly writes?: boolean
  /**
   * How often each operation is drawn, relative to the others (0: never). Default 8 reads to
   * 1 of each write: raise the writes to look for races between a write and a fetch.
   */
  readonly weights?: {
    readonly read?: number
    readonly set?: number
    readonly delete?: number
    readonly invalidate?: number
    readonly invalidateTags?: number
  }
}

export const schedules = (settings: Settings, options: ScheduleOptions = {}): FastCheck.Arbitrary<T.Schedule> => {
  const span = options.span ?? 20_000
  const range = typeof options.steps === "number" ? { min: 1, max: options.steps } : options.steps ?? { min: 1, max: 200 }
  const processes = Array.from({ length: settings.processes }, (_, i) => `p${i}`)
  const workers = Array.from({ length: settings.workers }, (_, i) => `w${i}`)
  const writes = options.writes ?? true
  const kinds: ReadonlyArray<T.Fault["_tag"]> = options.faults === false
    ? []
    : options.faults === true || options.faults === undefined
    ? ["Crash", "Partition", "Invalidations", "Origin"]
    : options.faults
  const at = FastCheck.integer({ min: 0, max: span })
  const weight = { read: 8, set: 1, delete: 1, invalidate: 1, invalidateTags: 1, ...options.weights }
  for (const [name, value] of Object.entries(weight)) integer("Simulation.schedules", `weights.${name}`, value, 0, 1_000)

  const operations = settings.jobs.flatMap((spec, job): Array<FastCheck.WeightedArbitrary<T.Operation>> => {
    const input = FastCheck.integer({ min: 0, max: Math.max(0, spec.inputs.length - 1) })
    const ops: Array<FastCheck.WeightedArbitrary<T.Operation>> = [
      { weight: weight.read, arbitrary: FastCheck.record({ _tag: FastCheck.constant("Read" as const), job: FastCheck.constant(job), input }) }
    ]
    if (writes) {
      if (spec.value !== undefined) {
        ops.push({
          weight: weight.set,
          arbitrary: FastCheck.record({ _tag: FastCheck.constant("Set" as const), job: FastCheck.constant(job), input, value: FastCheck.nat({ max: 1_000 }) })
        })
      }
      ops.push(
        { weight: weight.delete, arbitrary: FastCheck.record({ _tag: FastCheck.constant("Delete" as const), job: FastCheck.constant(job), input }) },
        { weight: weight.invalidate, arbitrary: FastCheck.record({ _tag: FastCheck.constant("Invalidate" as const), job: FastCheck.constant(job), input }) }
      )
      if (spec.tags !== undefined && spec.tags.length > 0) {
        ops.push({
          weight: weight.invalidateTags,
          arbitrary: FastCheck.record({
            _tag: FastCheck.constant("InvalidateTags" as const),
            job: FastCheck.constant(job),
            tags: FastCheck.subarray([...spec.tags], { minLength: 1 })
          })
        })
      }
    }
    return ops.filter((op) => op.weight > 0)
  })
  if (operations.length === 0) throw new RangeError("Simulation.schedules: weights leave no operation to draw: give one a positive weight")
  const operation: FastCheck.Arbitrary<T.Step> = FastCheck.record({
    at,
    actor: FastCheck.constantFrom(...processes),
    action: FastCheck.oneof(...operations)
  })

  const duration = (max: number) => FastCheck.integer({ min: 50, max })
  const anyone = FastCheck.constantFrom(...processes, ...workers)
  const byKind: Record<T.Fault["_tag"], FastCheck.Arbitrary<T.Step>> = {
    Crash: FastCheck.oneof(
      FastCheck.record({ at, actor: anyone, action: FastCheck.record({ _tag: FastCheck.constant("Crash" as const), duration: duration(5_000) }) }),
      ...(workers.length > 0
        ? [FastCheck.record({
          at,
          actor: FastCheck.constantFrom(...workers),
          action: FastCheck.record({ _tag: FastCheck.constant("Crash" as const), duration: duration(5_000), midRefresh: FastCheck.constant(true) })
        })]
        : [])
    ),
    Partition: FastCheck.record({
      at,
      actor: anyone,
      action: FastCheck.oneof(
        FastCheck.record({ _tag: FastCheck.constant("Partition" as const), duration: duration(5_000), mode: FastCheck.constant("down" as const) }),
        FastCheck.record({
          _tag: FastCheck.constant("Partition" as const),
          duration: duration(5_000),
          mode: FastCheck.constant("slow" as const),
          slow: FastCheck.integer({ min: 10, max: 3_000 })
        })
      )
    }),
    Invalidations: FastCheck.record({
      at,
      actor: FastCheck.constantFrom(...processes),
      action: FastCheck.oneof(
        FastCheck.record({
          _tag: FastCheck.constant("Invalidations" as const),
          duration: duration(3_000),
          mode: FastCheck.constant("delay" as const),
          delay: FastCheck.integer({ min: 1, max: 400 })
        }),
        FastCheck.record({ _tag: FastCheck.constant("Invalidations" as const), duration: duration(3_000), mode: FastCheck.constant("lose" as const) })
      )
    }),
    Origin: FastCheck.record({
      at,
      actor: FastCheck.constant("origin"),
      action: FastCheck.oneof(
        FastCheck.record({ _tag: FastCheck.constant("Origin" as const), duration: duration(5_000), mode: FastCheck.constantFrom("fail" as const, "hang" as const) }),
        FastCheck.record({
          _tag: FastCheck.constant("Origin" as const),
          duration: duration(5_000),
          mode: FastCheck.constant("slow" as const),
          latency: FastCheck.integer({ min: 10, max: 3_000 })
        })
      )
    })
  }
  const faults = kinds.length === 0
    ? FastCheck.constant<Array<T.Step>>([])
    : FastCheck.array(FastCheck.oneof(...kinds.map((kind) => byKind[kind])), { maxLength: options.maxFaults ?? 3, size: "max" })
  return FastCheck.record({
    seed: FastCheck.integer(),
    // Lengths drawn across the whole range (fast-check's default keeps arrays near 10): a race
    // needs steps close together. Shrinking still goes toward the fewest.
    steps: FastCheck.array(operation, { minLength: range.min, maxLength: range.max, size: "max" }),
    faults
  }).map(({ faults, seed, steps }) => ({ seed, steps: [...steps, ...faults].sort((a, b) => a.at - b.at) }))
}
