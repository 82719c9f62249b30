import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Random, Schema } from "effect"
import * as FastCheck from "effect/FastCheck"
import { Job } from "effect-cacheback"
import { Simulation } from "effect-cacheback/testing"
import * as Scripts from "../src/redis/internal/scripts.js"
import * as Tags from "../src/redis/internal/tags.js"
import * as Mirrors from "../src/testing/internal/scripts.js"

// Values tell their fetch apart: each fetch draws from its process's seeded Random.
const article = Job.make({
  name: "article",
  fetch: (id: string) => Effect.map(Random.nextIntBetween(0, 1_000_000), (n) => `${id}@${n}`)
}).pipe(
  Job.withSchema({ input: Schema.String, value: Schema.String }),
  Job.withLifetime("2 seconds"),
  Job.withStaleRefresh({ syncAfter: "6 seconds" }),
  Job.withStaleIfError("20 seconds")
)

const deployment = (near: boolean) =>
  Simulation.make({
    jobs: [{ job: article, inputs: ["a", "b"], value: (input: string, n: number) => `${input}=set${n}` }],
    processes: 4,
    workers: 2,
    originLatency: { min: 5, max: 300 },
    ...(near ? { nearCache: { capacity: 100 } } : {})
  })

const invariants = [
  Simulation.noLostWrite,
  Simulation.noStampede(),
  Simulation.availability,
  Simulation.boundedStaleness,
  Simulation.liveness(),
  Simulation.monotonicReads,
  Simulation.boundedBackgroundWork()
]

describe("Simulation", () => {
  it("mirrors every Lua script of the Redis store", () => {
    const scripts = [Scripts.compareAndSet, Scripts.acquire, Scripts.peek, Scripts.renew, Scripts.release].map((s) => s.sha)
    const tags = [Tags.tokensOrCreate, Tags.invalidateAll].map(Mirrors.shaOf)
    for (const sha of [...scripts, ...tags]) expect(Mirrors.bySha.has(sha)).toBe(true)
  })

  it("gives the same trace, byte for byte, for the same schedule", () => {
    const d = deployment(true)
    const [schedule] = FastCheck.sample(Simulation.schedules(d, { steps: 60, span: 5_000 }), { seed: 11, numRuns: 1 })
    const once = JSON.stringify(Effect.runSync(Simulation.run(d, schedule!)))
    const twice = JSON.stringify(Effect.runSync(Simulation.run(d, schedule!)))
    expect(twice).toBe(once)
  })

  it("shares one fetch among 4 processes reading a cold key", () => {
    const d = deployment(false)
    const steps = ["p0", "p1", "p2", "p3"].map((actor) => ({ at: 0, actor, action: { _tag: "Read" as const, job: 0, input: 0 } }))
    const trace = Effect.runSync(Simulation.run(d, { seed: 1, steps }))
    expect(trace.records.filter((r) => r._tag === "Fetch")).toHaveLength(1)
    const reads = trace.records.filter((r) => r._tag === "Read")
    expect(new Set(reads.map((r) => r._tag === "Read" && r.value)).size).toBe(1)
  })

  it.effect("keeps the distributed promises on generated schedules with faults", () =>
    Simulation.check(deployment(false), { invariants, runs: 15, seed: 3, schedules: { steps: 80, span: 5_000 } }))

  it.effect("keeps them with a near tier", () =>
    Simulation.check(deployment(true), { invariants, runs: 15, seed: 4, schedules: { steps: 80, span: 5_000 } }))

  it("fails with a replay token and the shrunk schedule as a timeline", () => {
    const d = deployment(false)
    // A checker of the user's own: no key is ever set.
    const neverSet: Simulation.Invariant = {
      name: "neverSet",
      check: (trace) =>
        trace.records.flatMap((r) => (r._tag === "Write" && r.op === "set" ? [{ invariant: "neverSet", at: r.at, message: "a set" }] : []))
    }
    const exit = Effect.runSyncExit(Simulation.check(d, { invariants: [neverSet], runs: 50, seed: 5, schedules: { steps: 20, faults: false } }))
    expect(Exit.isFailure(exit)).toBe(true)
    const failure = Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error : undefined
    expect(failure?.message).toContain("neverSet")
    expect(failure?.timeline).toContain("set ")
    const replayed = Effect.runSync(Simulation.replay(d, failure!.token, { invariants: [neverSet], schedules: { steps: 20, faults: false } }))
    // Shrunk to a step or two, among them the set that breaks it.
    expect(replayed.schedule.steps.length).toBeLessThanOrEqual(2)
    expect(replayed.schedule.steps.some((step) => step.action._tag === "Set")).toBe(true)
    expect(replayed.violations.length).toBeGreaterThan(0)
  })
})
