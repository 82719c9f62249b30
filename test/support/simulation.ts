/**
 * The README's distributed promises as simulated properties: each a deployment, the
 * invariants that state the promise, and schedules dense enough to reach its races (one or
 * two keys, fetches slower than the gaps between steps, writes as often as reads where a
 * write is the subject). test/Simulation.test.ts runs each at a few schedules;
 * scripts/mutations.ts runs them at 100 schedules under 5 seeds against mutated engines.
 */
import { Effect, Random, Schema } from "effect"
import { Job } from "effect-cacheback"
import { Simulation } from "effect-cacheback/testing"

/** Each fetch's value tells it apart: it draws from its process's seeded `Random`. */
export const article = Job.make({
  name: "article",
  fetch: (id: string) => Effect.map(Random.nextIntBetween(0, 1_000_000), (n) => `${id}@${n}`)
}).pipe(
  Job.withSchema({ input: Schema.String, value: Schema.String }),
  Job.withLifetime("2 seconds"),
  Job.withStaleRefresh({ syncAfter: "6 seconds" }),
  Job.withStaleIfError("20 seconds"),
  Job.withTags((id: string) => ["all", `t-${id}`])
)

export const deployment = (options: { readonly near?: boolean; readonly inputs?: ReadonlyArray<string> } = {}) =>
  Simulation.make({
    jobs: [{ job: article, inputs: options.inputs ?? ["a", "b"], value: (input: string, n: number) => `${input}=set${n}`, tags: ["all", "t-a", "t-b"] }],
    processes: 4,
    workers: 2,
    originLatency: { min: 20, max: 400 },
    ...(options.near ? { nearCache: { capacity: 100 } } : {})
  })

export interface Property {
  readonly name: string
  readonly deployment: Simulation.Deployment
  readonly invariants: ReadonlyArray<Simulation.Invariant>
  readonly schedules: Simulation.ScheduleOptions
}

/** Writes as often as reads, on one key, within a few fetches' time. */
const writeHeavy = { read: 3, set: 2, delete: 2, invalidate: 1, invalidateTags: 1 }

export const properties: ReadonlyArray<Property> = [
  {
    name: "one fetch across processes",
    deployment: deployment({ inputs: ["a"] }),
    invariants: [Simulation.noStampede()],
    schedules: { steps: 40, span: 3_000, faults: false, weights: { read: 8, set: 0, delete: 1, invalidate: 1 } }
  },
  {
    name: "no write lost to an older fetch",
    deployment: deployment({ inputs: ["a"] }),
    invariants: [Simulation.noLostWrite],
    schedules: { steps: 40, span: 3_000, faults: false, weights: writeHeavy }
  },
  {
    name: "invalidations honoured",
    deployment: deployment(),
    invariants: [Simulation.invalidationsHonoured],
    schedules: { steps: 40, span: 3_000, faults: false, weights: { read: 4, set: 1, delete: 0, invalidate: 1, invalidateTags: 1 } }
  },
  {
    name: "near coherence",
    deployment: deployment({ near: true, inputs: ["a"] }),
    invariants: [Simulation.noLostWrite, Simulation.monotonicReads, Simulation.invalidationsHonoured],
    schedules: { steps: 40, span: 3_000, faults: ["Invalidations"], maxFaults: 1, weights: writeHeavy }
  },
  {
    name: "stale-if-error",
    deployment: deployment(),
    invariants: [Simulation.availability, Simulation.boundedStaleness],
    schedules: { steps: 60, span: 15_000, faults: ["Origin"], maxFaults: 2, writes: false }
  },
  {
    name: "a dead worker's refresh lands",
    deployment: deployment(),
    invariants: [Simulation.liveness()],
    schedules: { steps: 40, span: 10_000, faults: ["Crash"], maxFaults: 2, writes: false }
  },
  {
    name: "bounded background work",
    deployment: deployment({ inputs: ["a"] }),
    invariants: [Simulation.boundedBackgroundWork()],
    schedules: { steps: 60, span: 10_000, faults: false, writes: false }
  },
  {
    name: "every promise under every fault",
    deployment: deployment(),
    invariants: [
      Simulation.noLostWrite,
      Simulation.invalidationsHonoured,
      Simulation.noStampede(),
      Simulation.availability,
      Simulation.boundedStaleness,
      Simulation.liveness(),
      Simulation.monotonicReads,
      Simulation.boundedBackgroundWork()
    ],
    schedules: { steps: 80, span: 5_000 }
  }
]
