/**
 * The simulation on itself: its mirrors of the Redis scripts, its determinism, its failure
 * report, and the README's distributed promises as properties over generated schedules
 * (test/support/simulation.ts, which scripts/mutations.ts also runs against mutated engines).
 */
import { describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { Effect, Exit } from "effect"
import * as FastCheck from "effect/FastCheck"
import { Simulation } from "effect-cacheback/testing"
import * as Scripts from "../src/redis/internal/scripts.js"
import * as Tags from "../src/redis/internal/tags.js"
import * as Mirrors from "../src/testing/internal/scripts.js"
import { deployment, properties } from "./support/simulation.js"

const run = promisify(execFile)

describe("Simulation", () => {
  it("mirrors every Lua script of the Redis store", () => {
    const scripts = [Scripts.compareAndSet, Scripts.acquire, Scripts.peek, Scripts.renew, Scripts.release].map((s) => s.sha)
    const tags = [Tags.tokensOrCreate, Tags.invalidateAll].map(Mirrors.shaOf)
    for (const sha of [...scripts, ...tags]) expect(Mirrors.bySha.has(sha)).toBe(true)
  })

  it("gives the same trace, byte for byte, for the same schedule: twice here, and once in another process", async () => {
    const d = deployment({ near: true })
    const [schedule] = FastCheck.sample(Simulation.schedules(d, { steps: 60, span: 5_000 }), { seed: 11, numRuns: 1 })
    const once = JSON.stringify(Effect.runSync(Simulation.run(d, schedule!)))
    const twice = JSON.stringify(Effect.runSync(Simulation.run(d, schedule!)))
    expect(twice).toBe(once)
    const { stdout } = await run(process.execPath, ["--import", "tsx", fileURLToPath(new URL("fixtures/simulation-trace.ts", import.meta.url)), "11", "1"], {
      maxBuffer: 64 * 1024 * 1024
    })
    expect(stdout).toBe(once)
  })

  it("shares one fetch among 4 processes reading a cold key", () => {
    const steps = ["p0", "p1", "p2", "p3"].map((actor) => ({ at: 0, actor, action: { _tag: "Read" as const, job: 0, input: 0 } }))
    const trace = Effect.runSync(Simulation.run(deployment(), { seed: 1, steps }))
    expect(trace.records.filter((r) => r._tag === "Fetch")).toHaveLength(1)
    const reads = trace.records.filter((r) => r._tag === "Read")
    expect(new Set(reads.map((r) => r._tag === "Read" && r.value)).size).toBe(1)
  })

  it("regression: an invalidate of an absent key while a fetch of it runs is not lost (found by the simulation)", () => {
    // The shrunk schedule: the fetch of p0's first read stored its value while the invalidate
    // ran, so the invalidate's tombstone (over "nothing") was refused, and the value, fetched
    // before the invalidate, stayed fresh for its lifetime with no refresh asked for.
    const steps: Array<Simulation.Step> = [
      { at: 0, actor: "p0", action: { _tag: "Read", job: 0, input: 0 } },
      { at: 8, actor: "p0", action: { _tag: "Read", job: 0, input: 0 } },
      { at: 91, actor: "p0", action: { _tag: "Invalidate", job: 0, input: 0 } },
      { at: 96, actor: "p0", action: { _tag: "Read", job: 0, input: 0 } }
    ]
    const d = deployment()
    const trace = Effect.runSync(Simulation.run(d, { seed: 0, steps }))
    const invalidate = trace.records.find((r) => r._tag === "Write" && r.op === "invalidate")!
    const fetched = trace.records.find((r) => r._tag === "Stored" && r.entry === "Value")!
    // The race itself: the fetch's value landed while the invalidate ran.
    expect(fetched.at).toBeGreaterThanOrEqual(invalidate.at)
    expect(fetched.at).toBeLessThanOrEqual((invalidate as { end: number }).end)
    // The invalidate went again over it: a refresh was asked for, and a new value landed.
    expect(trace.records.some((r) => r._tag === "Task" && r.event === "enqueued" && r.at >= invalidate.at)).toBe(true)
    const values = trace.records.filter((r) => r._tag === "Stored" && r.entry === "Value").map((r) => r._tag === "Stored" && r.value)
    expect(new Set(values).size).toBeGreaterThan(1)
  })

  describe("the README's distributed promises, on generated schedules", () => {
    properties.forEach((property, i) => {
      it.effect(property.name, () =>
        Simulation.check(property.deployment, { invariants: property.invariants, schedules: property.schedules, runs: 12, seed: 100 + i }))
    })
  })

  it("fails with a replay token and the shrunk schedule as a timeline", () => {
    const d = deployment()
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
