/**
 * Where refreshes wait to run (SPEC §5). A service, so that a program chooses with a layer:
 * background fibers in this process (the default), inline (Celery's "always eager"), a test
 * queue drained by hand (rq's burst mode), or BullMQ (`effect-cacheback/redis`).
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import type * as Schema from "effect/Schema"
import { EnqueueError } from "./Errors.js"
import * as Metrics from "./internal/metrics.js"
import * as SingleFlight from "./internal/singleFlight.js"
import { TestRefreshQueue } from "./TestRefreshQueue.js"

/**
 * How a job's refreshes are queued (cacheback's `task_options`). `attempts` counts the
 * first try; a failing refresh waits `backoff` before the next one (doubling each time when
 * exponential). The in-process queues and BullMQ honour all of them but `queue` and
 * `priority`, which only BullMQ has.
 *
 * @since 0.1.0
 * @category models
 */
export interface QueueOptions {
  readonly queue?: string | undefined
  readonly priority?: number | undefined
  readonly attempts?: number | undefined
  readonly backoff?: {
    readonly type: "fixed" | "exponential"
    readonly delay: number
  } | undefined
}

/**
 * A refresh to run: the key to refresh and the input that fetches it. `refresh` is one
 * attempt (fetch and store, failing when either fails) with the context of the caller that
 * enqueued it; in-process queues run it with `run`, BullMQ ships `job`, `key` and `input`
 * to a worker instead.
 *
 * @since 0.1.0
 * @category models
 */
export interface Task {
  readonly job: string
  readonly key: string
  readonly input: unknown
  readonly inputSchema: Schema.Schema<any, any, never> | undefined
  readonly options: QueueOptions
  readonly refresh: Effect.Effect<void, unknown>
}

/**
 * Attempts of a job without queue options: 3, the first included.
 *
 * @since 0.1.0
 * @category defaults
 */
export const defaultAttempts = 3

/**
 * Backoff of a job without queue options: exponential from 1 second.
 *
 * @since 0.1.0
 * @category defaults
 */
export const defaultBackoff = { type: "exponential", delay: 1000 } as const

/**
 * How an in-process queue runs a task: `attempt` (the task's refresh, perhaps under a
 * permit) retried per the task's options, waiting between attempts outside `attempt`, in a
 * `cacheback.refresh` span. The last failure, or a defect, is logged and counted, and
 * leaves the entry as it was.
 *
 * @since 0.1.0
 * @category running
 */
export const run = (
  task: Task,
  attempt: (refresh: Effect.Effect<void, unknown>) => Effect.Effect<void, unknown> = (refresh) => refresh
): Effect.Effect<void> =>
  attempt(task.refresh).pipe(
    Effect.retry(retrySchedule(task.options)),
    Effect.withSpan("cacheback.refresh", { attributes: { "cacheback.job": task.job, "cacheback.key": task.key } }),
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause) ? Effect.interrupt : Effect.zipRight(
        Effect.sync(() => Metrics.bump(Metrics.forJob(task.job).refreshFailures)),
        Effect.logWarning(`cacheback: job "${task.job}": the refresh of "${task.key}" failed; the entry stays as it was`, cause)
      )
    )
  )

const retrySchedule = (options: QueueOptions): Schedule.Schedule<unknown> => {
  const retries = Math.max(0, (options.attempts ?? defaultAttempts) - 1)
  const { delay, type } = options.backoff ?? defaultBackoff
  const base: Schedule.Schedule<unknown> = type === "fixed" ? Schedule.spaced(delay) : Schedule.exponential(delay)
  return Schedule.intersect(base, Schedule.recurs(retries))
}

/**
 * `deduplicated` when a task for the key was already waiting.
 *
 * @since 0.1.0
 * @category models
 */
export type Enqueued = "enqueued" | "deduplicated"

/**
 * @since 0.1.0
 * @category models
 */
export interface Service {
  readonly enqueue: (task: Task) => Effect.Effect<Enqueued, EnqueueError>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class RefreshQueue extends Context.Tag("effect-cacheback/RefreshQueue")<RefreshQueue, Service>() {}

/**
 * Refreshes run in background fibers owned by the layer's scope, at most `concurrency` at
 * once; a refresh waiting to retry holds no slot. Enqueues of a key collapse while its task
 * waits; while it runs, one more may wait (the running fetch may have started before the
 * change that asked for the new one), and that one runs with its own input and context.
 * At most `capacity` keys (default 10,000) wait or run; beyond that an enqueue fails and
 * the caller refreshes synchronously.
 *
 * When the scope closes, waiting and running refreshes are interrupted: their entries stay
 * as they were (stale, or pending) and the next read after the refresh timeout enqueues
 * again. An enqueue after that fails, and the caller refreshes synchronously.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (options: {
  readonly concurrency: number
  readonly capacity?: number
}): Layer.Layer<RefreshQueue> => {
  const { capacity = 10_000, concurrency } = options
  for (const [name, value] of [["concurrency", concurrency], ["capacity", capacity]] as const) {
    if (!Number.isInteger(value) || value < 1) {
      throw new RangeError(`RefreshQueue.layerMemory: expected a positive integer ${name}, got ${value}`)
    }
  }
  return Layer.scoped(
    RefreshQueue,
    Effect.gen(function*() {
      const fibers = yield* FiberSet.make()
      let open = true
      yield* Effect.addFinalizer(() => Effect.sync(() => (open = false)))
      const permits = yield* Effect.makeSemaphore(concurrency)
      // Per key: whether its task has started, and the task owed a run after it.
      const keys = new Map<string, KeyState>()
      const runKey = (task: Task, state: KeyState): Effect.Effect<void> =>
        Effect.flatMap(
          run(task, (refresh) =>
            permits.withPermits(1)(Effect.suspend(() => {
              state.started = true
              return refresh
            }))),
          // Deciding to run again or to forget the key is one step: an enqueue cannot land
          // between them and be lost.
          () =>
            Effect.suspend(() => {
              const next = state.next
              if (next === undefined) {
                keys.delete(task.key)
                return Effect.void
              }
              state.next = undefined
              state.started = false
              return runKey(next, state)
            })
        )
      const enqueue = (task: Task): Effect.Effect<Enqueued, EnqueueError> => {
        const refuse = (reason: string) => Effect.fail(new EnqueueError({ job: task.job, key: task.key, reason }))
        if (!open) return refuse("the refresh queue is shut down")
        const state = keys.get(task.key)
        if (state !== undefined) {
          if (!state.started || state.next !== undefined) return Effect.succeed("deduplicated")
          state.next = task
          return Effect.succeed("enqueued")
        }
        if (keys.size >= capacity) return refuse(`the refresh queue is full (${capacity} keys wait or run)`)
        const fresh: KeyState = { started: false, next: undefined }
        keys.set(task.key, fresh)
        // Interruptible whatever the caller's region: closing the layer must stop it.
        const body = Effect.interruptible(runKey(task, fresh)).pipe(
          Effect.onInterrupt(() => Effect.sync(() => keys.get(task.key) === fresh && keys.delete(task.key)))
        )
        return Effect.as(FiberSet.run(fibers, body), "enqueued" as const)
      }
      // Registering a key and forking its fiber happen with no interruption in between: a
      // key registered but never run would collapse every later enqueue into nothing.
      return RefreshQueue.of({ enqueue: (task) => Effect.uninterruptible(Effect.suspend(() => enqueue(task))) })
    })
  )
}

interface KeyState {
  started: boolean
  next: Task | undefined
}

/**
 * The refresh runs before the enqueue returns, in the caller's fiber (Celery's
 * `CELERY_ALWAYS_EAGER`). Concurrent enqueues of a key share one refresh. Nothing is left
 * running in the background.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerInline: Layer.Layer<RefreshQueue> = Layer.sync(RefreshQueue, () => {
  const flights = {}
  return RefreshQueue.of({
    enqueue: (task) => {
      let enqueued: Enqueued = "enqueued"
      return Effect.map(SingleFlight.run(flights, task.key, run(task), () => (enqueued = "deduplicated")), () => enqueued)
    }
  })
})

/**
 * Records tasks and runs nothing until `TestRefreshQueue.drain` (rq's burst mode).
 * Enqueues of a key collapse while its task waits.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerTest: Layer.Layer<RefreshQueue | TestRefreshQueue> = Layer.effectContext(
  Effect.sync(() => {
    let waiting: Array<Task> = []
    const drainOnce = Effect.suspend(() => {
      const batch = waiting
      waiting = []
      return Effect.as(Effect.forEach(batch, (task) => run(task), { discard: true }), batch.length)
    })
    const drain: Effect.Effect<number> = Effect.flatMap(
      drainOnce,
      (ran) => ran === 0 ? Effect.succeed(0) : Effect.map(drain, (more) => ran + more)
    )
    return Context.make(
      RefreshQueue,
      RefreshQueue.of({
        enqueue: (task) =>
          Effect.sync(() => {
            if (waiting.some((queued) => queued.key === task.key)) return "deduplicated" as const
            waiting.push(task)
            return "enqueued" as const
          })
      })
    ).pipe(
      Context.add(TestRefreshQueue, { pending: Effect.sync(() => waiting.slice()), drain })
    )
  })
)
