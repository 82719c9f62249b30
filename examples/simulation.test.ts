// Your job and its policies in a simulated deployment (npx vitest run examples/simulation.test.ts)
import { it } from "@effect/vitest"
import { Effect, Random, Schema } from "effect"
import { Job } from "effect-cacheback"
import { Simulation } from "effect-cacheback/testing"

const price = Job.make({
  name: "price",
  fetch: (sku: string) => Effect.map(Random.nextIntBetween(1, 10_000), (cents) => ({ sku, cents }))
}).pipe(
  Job.withSchema({ input: Schema.String, value: Schema.Struct({ sku: Schema.String, cents: Schema.Number }) }),
  Job.withLifetime("5 seconds"),
  Job.withStaleRefresh({ syncAfter: "30 seconds" }),
  Job.withStaleIfError("10 minutes")
)

const deployment = Simulation.make({
  jobs: [{ job: price, inputs: ["apple", "pear"], value: (sku: string, n: number) => ({ sku, cents: n }) }],
  processes: 4,
  workers: 2,
  nearCache: { capacity: 1_000 }
})

it.effect("prices stay available, one fetch at a time, and no write is lost", () =>
  Simulation.check(deployment, {
    invariants: [Simulation.availability, Simulation.noStampede(), Simulation.noLostWrite],
    runs: 10,
    schedules: { steps: 80, span: 30_000, maxFaults: 3 }
  }))
