/**
 * Runs the refresh tasks of a `BullRefreshQueue`: in any number of processes,
 * each with the jobs it may run, storing through the `CacheStore` in its context.
 *
 * - A task names its job; the worker finds it among `jobs`, checks that the task's producer
 *   writes to the store the worker writes the job's entries to, decodes the input with the
 *   job's input schema (an input field the schema does not know is refused, never dropped)
 *   and checks that the task's key is its own `job.key(input)`. A task it cannot run
 *   (unknown job, another store, undecodable input, another key) is failed at once with
 *   the reason, kept in BullMQ's failed set, and the worker goes on.
 * - A failing fetch is retried per the job's queue options (attempts, backoff), then failed.
 * - A worker killed mid-refresh loses no task: its lock expires within `lockDuration` and
 *   another worker's stalled-job check (every `stalledInterval`; a task active at one check
 *   is put back by the first later check that finds it unlocked) hands it to a live worker.
 * - Each attempt runs in a `cacheback.refresh` span: a root span with a link to the span of
 *   the request that enqueued the task in another process, when the task carries its W3C
 *   `traceparent`.
 * - Each worker reads how many tasks wait in its queues every `waitingInterval`, for the
 *   gauge `cacheback_bullmq_waiting{queue}`.
 * - Logs: start and stop at INFO (WARN when refreshes had to be cut short), lost and
 *   regained connections at WARN / INFO, failed tasks at WARN, rejected tasks at WARN once
 *   per queue every 10 seconds (the next warning says how many were not logged; the
 *   `rejected` counter counts each), each refresh at DEBUG (under load there are thousands
 *   a second).
 *
 * @since 0.1.0
 */
import { hostname } from "node:os"
import { type ConnectionOptions, type Job as BullJob, Queue, UnrecoverableError, Worker } from "bullmq"
import * as Cause from "effect/Cause"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { describe } from "../internal/describe.js"
import { Throttle } from "../internal/faults.js"
import { integer, maxConcurrency, nonEmpty, positiveMillis } from "../internal/options.js"
import * as Job from "../Job.js"
import { BullRefreshQueue, close } from "./BullRefreshQueue.js"
import { connect, onCluster, untagged } from "./internal/bullConnection.js"
import { neverThrow } from "./internal/connection.js"
import * as Attempt from "./internal/attempt.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options<Jobs extends ReadonlyArray<Job.Job.Any>> {
  /** The jobs this worker runs, found by `name`. Two jobs with one name throw at once. */
  readonly jobs: Jobs
  /** Refreshes run at once by this worker, per queue. Default 1. */
  readonly concurrency?: number
  /**
   * How long a running task stays locked to this worker without renewal (renewed every
   * half of it). After a crash, the task goes back to the queue within about
   * `lockDuration + stalledInterval`. Default 30 seconds.
   */
  readonly lockDuration?: Duration.DurationInput
  /** How often this worker looks for tasks whose worker died. Default 30 seconds. */
  readonly stalledInterval?: Duration.DurationInput
  /** How many times a task may lose its worker before it is failed. Default 1. */
  readonly maxStalledCount?: number
  /**
   * When the worker stops (interrupted, or its scope closed), how long running refreshes
   * may take to finish before they are interrupted (their tasks then go to another worker).
   * Default 10 seconds.
   */
  readonly closeTimeout?: Duration.DurationInput
  /**
   * How often this worker reads how many tasks wait in each of its queues, for the gauge
   * `cacheback_bullmq_waiting{queue}`: one Redis call per queue each time. Default 5 seconds.
   */
  readonly waitingInterval?: Duration.DurationInput
  /** Shown in logs and in BullMQ. Default `<host>:<pid>`. */
  readonly name?: string
}

/**
 * What a worker running `Jobs` needs: each job's fetch requirements and store.
 *
 * @since 0.1.0
 * @category models
 */
export type Requirements<Jobs extends ReadonlyArray<Job.Job.Any>> = Jobs[number] extends infer J
  ? J extends Job.Job.All ? Job.Context<J> | Job.Store<J> : never
  : never

/**
 * A worker that runs until interrupted: consumes the queues of `jobs` (each job's `queue`
 * option, else the layer's `queueName`), and when interrupted (Ctrl-C under
 * `NodeRuntime.runMain`, a fiber interrupted) stops as `start`'s worker does when its
 * scope closes. `NodeRuntime.runMain(RefreshWorker.run({ jobs }).pipe(Effect.provide(…)))`
 * is a worker process.
 *
 * Throws at once for no jobs, two jobs with one name, or bad counts or durations; dies at
 * start when, on a Redis Cluster, a queue it consumes has no hash tag (nor the prefix).
 *
 * @since 0.1.0
 * @category running
 */
export const run = <const Jobs extends ReadonlyArray<Job.Job.Any>>(
  options: Options<Jobs>
): Effect.Effect<never, never, BullRefreshQueue | Requirements<Jobs>> =>
  Effect.scoped(Effect.zipRight(consume<Requirements<Jobs>>(validate("RefreshWorker.run", options)), Effect.never))

/**
 * Starts consuming the queues of `jobs` and returns once the workers are connected, or
 * after 2 seconds when Redis is unreachable (they connect when it is back). They stop with
 * the scope: no new task is taken, and running refreshes are awaited for up to
 * `closeTimeout`. `Effect.scoped(start(…))` alone would stop them as soon as they start:
 * `run` is the worker that runs until interrupted.
 *
 * @since 0.2.0
 * @category constructors
 */
export const start = <const Jobs extends ReadonlyArray<Job.Job.Any>>(
  options: Options<Jobs>
): Effect.Effect<void, never, BullRefreshQueue | Scope.Scope | Requirements<Jobs>> =>
  consume<Requirements<Jobs>>(validate("RefreshWorker.start", options))

/**
 * `start` as a layer: `Layer.launch(RefreshWorker.layer({ jobs }).pipe(Layer.provide(…)))`
 * is a worker process.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <const Jobs extends ReadonlyArray<Job.Job.Any>>(
  options: Options<Jobs>
): Layer.Layer<never, never, BullRefreshQueue | Requirements<Jobs>> =>
  Layer.scopedDiscard(consume<Requirements<Jobs>>(validate("RefreshWorker.layer", options)))

/**
 * Tasks handled by workers, tagged `outcome`: `refreshed`, `retried` (an attempt failed,
 * another follows), `failed` (the last attempt failed), `rejected` (an unknown job, a
 * producer on another store, an undecodable input, a key that is not the worker's). Each
 * job's own counters (`Job.metrics`) count its refreshes and failed refreshes too.
 *
 * @since 0.1.0
 * @category observability
 */
export const tasks: Metric.Metric.Counter<number> = Attempt.tasks

/**
 * Tasks waiting in a BullMQ queue (waiting and prioritized), tagged `queue`, as a worker
 * consuming it last read them (every `waitingInterval`). Every worker of a queue reports
 * the same count: aggregate them with `max`, not `sum`.
 *
 * @since 0.2.0
 * @category observability
 */
export const waiting: Metric.Metric.Gauge<number> = Metric.gauge("cacheback_bullmq_waiting", {
  description: "tasks waiting in a BullMQ queue, as a worker consuming it last read them"
})


// -----------------------------------------------------------------------------

/**
 * The workers of `start`, `run` and `layer`, one BullMQ worker per queue. `R` is what the
 * jobs require: the refreshes run with it, and each job's store in it says where the job's
 * entries go, which a task's producer must share.
 */
const consume = <R>(settings: Settings): Effect.Effect<void, never, BullRefreshQueue | Scope.Scope | R> =>
  Effect.gen(function*() {
    const bull = yield* BullRefreshQueue
    const stores = yield* Effect.forEach(settings.jobs, ([name, job]) =>
      // Each job's store is in R (Job.Any erases its tag's identifier type).
      Effect.map(job.store as Job.Tag<R>, (store) => [name, store.identity] as const))
    const worker: Attempt.Running = { jobs: settings.jobs, stores: new Map(stores), rejections: new Throttle() }
    // Refreshes run as fibers of this set: closing the scope interrupts what is left.
    const refreshes = yield* FiberSet.make<Exit.Exit<void, Attempt.Failure>>()
    const runFork = yield* FiberSet.runtime(refreshes)<R>()
    const queues = Array.from(new Set(Array.from(settings.jobs.values(), (job) => bull.queueOf(job.queueOptions))))
    if (onCluster(bull.connection)) {
      // A programmer error, as a bad option is: the producer refuses such tasks too.
      for (const queue of queues) {
        const tagless = untagged(bull.prefix, queue)
        if (tagless !== undefined) return yield* Effect.dieMessage(`RefreshWorker "${settings.name}": ${tagless}`)
      }
    }
    const client = yield* connect(
      bull.connection,
      "worker",
      `the refresh worker "${settings.name}"`,
      "refreshes wait until it is back"
    )
    const workers: Array<Worker> = []
    yield* Effect.addFinalizer((exit) => stop(settings, workers, refreshes, exit))
    for (const queue of queues) {
      const consumer = yield* Effect.sync(() => {
        const created = neverThrow(
          new Worker(queue, processor(runFork, worker, queue), {
            connection: client,
            ...(bull.prefix !== undefined ? { prefix: bull.prefix } : {}),
            name: settings.name,
            concurrency: settings.concurrency,
            lockDuration: settings.lockDuration,
            stalledInterval: settings.stalledInterval,
            maxStalledCount: settings.maxStalledCount,
            // BullMQ waits 15 s after a failed Redis call by default; a refresh worker
            // should be back soon after Redis is.
            runRetryDelay: 1000
          })
        )
        workers.push(created)
        return created
      })
      yield* Effect.interruptible(Effect.tryPromise(() => consumer.waitUntilReady())).pipe(
        Effect.timeout("2 seconds"),
        Effect.ignore
      )
    }
    for (const queue of queues) yield* readWaiting(queue, client, bull.prefix, settings.waitingInterval)
    yield* Effect.logInfo(
      `cacheback: refresh worker "${settings.name}" runs ${Array.from(settings.jobs.keys()).join(", ")} ` +
        `from ${queues.map((queue) => `"${queue}"`).join(", ")}`
    )
  })

/**
 * Reads how many tasks wait in `name` every `interval`, into its `cacheback_bullmq_waiting`
 * gauge, until the scope closes: one call per interval, whatever the load, so that
 * observing the queue never adds to it. A failed read (Redis unreachable) keeps the last
 * count; the connection's own watch reports the outage.
 */
const readWaiting = (
  name: string,
  client: ConnectionOptions,
  prefix: string | undefined,
  interval: number
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const queue = neverThrow(new Queue(name, { connection: client, ...(prefix !== undefined ? { prefix } : {}) }))
    yield* Effect.addFinalizer(() => close(() => queue.close(), () => queue.disconnect()))
    const gauge = Metric.tagged(waiting, "queue", name)
    const read = Effect.tryPromise(() => queue.getJobCounts("waiting", "prioritized")).pipe(
      Effect.flatMap((counts) => Metric.set(gauge, (counts.waiting ?? 0) + (counts.prioritized ?? 0))),
      Effect.ignore
    )
    yield* Effect.forkScoped(Effect.interruptible(Effect.repeat(read, Schedule.spaced(interval))))
  })

/**
 * Takes no new task, waits up to `closeTimeout` for the running refreshes, closes the
 * workers, and says why it stopped and what became of the refreshes. BullMQ's own graceful
 * close can wait forever while Redis is unreachable; a task cut short here is not lost: its
 * lock expires and another worker runs it. Finalizers are uninterruptible, so each wait is
 * made interruptible for its timeout to end it.
 */
const stop = (
  settings: Settings,
  workers: ReadonlyArray<Worker>,
  refreshes: FiberSet.FiberSet<Exit.Exit<void, Attempt.Failure>>,
  exit: Exit.Exit<unknown, unknown>
): Effect.Effect<void> =>
  Effect.gen(function*() {
    const each = (f: (worker: Worker) => Promise<unknown>, limit: Duration.DurationInput) =>
      Effect.forEach(
        workers,
        (worker) => Effect.ignore(Effect.timeout(Effect.interruptible(Effect.tryPromise(() => f(worker))), limit)),
        { concurrency: "unbounded", discard: true }
      )
    yield* each((worker) => worker.pause(true), "1 second")
    const running = yield* FiberSet.size(refreshes)
    yield* Effect.ignore(Effect.timeout(Effect.interruptible(FiberSet.awaitEmpty(refreshes)), settings.closeTimeout))
    const left = yield* FiberSet.size(refreshes)
    yield* each((worker) => worker.close(true), "5 seconds")
    const why = Exit.isInterrupted(exit) ? "interrupted" : Exit.isFailure(exit) ? "its scope closed with a failure" : "its scope closed"
    const stopped = `cacheback: refresh worker "${settings.name}" stopped (${why}); `
    const within = `within closeTimeout (${settings.closeTimeout} ms)`
    if (left > 0) {
      return yield* Effect.logWarning(
        `${stopped}refreshes running: ${running}; ${left} did not finish ${within} and are interrupted: ` +
          `their tasks go to another worker once their locks expire`
      )
    }
    yield* Effect.logInfo(stopped + (running === 0 ? "no refresh was running" : `refreshes running: ${running}, all finished ${within}`))
  })

/**
 * BullMQ's processor: runs the task as a fiber of the worker's set, with the worker's
 * context; BullMQ's abort signal interrupts it. A rejected task throws `UnrecoverableError`,
 * so that BullMQ fails it without retrying.
 */
const processor = <R>(
  runFork: <XE extends Exit.Exit<void, Attempt.Failure>, XA extends Exit.Exit<void, Attempt.Failure>>(
    effect: Effect.Effect<XA, XE, R>
  ) => Fiber.RuntimeFiber<XA, XE>,
  worker: Attempt.Running,
  queue: string
) =>
async (task: BullJob, _token?: string, signal?: AbortSignal): Promise<void> => {
  const fiber = runFork(Effect.exit(Attempt.handle<R>(task, worker, queue)))
  const abort = () => fiber.unsafeInterruptAsFork(FiberId.none)
  signal?.addEventListener("abort", abort, { once: true })
  const exit = Exit.flatten(await new Promise<Exit.Exit<Exit.Exit<void, Attempt.Failure>>>((resolve) => fiber.addObserver(resolve)))
  signal?.removeEventListener("abort", abort)
  if (Exit.isSuccess(exit)) return
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) {
    throw new Error(Cause.isInterruptedOnly(exit.cause) ? "the refresh was interrupted: its worker stopped" : describe(Cause.squash(exit.cause)))
  }
  if (failure.value._tag === "Rejected") throw new UnrecoverableError(failure.value.reason)
  throw new Error(failure.value.reason)
}

interface Settings {
  readonly jobs: ReadonlyMap<string, Job.Job.Any>
  readonly name: string
  readonly concurrency: number
  readonly lockDuration: number
  readonly stalledInterval: number
  readonly maxStalledCount: number
  readonly closeTimeout: number
  readonly waitingInterval: number
}

const validate = (where: string, options: Options<ReadonlyArray<Job.Job.Any>>): Settings => {
  if (typeof options !== "object" || options === null || !Array.isArray(options.jobs)) {
    throw new TypeError(`${where}: expected options { jobs: [job, …] }`)
  }
  const jobs = new Map<string, Job.Job.Any>()
  for (const job of options.jobs) {
    if (!Job.isJob(job)) throw new TypeError(`${where}: expected every element of jobs to be a Job, got ${describe(job)}`)
    const other = jobs.get(job.name)
    if (other !== undefined && other !== job) {
      throw new TypeError(
        `${where}: two different jobs are named "${job.name}"; a task finds its job by name, so give each job its own name`
      )
    }
    jobs.set(job.name, job)
  }
  if (jobs.size === 0) throw new TypeError(`${where}: expected at least one job`)
  return {
    jobs,
    name: options.name === undefined ? `${hostname()}:${process.pid}` : nonEmpty(where, "name", options.name, "or leave it out"),
    concurrency: integer(where, "concurrency", options.concurrency ?? 1, 1, maxConcurrency),
    lockDuration: positiveMillis(`${where} lockDuration`, options.lockDuration ?? "30 seconds"),
    stalledInterval: positiveMillis(`${where} stalledInterval`, options.stalledInterval ?? "30 seconds"),
    maxStalledCount: integer(where, "maxStalledCount", options.maxStalledCount ?? 1, 0),
    closeTimeout: positiveMillis(`${where} closeTimeout`, options.closeTimeout ?? "10 seconds"),
    waitingInterval: positiveMillis(`${where} waitingInterval`, options.waitingInterval ?? "5 seconds")
  }
}
