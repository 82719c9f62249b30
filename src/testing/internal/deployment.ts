/**
 * A simulated deployment (DESIGN.md §11): processes and workers, each an Effect runtime of
 * its own running the library unchanged (`RedisCacheStore` with its engine, near tier and
 * tracking; `RefreshWorker`'s attempt), over one simulated Redis and queue, on one world's
 * clock and scheduler; a schedule's steps applied at their times; everything recorded.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as HashSet from "effect/HashSet"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Random from "effect/Random"
import * as Runtime from "effect/Runtime"
import * as Schema from "effect/Schema"
import type { Redis } from "ioredis"
import * as CacheStore from "../../CacheStore.js"
import * as Entry from "../../Entry.js"
import { EnqueueError } from "../../Errors.js"
import { describe } from "../../internal/describe.js"
import { Throttle } from "../../internal/faults.js"
import { withFetch } from "../../internal/job.js"
import * as Job from "../../Job.js"
import * as RedisCacheStore from "../../redis/RedisCacheStore.js"
import * as Attempt from "../../redis/internal/attempt.js"
import * as Keys from "../../redis/internal/keys.js"
import * as TaskData from "../../redis/internal/task.js"
import * as Wire from "../../redis/internal/wire.js"
import { defaultAttempts, defaultBackoff, RefreshQueue } from "../../RefreshQueue.js"
import { SimulatedQueue, type WorkerSlot, type QueueSettings } from "./queue.js"
import { type Connection, type Latency, type Link, SimulatedRedis } from "./redis.js"
import type * as T from "./trace.js"
import { type Actor, forever, World } from "./world.js"

/** A job of the deployment, the inputs its steps read, and what `set` writes. */
export interface JobSpec {
  readonly job: Job.Job.Any
  readonly inputs: ReadonlyArray<unknown>
  readonly value?: ((input: any, n: number) => unknown) | undefined
  readonly tags?: ReadonlyArray<string> | undefined
}

export interface Settings {
  readonly jobs: ReadonlyArray<JobSpec>
  readonly layer: Layer.Layer<any> | undefined
  readonly processes: number
  readonly workers: number
  readonly workerConcurrency: number
  readonly near: { readonly capacity: number } | undefined
  readonly lockTtl: number
  readonly commandTimeout: number
  readonly queue: QueueSettings
  readonly latency: Latency
  readonly originLatency: Latency
  readonly settle: number
  readonly maxSteps: number
}

/** An origin that fails on the schedule's order. */
export class OriginFault extends Schema.TaggedError<OriginFault>("effect-cacheback/testing/OriginFault")("OriginFault", {
  job: Schema.String,
  key: Schema.String
}) {
  override get message(): string {
    return `the simulated origin fails "${this.key}" of job "${this.job}" (a fault of the schedule)`
  }
}

/** The actor a fiber runs in, for the origin's wrapper. */
class Here extends Context.Tag("effect-cacheback/testing/Here")<Here, {
  readonly fetch: <A, E, R>(job: Job.Job.Any, input: unknown, fetch: Effect.Effect<A, E, R>) => Effect.Effect<A, E | OriginFault, R>
}>() {}

const prefix = "sim"

interface Incarnation {
  readonly actor: Actor
  readonly link: Link
  readonly connections: Array<Connection>
  runtime: Runtime.Runtime<any> | undefined
  readonly waiting: Array<() => void>
}

/** The Redis store of a process over its simulated connection, as a `CacheStore` layer. */
export const storeOver = (
  client: Connection,
  options: Parameters<typeof RedisCacheStore.makeOver>[1]
): Layer.Layer<CacheStore.CacheStore> => Layer.scoped(CacheStore.CacheStore, RedisCacheStore.makeOver(client as unknown as Redis, options))

/** `program` on `actor`'s clock, with a Random seeded by `seed` (its fibers' draws differ by actor). */
export const inWorld = (world: World, actor: Actor, seed: string) => <A, E, R>(program: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  program.pipe(Effect.withClock(world.clockOf(actor)), Effect.withRandom(Random.make(seed)))

/** Forks `program` on `actor`'s scheduler when the world next runs tasks; `observe` is given the fiber. */
export const forkIn = <A, E>(world: World, actor: Actor, program: Effect.Effect<A, E>, observe?: (fiber: Fiber.RuntimeFiber<A, E>) => void): void =>
  world.task(actor, () => {
    const fiber = Effect.runFork(program, { scheduler: world.schedulerOf(actor) })
    if (observe !== undefined) observe(fiber)
  })

export const run = (settings: Settings, schedule: T.Schedule): T.Trace => {
  const world = new World(schedule.seed)
  const records: Array<T.TraceRecord> = []
  // Once the trace is taken, the teardown records nothing, and changes no record.
  let closed = false
  const push = <R extends T.TraceRecord>(record: R): R => {
    if (!closed) records.push(record)
    return record
  }
  // Every root fiber still running, interrupted at the teardown: Effect keeps each root fiber
  // until it exits, and with it the whole world it references.
  const roots = new Set<Fiber.RuntimeFiber<unknown, unknown>>()
  const rooted = <A, E>(fiber: Fiber.RuntimeFiber<A, E>): Fiber.RuntimeFiber<A, E> => {
    roots.add(fiber)
    fiber.addObserver(() => roots.delete(fiber))
    return fiber
  }
  const actors: Array<Actor> = []
  const layout = Keys.oneRedis(prefix)
  const redis = new SimulatedRedis(world, settings.latency, (redisKey, text) => {
    const key = layout.ofEntry(redisKey)
    if (key !== undefined) push(storedRecord(world.now, key, text))
  })
  const queue = new SimulatedQueue(world, settings.queue, (event) => push({ _tag: "Task", ...event }))

  // The jobs behind the origin's wrapper, which records each fetch and applies the faults.
  let origin: Extract<T.Fault, { _tag: "Origin" }> | undefined
  const armed = new Set<string>()
  const jobs = settings.jobs.map((spec) => ({
    spec,
    job: withFetch(spec.job, (input: unknown) =>
      Effect.flatMap(Here, (here) => here.fetch(spec.job, input, spec.job.fetch(input)))) as Job.Job.Any
  }))
  const byName = new Map(jobs.map(({ job }) => [job.name, job]))
  const keyOf = (spec: JobSpec, input: unknown) => Either.getOrElse(spec.job.key(input as never), () => "?")

  const names = [
    ...Array.from({ length: settings.processes }, (_, i) => `p${i}`),
    ...Array.from({ length: settings.workers }, (_, i) => `w${i}`)
  ]
  const current = new Map<string, Incarnation>()
  let incarnations = 0

  const start = (name: string) => {
    const actor: Actor = { name, alive: true }
    actors.push(actor)
    const link: Link = current.get(name)?.link ?? { mode: "up", slow: 0, invalidationDelay: 0 }
    const self: Incarnation = { actor, link, connections: [], runtime: undefined, waiting: [] }
    current.set(name, self)
    const connect = () => {
      const connection = redis.connect(actor, link)
      self.connections.push(connection)
      const duplicate = connection.duplicate.bind(connection)
      connection.duplicate = () => {
        const other = duplicate()
        self.connections.push(other)
        return other
      }
      return connection
    }
    const here = Here.of({
      fetch: (job, input, fetch) =>
        Effect.suspend(() => {
          const record = push<T.FetchRecord>({ _tag: "Fetch", at: world.now, actor: name, job: job.name, key: keyOf({ job, inputs: [] }, input) })
          if (armed.delete(name)) world.task(actor, () => crash(name))
          const latency = world.draws.between(settings.originLatency.min, settings.originLatency.max)
          const fault = origin
          const answer: Effect.Effect<any, any, any> = fault?.mode === "hang"
            ? forever
            : fault?.mode === "fail"
            ? Effect.zipRight(Effect.sleep(Duration.millis(latency)), Effect.fail(new OriginFault({ job: job.name, key: record.key })))
            : Effect.zipRight(Effect.sleep(Duration.millis(latency + (fault?.latency ?? 0))), fetch)
          return Effect.onExit(answer, (exit) =>
            Effect.sync(() => {
              if (closed) return
              record.end = world.now
              if (Exit.isSuccess(exit)) record.value = json(job, exit.value)
              else record.failure = describeExit(exit)
            }))
        })
    })
    const producer = RefreshQueue.of({
      enqueue: (task) =>
        Effect.suspend(() => {
          const data = TaskData.encode(task)
          if (Either.isLeft(data)) return Effect.fail(new EnqueueError({ job: task.job, key: task.key, reason: data.left }))
          const added = {
            key: task.key,
            data: data.right,
            attempts: task.options.attempts ?? defaultAttempts,
            backoff: task.options.backoff ?? defaultBackoff
          }
          return Effect.async<"enqueued" | "deduplicated", EnqueueError>((resume) =>
            bull.queue(() => queue.add(added), (error, answer) =>
              resume(
                error === null
                  ? Effect.succeed(answer)
                  : Effect.fail(new EnqueueError({ job: task.job, key: task.key, reason: `BullMQ refused the task: ${error.message}`, cause: error }))
              ))
          )
        }).pipe(
          Effect.timeoutFail({
            duration: Duration.seconds(1),
            onTimeout: () => new EnqueueError({ job: task.job, key: task.key, reason: "BullMQ did not answer within 1000 ms; is Redis reachable?" })
          })
        )
    })
    const client = connect()
    const bull = connect()
    const store = storeOver(client, {
      prefix,
      commandTimeout: Duration.millis(settings.commandTimeout),
      lockTtl: Duration.millis(settings.lockTtl),
      ...(settings.near !== undefined ? { nearCache: { capacity: settings.near.capacity } } : {})
    })
    const services = Layer.mergeAll(store, Layer.succeed(RefreshQueue, producer), Layer.succeed(Here, here))
    const layer = settings.layer === undefined ? services : Layer.merge(services, settings.layer)
    const logger = Logger.make(({ logLevel, message }) => {
      if (LogLevel.greaterThanEqual(logLevel, LogLevel.Warning)) {
        push({ _tag: "Log", at: world.now, actor: name, level: logLevel.label, message: logText(message) })
      }
    })
    const program = Layer.toRuntime(layer).pipe(
      Effect.flatMap((runtime) =>
        Effect.sync(() => {
          self.runtime = runtime
          for (const run of self.waiting.splice(0)) run()
          if (name.startsWith("w")) attachWorker(self, bull)
        })
      ),
      Effect.zipRight(forever),
      Effect.scoped,
      inWorld(world, actor, `${schedule.seed}:${name}:${++incarnations}`),
      Effect.locally(FiberRef.currentLoggers, HashSet.make(logger))
    )
    forkIn(world, actor, program, rooted)
  }

  const attachWorker = (self: Incarnation, bull: Connection) => {
    const { actor } = self
    const running: Attempt.Running = {
      jobs: byName,
      stores: new Map(jobs.map(({ job }) => [job.name, `redis:${prefix}`])),
      rejections: new Throttle()
    }
    const slot: WorkerSlot = {
      actor,
      name: actor.name,
      free: settings.workerConcurrency,
      reachable: () => self.link.mode === "up" && bull.status === "ready",
      deliver: (task) =>
        world.at(world.now + world.draws.between(settings.latency.min, settings.latency.max), actor, () => {
          const renew = () => {
            bull.queue(() => queue.renew(slot, task.id), () => {})
            timer = world.at(world.now + settings.queue.lockDuration / 2, actor, renew)
          }
          let timer = world.at(world.now + settings.queue.lockDuration / 2, actor, renew)
          const fiber = rooted(Runtime.runFork(self.runtime!)(Effect.exit(Attempt.handle(task, running, "simulated"))))
          fiber.addObserver((exit) => {
            timer.cancelled = true
            slot.free++
            const outcome = Exit.isSuccess(exit) && Exit.isSuccess(exit.value)
              ? "completed"
              : Exit.isSuccess(exit) && Exit.isFailure(exit.value) && exit.value.cause._tag === "Fail" &&
                  exit.value.cause.error._tag === "Rejected"
              ? "rejected"
              : "failed"
            bull.queue(() => queue.finish(slot, task.id, outcome), () => {})
            bull.queue(() => queue.dispatch(), () => {})
          })
        })
    }
    bull.queue(() => queue.attach(slot), () => {})
  }

  const crash = (name: string) => {
    const self = current.get(name)
    if (self === undefined || !self.actor.alive) return
    self.actor.alive = false
    queue.detach(self.actor)
    for (const connection of self.connections) connection.close()
    push({ _tag: "Crashed", at: world.now, actor: name })
  }

  let healedAt = 0
  let maxInvalidationDelay = 0
  const apply = (step: T.Step) => {
    const action = step.action
    switch (action._tag) {
      case "Read":
      case "Set":
      case "Delete":
      case "Invalidate":
      case "InvalidateTags":
        return operate(step.actor, action)
    }
    const healAt = world.now + action.duration
    healedAt = Math.max(healedAt, healAt)
    push({ _tag: "Fault", at: world.now, actor: step.actor, fault: action })
    const heal = (undo: () => void) =>
      world.at(healAt, undefined, () => {
        undo()
        push({ _tag: "Heal", at: world.now, actor: step.actor, fault: action })
      })
    switch (action._tag) {
      case "Crash": {
        if (action.midRefresh === true) {
          armed.add(step.actor)
          return heal(() => {
            armed.delete(step.actor)
            if (!current.get(step.actor)!.actor.alive) restart(step.actor)
          })
        }
        crash(step.actor)
        return heal(() => restart(step.actor))
      }
      case "Partition": {
        const link = current.get(step.actor)!.link
        if (action.mode === "slow") {
          link.slow = action.slow ?? 2 * settings.commandTimeout
          return heal(() => (link.slow = 0))
        }
        link.mode = "down"
        for (const connection of current.get(step.actor)!.connections) {
          connection.close()
          connection.reconnectLater()
        }
        return heal(() => (link.mode = "up"))
      }
      case "Invalidations": {
        const self = current.get(step.actor)!
        if (action.mode === "delay") {
          self.link.invalidationDelay = action.delay ?? 100
          maxInvalidationDelay = Math.max(maxInvalidationDelay, self.link.invalidationDelay)
          return heal(() => (self.link.invalidationDelay = 0))
        }
        for (const connection of self.connections) {
          if (connection.subscribed) {
            connection.close()
            connection.reconnectLater()
          }
        }
        return heal(() => {})
      }
      case "Origin":
        origin = action
        return heal(() => (origin = undefined))
    }
  }

  const restart = (name: string) => {
    push({ _tag: "Restarted", at: world.now, actor: name })
    start(name)
  }

  const operate = (name: string, op: T.Operation) => {
    const self = current.get(name)
    if (self === undefined || !self.actor.alive) return
    const { job, spec } = jobs[op.job]!
    const input = op._tag === "InvalidateTags" ? undefined : spec.inputs[op.input]
    const key = op._tag === "InvalidateTags" ? undefined : keyOf(spec, input)
    const go = () => {
      const at = world.now
      if (op._tag === "Read") {
        const record = push<T.ReadRecord>({ _tag: "Read", at, process: name, job: job.name, key: key! })
        const fiber = rooted(Runtime.runFork(self.runtime!)(Job.lookup(job, input as never) as Effect.Effect<Job.Lookup<unknown>, unknown>))
        fiber.addObserver((exit) => {
          if (closed) return
          record.end = world.now
          if (Exit.isSuccess(exit)) {
            record.status = exit.value.status
            record.value = json(job, exit.value.value)
            if (exit.value.syncFetch !== undefined) record.syncFetch = exit.value.syncFetch
            if (exit.value.error !== undefined) record.error = describe(exit.value.error)
          } else {
            record.failure = describeExit(exit)
          }
        })
        return
      }
      const value = op._tag === "Set" ? spec.value!(input, op.value) : undefined
      const record = push<T.WriteRecord>({
        _tag: "Write",
        at,
        process: name,
        job: job.name,
        op: op._tag === "Set" ? "set" : op._tag === "Delete" ? "delete" : op._tag === "Invalidate" ? "invalidate" : "invalidateTags",
        ...(key !== undefined ? { key } : {}),
        ...(op._tag === "Set" ? { value: json(job, value) } : {}),
        ...(op._tag === "InvalidateTags" ? { tags: op.tags } : {})
      })
      const effect: Effect.Effect<void, unknown, any> = op._tag === "Set"
        ? Job.set(job, input as never, value as never)
        : op._tag === "Delete"
        ? Job.delete(job, input as never)
        : op._tag === "Invalidate"
        ? Job.invalidate(job, input as never)
        : Job.invalidateTags(job, op.tags)
      const fiber = rooted(Runtime.runFork(self.runtime!)(effect))
      fiber.addObserver((exit) => {
        if (closed) return
        record.end = world.now
        if (Exit.isFailure(exit)) record.failure = describeExit(exit)
      })
    }
    if (self.runtime === undefined) self.waiting.push(go)
    else go()
  }

  for (const name of names) start(name)
  let lastStep = 0
  for (const step of schedule.steps) {
    lastStep = Math.max(lastStep, step.at)
    world.at(step.at, undefined, () => apply(step))
  }
  const settled = world.runUntil(Math.max(lastStep, healedAtOf(schedule)) + settings.settle, settings.maxSteps)

  const keys: Record<string, T.KeyPolicy> = {}
  const final: Record<string, string | null> = {}
  for (const { job, spec } of jobs) {
    for (const input of spec.inputs) {
      const key = keyOf(spec, input)
      keys[key] = policyOf(job, input)
      const text = redis.get(layout.entry(key))
      const stored = text === null ? undefined : storedRecord(world.now, key, text)
      final[key] = stored?.entry === "Value" ? stored.value! : null
    }
  }
  const trace: T.Trace = {
    seed: schedule.seed,
    processes: names.filter((name) => name.startsWith("p")),
    workers: names.filter((name) => name.startsWith("w")),
    near: settings.near !== undefined,
    maxInvalidationDelay,
    commandTimeout: settings.commandTimeout,
    lastStep,
    healedAt,
    end: world.now,
    settled,
    tasks: world.steps,
    timers: world.fired,
    keys,
    records,
    final
  }
  closed = true
  tearDown(world, actors, roots)
  return trace
}

/**
 * Ends every fiber of the run: the crashed ones are thawed (their parked tasks run again),
 * and every root fiber is interrupted, its finalizers run on the world until they are done.
 * Without it each run would stay in memory after its trace is taken.
 */
const tearDown = (world: World, actors: ReadonlyArray<Actor>, roots: ReadonlySet<Fiber.RuntimeFiber<unknown, unknown>>) => {
  for (const actor of actors) actor.alive = true
  world.unpark()
  for (const fiber of roots) fiber.unsafeInterruptAsFork(FiberId.none)
  const until = world.now + 60_000
  while (roots.size > 0 && world.now < until) world.runUntil(Math.min(until, world.now + 1_000), world.steps + 1_000_000)
}

/** When the schedule's last fault heals. */
const healedAtOf = (schedule: T.Schedule) =>
  schedule.steps.reduce((latest, step) => "duration" in step.action ? Math.max(latest, step.at + step.action.duration) : latest, 0)

const policyOf = (job: Job.Job.Any, input: unknown): T.KeyPolicy => {
  const rule = job.staleRefresh
  const stale = job.staleIfError
  return {
    job: job.name,
    input: JSON.stringify(input) ?? "undefined",
    lifetime: Duration.toMillis(job.expiry(input)),
    refreshTimeout: Duration.toMillis(job.refreshTimeout(input)),
    syncAfter: rule._tag === "SyncAfter" ? Duration.toMillis(rule.syncAfter) : undefined,
    maxStale: stale?._tag === "MaxStale" ? Duration.toMillis(stale.maxStale) : undefined,
    syncOnMiss: job.syncOnMiss(input)
  }
}

/** A value as JSON, encoded by the job's value schema when it has one (as Redis holds it). */
const json = (job: Job.Job.Any, value: unknown): string => {
  const schema = job.valueSchema
  const encoded = schema === undefined ? value : Either.getOrElse(Schema.encodeUnknownEither(schema as Schema.Schema<unknown, unknown>)(value), () => value)
  return JSON.stringify(encoded) ?? "undefined"
}

const storedRecord = (at: number, key: string, text: string | null): T.StoredRecord => {
  if (text === null) return { _tag: "Stored", at, key, entry: "Gone" }
  const parsed = Wire.parse(undefined, text)
  if (Either.isLeft(parsed)) return { _tag: "Stored", at, key, entry: "Gone" }
  const entry: Entry.Entry<unknown> = parsed.right
  return entry._tag === "Value"
    ? {
      _tag: "Stored",
      at,
      key,
      entry: "Value",
      value: JSON.stringify(entry.value),
      fetchedAt: entry.fetchedAt,
      expiresAt: entry.expiresAt,
      ...(entry.tags !== undefined ? { tags: Object.keys(entry.tags).sort() } : {})
    }
    : { _tag: "Stored", at, key, entry: entry._tag, expiresAt: entry.expiresAt }
}

const describeExit = (exit: Exit.Exit<unknown, unknown>): string =>
  Exit.isSuccess(exit) ? "succeeded" : describe(exit.cause._tag === "Fail" ? exit.cause.error : exit.cause)

const logText = (message: unknown): string =>
  Array.isArray(message) ? message.map((part) => (typeof part === "string" ? part : describe(part))).join(" ") : String(message)
