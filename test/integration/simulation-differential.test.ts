/**
 * The simulation against the real thing: a handful of fixed scenarios, each written once as
 * data (phases of operations at given offsets, and faults), run on `Simulation.run` and in
 * real time on real Redis and BullMQ, then compared once both are quiet:
 *
 * - the final value of each key (values say which fetch or `set` made them, `differential.ts`),
 * - the fetches of each key, and how many a process began (a read's) and a worker (a refresh),
 * - per phase, the set of statuses the reads answered (hit / stale / miss / failure) and the
 *   set of values they answered.
 *
 * The real deployment: 4 "processes", each an Effect runtime of its own in this test
 * process with its own `RedisCacheStore` (own connections, through a TCP proxy of its own,
 * which a `Partition` cuts) and `BullRefreshQueue` producer; 2 workers, each a
 * `RefreshWorker` in a child process (`differential-worker.ts`), so that a worker killed
 * mid-refresh is a SIGKILL. Both sides use the same job, fetch latency, store lock TTL,
 * BullMQ lock duration and stalled interval (`timing`).
 *
 * What real timing leaves open is kept out of the scenarios rather than compared: reads of
 * one phase are spaced so that each lands well inside the window its status belongs to (a
 * write-back landed, a refresh still running, a recovered value still fresh), with margins of
 * about 100 ms or more on both sides; the comments of each scenario say which race it avoids.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Queue } from "bullmq"
import { Duration, Effect, Exit, Layer, Logger, LogLevel, ManagedRuntime, Option } from "effect"
import { Job } from "effect-cacheback"
import { BullRefreshQueue, RedisCacheStore } from "effect-cacheback/redis"
import { Simulation } from "effect-cacheback/testing"
import type { Redis } from "ioredis"
import { redisUrl, requireService } from "../support/services.js"
import { counterKey, item, type Kind, label, redisOrigin, simulatedOrigin, timing, written } from "./fixtures/differential.js"
import { type Proxy, startProxy } from "./fixtures/proxy.js"
import { cleanUp, keyOf, rawClient, storedValue, unique } from "./fixtures/redis.js"

const up = await requireService("redis")

// --- scenarios as data ------------------------------------------------------------

type Action = Simulation.Operation | Simulation.Fault
type At = readonly [at: number, actor: string, action: Action]

interface Phase {
  readonly name: string
  /** Steps at absolute offsets (ms) from the scenario's start; the phase begins at its first. */
  readonly steps: ReadonlyArray<At>
}

interface Summary {
  readonly final: Record<string, string | null>
  readonly fetches: Record<string, { readonly total: number; readonly process: number; readonly worker: number }>
  readonly statuses: Record<string, ReadonlyArray<string>>
  readonly values: Record<string, ReadonlyArray<string>>
}

interface Scenario {
  readonly name: string
  readonly seed: number
  readonly phases: ReadonlyArray<Phase>
  /** What both sides must show: DESIGN.md's account of the scenario, so that agreeing on nothing cannot pass. */
  readonly expected: Summary
}

const inputs = ["a"] as const
const read = { _tag: "Read", job: 0, input: 0 } as const
const reads = (at: number, actors: ReadonlyArray<string>, times = 1): Array<At> =>
  actors.flatMap((actor) => Array.from({ length: times }, (): At => [at, actor, read]))
const all = ["p0", "p1", "p2", "p3"]
const { lifetime: L, fetch: F, lockDuration: LOCK, stalledInterval: STALLED } = timing
/**
 * p0's first read of a cold key stores fetch#1 at about F; it is stale from about F + L.
 * Real timing adds jitter everywhere: a worker took 5–70 ms to take a task on a busy
 * machine, a write-back a few ms to land. Each read below sits 100 ms or more inside the
 * window its status belongs to.
 */
const stale = F + L + 100
/** When a read has surely found a refresh, taken at `at`, done (F of fetch, up to 250 ms for a worker to take it). */
const refreshed = (at: number) => at + F + 250

const scenarios: ReadonlyArray<Scenario> = [
  {
    // The three that do not get the lock wait for the holder's value, polling (no near
    // tier): they answer it as misses too.
    name: "cold key read by 4 processes at once: one fetch, shared through the cross-process lock",
    seed: 1,
    phases: [
      { name: "cold", steps: reads(0, all) },
      { name: "warm", steps: reads(F + 150, all) }
    ],
    expected: {
      final: { a: "fetch#1" },
      fetches: { a: { total: 1, process: 1, worker: 0 } },
      statuses: { cold: ["miss"], warm: ["hit"] },
      values: { cold: ["fetch#1"], warm: ["fetch#1"] }
    }
  },
  {
    // p0's five reads find the stale value at once and leave one unit of background work
    // (write-back and enqueue); the other processes read 100 ms later, once the write-back
    // has landed and while the refresh runs (F), so they hit it. Stale reads in several
    // processes at one instant would each enqueue, and whether the later enqueues find the
    // task waiting (collapsed) or already taken by a worker (kept: a second refresh) is a
    // race between a worker's pickup and the network that neither side can fix.
    name: "stale storm: 20 reads of a stale key in 4 processes, one refresh by a worker",
    seed: 1,
    phases: [
      { name: "warm", steps: reads(0, ["p0"]) },
      { name: "storm", steps: [...reads(stale, ["p0"], 5), ...reads(stale + 100, ["p1", "p2", "p3"], 5)] },
      { name: "refreshed", steps: reads(refreshed(stale), all) }
    ],
    expected: {
      final: { a: "fetch#2" },
      fetches: { a: { total: 2, process: 1, worker: 1 } },
      statuses: { warm: ["miss"], storm: ["hit", "stale"], refreshed: ["hit"] },
      values: { warm: ["fetch#1"], storm: ["fetch#1"], refreshed: ["fetch#2"] }
    }
  },
  {
    // p2 and p3 lose Redis (their store's and their producer's connections) for 600 ms:
    // their reads are misses that fetch alone and store nothing, while p0 and p1 hit. 400 ms
    // after the heal (the store reconnects every 50 ms, as the simulated connections do;
    // BullMQ's producer backs off to 250 ms by then) p2 finds the value stale and enqueues,
    // and p3 hits the write-back.
    name: "store outage for 2 of 4 processes: they fetch alone, then rejoin",
    seed: 1,
    phases: [
      { name: "warm", steps: reads(0, ["p0"]) },
      {
        name: "outage",
        steps: [
          [F + 50, "p2", { _tag: "Partition", mode: "down", duration: 600 }],
          [F + 50, "p3", { _tag: "Partition", mode: "down", duration: 600 }],
          ...reads(F + 150, all)
        ]
      },
      { name: "healed", steps: [...reads(F + 1_050, ["p2"]), ...reads(F + 1_150, ["p3"])] },
      { name: "refreshed", steps: reads(refreshed(F + 1_050), all) }
    ],
    expected: {
      final: { a: "fetch#4" },
      fetches: { a: { total: 4, process: 3, worker: 1 } },
      statuses: { warm: ["miss"], outage: ["hit", "miss"], healed: ["hit", "stale"], refreshed: ["hit"] },
      values: { warm: ["fetch#1"], outage: ["fetch#1", "fetch#2", "fetch#3"], healed: ["fetch#1"], refreshed: ["fetch#4"] }
    }
  },
  {
    // The set lands F - 75 = 175 ms after the stale read: after the worker took the task and
    // read the entry's token (a few ms after the enqueue, up to 70 ms seen on a busy
    // machine), before the worker's store (F after it took the task), which the set's token
    // then refuses (DESIGN.md §3.2). A set before the worker reads the token would be
    // overwritten instead: the race this offset keeps clear of.
    name: "write during a refresh: the set stays, the refresh's store is refused",
    seed: 1,
    phases: [
      { name: "warm", steps: reads(0, ["p0"]) },
      {
        name: "refresh",
        steps: [...reads(stale, ["p0"]), ...reads(stale + 100, ["p2"]), [stale + F - 75, "p1", { _tag: "Set", job: 0, input: 0, value: 7 }]]
      },
      { name: "after", steps: reads(refreshed(stale), all) }
    ],
    expected: {
      final: { a: "set#7" },
      fetches: { a: { total: 2, process: 1, worker: 1 } },
      statuses: { warm: ["miss"], refresh: ["hit", "stale"], after: ["hit"] },
      values: { warm: ["fetch#1"], refresh: ["fetch#1"], after: ["set#7"] }
    }
  },
  {
    // The worker that takes the refresh dies as its fetch begins (the simulation's
    // `midRefresh`; here a SIGKILL when the worker process reports the fetch). Its task goes
    // back once its lock (LOCK) has expired, at the first stalled check (every STALLED)
    // after that (BullMQ 6.7's `moveStalledJobsToWait`, which the simulated queue follows),
    // so the other worker's value lands between LOCK + F and LOCK + STALLED + F after the
    // kill. The "recovered" reads come LOCK + 2 * STALLED + F + 150 after the stale read: a
    // check to spare, and within the lifetime of the earliest (L - 2 * STALLED - 150 = 250 ms).
    name: "worker killed mid-refresh: the task goes to the other worker after its lock expires",
    seed: 1,
    phases: [
      { name: "warm", steps: reads(0, ["p0"]) },
      {
        name: "refresh",
        steps: [[stale - 50, "w0", { _tag: "Crash", duration: 3_000, midRefresh: true }], ...reads(stale, ["p1"]), ...reads(stale + 100, ["p2"])]
      },
      { name: "recovered", steps: reads(stale + LOCK + 2 * STALLED + F + 150, all) }
    ],
    expected: {
      final: { a: "fetch#2" },
      fetches: { a: { total: 3, process: 1, worker: 2 } },
      statuses: { warm: ["miss"], refresh: ["hit", "stale"], recovered: ["hit"] },
      values: { warm: ["fetch#1"], refresh: ["fetch#1"], recovered: ["fetch#2"] }
    }
  }
]

const stepsOf = (scenario: Scenario): ReadonlyArray<At> =>
  scenario.phases.flatMap((phase) => phase.steps).slice().sort((a, b) => a[0] - b[0])

/** The phase a read scheduled at `at` belongs to: the last one begun by then. */
const phaseAt = (scenario: Scenario, at: number): string => {
  let name = scenario.phases[0]!.name
  for (const phase of scenario.phases) if (Math.min(...phase.steps.map((step) => step[0])) <= at) name = phase.name
  return name
}

const sortedSets = (entries: ReadonlyArray<readonly [string, string]>): Record<string, ReadonlyArray<string>> => {
  const sets: Record<string, Set<string>> = {}
  for (const [phase, value] of entries) (sets[phase] ??= new Set()).add(value)
  return Object.fromEntries(Object.entries(sets).map(([phase, set]) => [phase, [...set].sort()]))
}

// --- the simulated side -------------------------------------------------------------

const origin = simulatedOrigin()
const deployment = Simulation.make({
  jobs: [{ job: item, inputs, value: written }],
  layer: origin.layer,
  processes: 4,
  workers: 2,
  lockTtl: timing.lockTtl,
  queue: { lockDuration: LOCK, stalledInterval: STALLED },
  // The job's fetch has its own fixed latency (on both sides): the origin adds none.
  originLatency: { min: 0, max: 0 },
  settle: 1_000
})

const simulate = (scenario: Scenario) => {
  origin.reset()
  const schedule: Simulation.Schedule = {
    seed: scenario.seed,
    steps: stepsOf(scenario).map(([at, actor, action]) => ({ at, actor, action }))
  }
  const trace = Effect.runSync(Simulation.run(deployment, schedule))
  const records = trace.records
  const readsOf = records.flatMap((r) => (r._tag === "Read" ? [r] : []))
  const fetchesOf = records.flatMap((r) => (r._tag === "Fetch" ? [r] : []))
  const summary: Summary = {
    final: Object.fromEntries(inputs.map((input) => {
      const text = trace.final[keyOf(item, input)]
      return [input, text === null || text === undefined ? null : label(JSON.parse(text))]
    })),
    fetches: Object.fromEntries(inputs.map((input) => {
      const of = fetchesOf.filter((f) => f.key === keyOf(item, input))
      return [input, { total: of.length, process: of.filter((f) => f.actor.startsWith("p")).length, worker: of.filter((f) => f.actor.startsWith("w")).length }]
    })),
    statuses: sortedSets(readsOf.map((r) => [phaseAt(scenario, r.at), r.failure !== undefined ? "failure" : r.status ?? "unanswered"])),
    values: sortedSets(readsOf.map((r) => [phaseAt(scenario, r.at), r.failure !== undefined || r.value === undefined ? "failure" : label(JSON.parse(r.value))]))
  }
  return { trace, summary }
}

// --- the real side ------------------------------------------------------------------

const hostFile = fileURLToPath(new URL("./fixtures/differential-worker.ts", import.meta.url))
const root = fileURLToPath(new URL("../..", import.meta.url))

/**
 * How to start a worker process. Under tsx a process takes seconds to load the library's
 * sources (more than any scenario's real run, and several times that on a busy machine), so
 * the host is bundled into one file (in a temporary directory) by esbuild, which vite and tsx
 * already bring, and started by plain node in a fraction of a second; tsx when esbuild cannot
 * be loaded.
 */
const prepareHost = async (): Promise<{ readonly args: ReadonlyArray<string>; readonly dispose: () => void }> => {
  try {
    const esbuild = await import("esbuild")
    const dir = mkdtempSync(join(tmpdir(), "cbtest-differential-"))
    const outfile = join(dir, "worker.mjs")
    await esbuild.build({
      entryPoints: [hostFile],
      bundle: true,
      platform: "node",
      format: "esm",
      outfile,
      tsconfig: join(root, "tsconfig.json"),
      logLevel: "warning",
      // The CommonJS dependencies bundled into an ES module require Node's modules.
      banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" }
    })
    return { args: [outfile], dispose: () => rmSync(dir, { recursive: true, force: true }) }
  } catch {
    return { args: ["--import", "tsx", hostFile], dispose: () => undefined }
  }
}

interface Host {
  readonly who: string
  readonly child: ChildProcess
  readonly output: Array<string>
  readonly exited: Promise<void>
  /** Told when a fetch begins in the worker of a scenario, by its prefix. */
  readonly onBegan: Map<string, (host: Host) => void>
  readonly request: (type: "start" | "stop", message: Record<string, string>) => Promise<void>
}

let ids = 0
const spawnHost = (args: ReadonlyArray<string>, who: string): Promise<Host> => {
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { ...process.env, CACHEBACK_WHO: who, REDIS_URL: redisUrl },
    stdio: ["ignore", "pipe", "pipe", "ipc"]
  })
  const output: Array<string> = []
  const waiting = new Map<string, () => void>()
  child.stdout!.on("data", (chunk) => output.push(String(chunk)))
  child.stderr!.on("data", (chunk) => output.push(String(chunk)))
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  const host: Host = {
    who,
    child,
    output,
    exited,
    onBegan: new Map(),
    request: (type, message) =>
      new Promise<void>((resolve) => {
        waiting.set(`${type === "start" ? "started" : "stopped"}:${message.id}`, resolve)
        child.send({ type, ...message })
      })
  }
  return new Promise<Host>((resolve, reject) => {
    child.once("exit", (code, signal) => reject(new Error(`worker process ${who} exited before it was up (${code ?? signal}):\n${output.join("")}`)))
    child.on("message", (message: { readonly type: string; readonly id?: string; readonly prefix?: string }) => {
      if (message.type === "up") resolve(host)
      else if (message.type === "began") host.onBegan.get(message.prefix!)?.(host)
      else waiting.get(`${message.type}:${message.id}`)?.()
    })
  })
}

const alive = (host: Host) => host.child.exitCode === null && host.child.signalCode === null

const endHost = async (host: Host) => {
  if (!alive(host)) return
  host.child.disconnect()
  const timer = setTimeout(() => host.child.kill("SIGKILL"), 5_000)
  await host.exited
  clearTimeout(timer)
}

const sleepUntil = (deadline: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, deadline - performance.now())))

// The worker processes start at once, while vitest is still collecting this file: a process
// takes seconds to load the library (more than any scenario's real run).
const prepared = up ? prepareHost() : undefined
const spawning = prepared?.then(({ args }) => Promise.all([spawnHost(args, "w0"), spawnHost(args, "w1")]))
spawning?.catch(() => undefined) // reported by beforeAll

/** Two meeting points of `count` scenarios; one that waits 3 s for the rest goes on (a run filtered with `-t`). */
interface Gate {
  readonly ready: () => Promise<void>
  readonly done: () => Promise<void>
}
const gate = (count: number): Gate => {
  const point = () => {
    let arrived = 0
    let open: () => void = () => undefined
    const opened = new Promise<void>((resolve) => (open = resolve))
    return () => {
      if (++arrived === 1) setTimeout(open, 3_000).unref()
      if (arrived >= count) open()
      return opened
    }
  }
  return { ready: point(), done: point() }
}

/** A process of the real deployment: its store and producer through `url` (its proxy), the origin on Redis itself. */
const processLayer = (url: string, prefix: string, queueName: string) =>
  Layer.mergeAll(
    // Reconnecting every 50 ms, as the simulated connections do.
    RedisCacheStore.layer({ url, prefix, lockTtl: Duration.millis(timing.lockTtl), reconnectDelay: "50 millis" }),
    BullRefreshQueue.layer({ connection: { url }, queueName }),
    redisOrigin(redisUrl, prefix, "process"),
    // Store faults are logged as warnings, expected in an outage.
    Logger.minimumLogLevel(LogLevel.Error)
  )
type RuntimeServices = Layer.Layer.Success<ReturnType<typeof processLayer>>

const crashes = (scenario: Scenario) => scenario.phases.some((phase) => phase.steps.some(([, , action]) => action._tag === "Crash"))

describe.skipIf(!up)("the simulation agrees with real Redis and BullMQ", () => {
  const raw: Redis = rawClient()
  const prefixes: Array<string> = []
  const queues: Array<string> = []
  let hosts: Array<Host> = []
  const simulations = new Map<Scenario, ReturnType<typeof simulate>>()

  beforeAll(async () => {
    // The simulated runs first, while the worker processes start: each is one synchronous
    // call, which would stall the event loop of a real run going on beside it.
    for (const scenario of scenarios) simulations.set(scenario, simulate(scenario))
    hosts = await spawning!
  }, 30_000)
  afterAll(async () => {
    await Promise.all(hosts.map(endHost))
    ;(await prepared)?.dispose()
    await cleanUp(raw, prefixes, queues)
    raw.disconnect()
  }, 30_000)

  /**
   * Runs `scenario` in real time; `log` gets what happened, for a failure's report. The
   * scenarios of one `gate` begin their real time together, once all are set up, and tear
   * down together, once all are done: building a deployment (layers, connections, a
   * worker in each process) stalls the event loop for tens of ms, which would shift the
   * reads of another scenario running beside it.
   */
  const runReal = async (scenario: Scenario, log: Array<string>, gate: Gate): Promise<Summary> => {
    const prefix = unique("diff")
    const queueName = unique("diff")
    prefixes.push(prefix)
    queues.push(queueName)
    const workers: Array<{ readonly host: Host; readonly id: string }> = []
    const proxies: Array<Proxy> = []
    const runtimes: Array<ManagedRuntime.ManagedRuntime<RuntimeServices, never>> = []
    const bull = new Queue(queueName, { connection: raw.duplicate() })
    const answered: Array<readonly [phase: string, status: string, value: string]> = []
    const running: Array<Promise<unknown>> = []
    let killed = 0
    try {
      try {
        // A scenario that killed a worker process leaves one to replace.
        const { args } = await prepared!
        hosts = await Promise.all(hosts.map((host) => (alive(host) ? host : spawnHost(args, host.who))))
        await Promise.all(hosts.map(async (host) => {
          const id = `w${++ids}`
          workers.push({ host, id })
          await host.request("start", { id, prefix, queueName })
        }))
        // Each process reaches Redis through a proxy of its own, which its partition cuts.
        proxies.push(...await Promise.all(all.map(() => startProxy(redisUrl))))
        for (const proxy of proxies) runtimes.push(ManagedRuntime.make(processLayer(proxy.url, prefix, queueName)))
        await Promise.all(runtimes.map((runtime) => runtime.runtime()))
      } finally {
        await gate.ready()
      }
      const t0 = performance.now()
      const note = (line: string) => log.push(`${String(Math.round(performance.now() - t0)).padStart(5)} ms  ${line}`)
      /** Whether the next worker whose fetch begins dies (the simulation's armed `midRefresh`). */
      let armed = false
      for (const host of hosts) {
        host.onBegan.set(prefix, (h) => {
          note(`${h.who} begins a fetch${armed ? ": SIGKILL" : ""}`)
          if (!armed) return
          armed = false
          h.child.kill("SIGKILL")
          killed++
        })
      }

      // Heals are timed actions too, as the simulation's faults heal after their duration.
      const timed: Array<readonly [number, string, () => void]> = []
      for (const [at, actor, action] of stepsOf(scenario)) {
        const index = Number(actor.slice(1))
        switch (action._tag) {
          case "Read":
            timed.push([at, `${actor} reads`, () => {
              const phase = phaseAt(scenario, at)
              running.push(runtimes[index]!.runPromiseExit(Job.lookup(item, inputs[action.input]!)).then((exit) => {
                if (Exit.isSuccess(exit)) {
                  note(`${actor}'s read of ${at} (${phase}): ${exit.value.status} ${label(exit.value.value)}`)
                  answered.push([phase, exit.value.status, label(exit.value.value)])
                } else {
                  note(`${actor}'s read of ${at} (${phase}) failed: ${exit.cause}`)
                  answered.push([phase, "failure", "failure"])
                }
              }))
            }])
            break
          case "Set":
            timed.push([at, `${actor} sets ${action.value}`, () => {
              running.push(runtimes[index]!.runPromise(Job.set(item, inputs[action.input]!, written(inputs[action.input]!, action.value))))
            }])
            break
          case "Partition":
            if (action.mode !== "down") throw new Error(`only Partition { mode: "down" } has a real counterpart here`)
            timed.push([at, `${actor} loses Redis`, () => void proxies[index]!.cut()])
            timed.push([at + action.duration, `${actor} reaches Redis again`, () => void proxies[index]!.restore()])
            break
          case "Crash":
            // The simulation arms `actor` (the scenario checks that it took the task); here
            // the worker process whose fetch begins first dies: which of two alike workers
            // BullMQ hands the task to is not the simulation's to choose.
            if (action.midRefresh !== true) throw new Error("only Crash { midRefresh: true } has a real counterpart here")
            timed.push([at, "the next worker to begin a fetch will die", () => (armed = true)])
            break
          default:
            throw new Error(`no real counterpart for ${action._tag}`)
        }
      }
      timed.sort((a, b) => a[0] - b[0])
      for (const [at, what, run] of timed) {
        await sleepUntil(t0 + at)
        note(`${what} (scheduled at ${at})`)
        run()
      }

      // Quiet: every operation answered, and nothing waiting, active or delayed in the queue
      // twice in a row 100 ms apart (a kept task is added when the one before it completes).
      await Promise.all(running)
      const deadline = performance.now() + 8_000
      for (let calm = 0; calm < 2;) {
        if (performance.now() > deadline) throw new Error("the real deployment is not quiet 8 s after its last step")
        await new Promise((resolve) => setTimeout(resolve, 100))
        const counts = await bull.getJobCounts("waiting", "active", "delayed", "prioritized", "waiting-children")
        calm = Object.values(counts).every((n) => n === 0) ? calm + 1 : 0
      }
      note("quiet")
      if (crashes(scenario)) expect(killed, "a worker process was killed as its fetch began").toBe(1)

      const final = await runtimes[0]!.runPromise(Effect.forEach(inputs, (input) => storedValue(item, input)))
      const count = async (what: "completed" | Kind, input: string) => Number((await raw.get(counterKey(prefix, what, input))) ?? 0)
      const fetches: Record<string, Summary["fetches"][string]> = {}
      for (const input of inputs) {
        const [byProcess, byWorker] = [await count("process", input), await count("worker", input)]
        fetches[input] = { total: byProcess + byWorker, process: byProcess, worker: byWorker }
      }
      return {
        final: Object.fromEntries(inputs.map((input, i) => [input, Option.match(final[i]!, { onNone: () => null, onSome: label })])),
        fetches,
        statuses: sortedSets(answered.map(([phase, status]) => [phase, status])),
        values: sortedSets(answered.map(([phase, , value]) => [phase, value]))
      }
    } finally {
      for (const host of hosts) host.onBegan.delete(prefix)
      await Promise.allSettled(running)
      await gate.done()
      await Promise.all(workers.map(({ host, id }) => (alive(host) ? host.request("stop", { id }) : undefined)))
      await Promise.all(runtimes.map((runtime) => runtime.dispose()))
      await Promise.all(proxies.map((proxy) => proxy.close()))
      await bull.close()
    }
  }

  // The scenarios without a crash run at once, each with its own prefix, queue, proxies and
  // workers (in the two shared worker processes), which keeps the suite short; the crash,
  // which kills one of those processes, runs after them, alone.
  const together = scenarios.filter((s) => !crashes(s))
  const gates = new Map<Scenario, Gate>()
  const shared = gate(together.length)
  for (const scenario of together) gates.set(scenario, shared)
  for (const scenario of scenarios.filter(crashes)) gates.set(scenario, gate(1))
  for (const scenario of [...together, ...scenarios.filter(crashes)]) {
    const test = crashes(scenario) ? it : it.concurrent
    test(scenario.name, async ({ expect, onTestFailed }) => {
      const log: Array<string> = []
      const simulated = simulations.get(scenario)!
      onTestFailed(() => {
        console.log(
          `--- ${scenario.name}: the simulated run ---\n${Simulation.timeline(simulated.trace)}\n` +
            `--- the real run ---\n${log.join("\n")}`
        )
        for (const host of hosts) console.log(`--- output of worker process ${host.who} ---\n${host.output.join("")}`)
      })
      expect(simulated.trace.settled).toBe(true)
      if (crashes(scenario)) {
        // The scenario's point: the armed worker took the task, died as its fetch began, and
        // its task stalled and went back to the queue.
        expect(simulated.trace.records.some((r) => r._tag === "Crashed")).toBe(true)
        expect(simulated.trace.records.some((r) => r._tag === "Task" && r.event === "stalled")).toBe(true)
      }
      const real = await runReal(scenario, log, gates.get(scenario)!)
      // The differential: once both are quiet, they agree on everything compared.
      expect(real).toEqual(simulated.summary)
      // And what they agree on is the scenario's point, so that agreeing on nothing fails.
      expect(simulated.summary).toEqual(scenario.expected)
    }, 20_000)
  }
})
