/**
 * Does the simulation have teeth? Applies, one at a time, a fault to the engine code every
 * store shares, in a scratch copy of `src/`, and runs the simulated properties of
 * test/support/simulation.ts on it under 5 fixed seeds, 100 schedules each: every mutation
 * must be caught under every seed. Prints the table mutation → property → schedules run
 * until the first failure. The unmutated engine is run first: its properties must hold.
 *
 *   npx tsx scripts/mutations.ts [--runs 100] [--seeds 1,2,3,4,5] [--only <mutation>]
 *
 * Exits 1 when the unmutated engine fails a property or a mutation survives a seed.
 */
import { execFileSync, spawn } from "node:child_process"
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { availableParallelism, tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

interface Mutation {
  readonly name: string
  readonly file: string
  readonly find: string
  readonly replace: string
  /** The properties that state what the mutation breaks, tried in order. */
  readonly caughtBy: ReadonlyArray<string>
}

const mutations: ReadonlyArray<Mutation> = [
  {
    name: "compare-and-set skipped",
    file: "src/internal/fetch.ts",
    find: "return store.compareAndSet === undefined || expected === undefined",
    replace: "return true",
    caughtBy: ["no write lost to an older fetch", "near coherence"]
  },
  {
    name: "cross-process claim skipped",
    file: "src/internal/fetch.ts",
    find: "const claim = target.job.singleFlight === \"cluster\" ? target.store.claim : undefined",
    replace: "const claim = undefined as typeof target.store.claim",
    caughtBy: ["one fetch across processes"]
  },
  {
    name: "near-tier invalidations ignored",
    file: "src/redis/internal/tracking.ts",
    find: "near.invalidate(entry)",
    replace: "void entry",
    caughtBy: ["near coherence"]
  },
  {
    name: "a fetch after a write joins one begun before it",
    file: "src/internal/fetch.ts",
    find: "`${token}|${target.key}`",
    replace: "target.key",
    caughtBy: ["no write lost to an older fetch", "near coherence"]
  }
]

interface Outcome {
  readonly seed: number
  readonly property: string
  /** Schedules run until the first failure, or undefined when all passed. */
  readonly failedAfter: number | undefined
  readonly millis: number
}

const root = resolve(fileURLToPath(new URL("..", import.meta.url)))
const args = process.argv.slice(2)
const option = (name: string) => {
  const at = args.indexOf(`--${name}`)
  return at < 0 ? undefined : args[at + 1]
}
const runs = Number(option("runs") ?? 100)
const seeds = (option("seeds") ?? "1,2,3,4,5").split(",").map(Number)

/** In a child: runs `properties` under `seeds` and prints one JSON outcome per line. */
const child = async (properties: ReadonlyArray<string>, stopAtFirst: boolean) => {
  const { Effect, Exit } = await import("effect")
  const { Simulation } = await import("effect-cacheback/testing")
  const Support = await import(join(process.cwd(), "test/support/simulation.ts"))
  for (const seed of seeds) {
    for (const name of properties) {
      const property = (Support.properties as ReadonlyArray<import("../test/support/simulation.js").Property>).find((p) => p.name === name)!
      const started = performance.now()
      const exit = Effect.runSyncExit(
        Simulation.check(property.deployment, { invariants: property.invariants, schedules: property.schedules, runs, seed, shrink: false })
      )
      const failedAfter = Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error.runs : undefined
      if (Exit.isFailure(exit) && failedAfter === undefined) throw new Error(`${name}: ${String(exit.cause)}`)
      const outcome: Outcome = { seed, property: name, failedAfter, millis: Math.round(performance.now() - started) }
      process.stdout.write(`${JSON.stringify(outcome)}\n`)
      if (stopAtFirst && failedAfter !== undefined) break
    }
  }
}

/** A scratch copy of the package with `mutation` applied. */
const sandbox = (mutation: Mutation) => {
  const dir = mkdtempSync(join(tmpdir(), "cacheback-mutation-"))
  for (const path of ["src", "test/support", "package.json", "tsconfig.json"]) cpSync(join(root, path), join(dir, path), { recursive: true })
  symlinkSync(join(root, "node_modules"), join(dir, "node_modules"))
  const file = join(dir, mutation.file)
  const text = readFileSync(file, "utf8")
  if (text.split(mutation.find).length !== 2) throw new Error(`${mutation.name}: expected "${mutation.find}" once in ${mutation.file}: update the mutation`)
  writeFileSync(file, text.replace(mutation.find, mutation.replace))
  return dir
}

const runChild = (cwd: string, properties: ReadonlyArray<string>, stopAtFirst: boolean) =>
  new Promise<ReadonlyArray<Outcome>>((done, failed) => {
    const tsx = join(root, "node_modules/.bin/tsx")
    const proc = spawn(tsx, [join(cwd, "scripts/mutations.ts"), "--child", JSON.stringify({ properties, stopAtFirst }), "--runs", String(runs), "--seeds", seeds.join(",")], {
      cwd,
      stdio: ["ignore", "pipe", "inherit"]
    })
    let out = ""
    proc.stdout.on("data", (chunk) => (out += chunk))
    proc.on("exit", (code) =>
      code === 0
        ? done(out.trim().split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as Outcome))
        : failed(new Error(`the run in ${cwd} exited with ${code}`)))
  })

/** Runs `tasks` at most `width` at a time. */
const pool = async <A>(tasks: ReadonlyArray<() => Promise<A>>, width: number): Promise<Array<A>> => {
  const results: Array<A> = new Array(tasks.length)
  let next = 0
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < tasks.length) {
      const i = next++
      results[i] = await tasks[i]!()
    }
  }))
  return results
}

const main = async () => {
  const only = option("only")
  const chosen = mutations.filter((m) => only === undefined || m.name.includes(only))
  const { properties } = await import("../test/support/simulation.js")
  const width = Math.max(1, availableParallelism())
  console.log(`${chosen.length} mutations × ${seeds.length} seeds × at most ${runs} schedules, ${width} at a time (${execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root }).toString().trim()})`)

  const dirs = chosen.map((mutation) => {
    const dir = sandbox(mutation)
    cpSync(join(root, "scripts/mutations.ts"), join(dir, "scripts/mutations.ts"))
    return dir
  })
  try {
    const [baseline, ...mutated] = await pool([
      () => runChild(root, properties.map((p) => p.name), false),
      ...chosen.map((mutation, i) => () => runChild(dirs[i]!, mutation.caughtBy, true))
    ], width)
    let ok = true
    console.log("\nunmutated engine:")
    for (const outcome of baseline!) {
      if (outcome.failedAfter !== undefined) ok = false
      console.log(`  seed ${outcome.seed}  ${outcome.property}: ${outcome.failedAfter === undefined ? `held over ${runs} schedules` : `FAILED after ${outcome.failedAfter}`} (${outcome.millis} ms)`)
    }
    console.log("\n| mutation | seed | caught by | schedules to failure |\n|---|---|---|---|")
    chosen.forEach((mutation, i) => {
      for (const seed of seeds) {
        const caught = mutated[i]!.find((o) => o.seed === seed && o.failedAfter !== undefined)
        if (caught === undefined) ok = false
        console.log(`| ${mutation.name} | ${seed} | ${caught?.property ?? "—"} | ${caught?.failedAfter ?? `survived ${runs}`} |`)
      }
    })
    process.exitCode = ok ? 0 : 1
  } finally {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  }
}

const childAt = args.indexOf("--child")
if (childAt >= 0) {
  const { properties, stopAtFirst } = JSON.parse(args[childAt + 1]!) as { properties: ReadonlyArray<string>; stopAtFirst: boolean }
  await child(properties, stopAtFirst)
} else {
  await main()
}
