/**
 * Where refreshes wait to run (SPEC §5). A service, so that a program chooses with a layer:
 * background fibers in this process (the default), inline (Celery's "always eager"), a test
 * queue drained by hand (rq's burst mode), or BullMQ (`effect-cacheback/redis`).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import type * as Schema from "effect/Schema"
import { EnqueueError } from "./Errors.js"
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
 * A refresh to run: the key to refresh and the input that fetches it. `refresh` is the
 * whole refresh (fetch, store, retries per `options`, failures logged and counted) with the
 * context of the caller that enqueued it; in-process queues run it, BullMQ ships `job`,
 * `key` and `input` to a worker instead.
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
  readonly refresh: Effect.Effect<void>
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
 * once. Enqueues of a key collapse while its task waits; while it runs, one more may wait
 * (the running fetch may have started before the change that asked for the new one).
 *
 * When the scope closes, waiting and running refreshes are interrupted: their entries stay
 * as they were (stale, or pending) and the next read after the refresh timeout enqueues
 * again. An enqueue after that fails, and the caller refreshes synchronously.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (options: { readonly concurrency: number }): Layer.Layer<RefreshQueue> => {
  const concurrency = options.concurrency
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`RefreshQueue.layerMemory: expected a positive integer concurrency, got ${concurrency}`)
  }
  return Layer.scoped(
    RefreshQueue,
    Effect.gen(function*() {
      const fibers = yield* FiberSet.make()
      let open = true
      yield* Effect.addFinalizer(() => Effect.sync(() => (open = false)))
      const permits = yield* Effect.makeSemaphore(concurrency)
      // Per key: whether its task has started, and whether one more run is owed after it.
      const keys = new Map<string, { started: boolean; again: boolean }>()
      const runKey = (task: Task, state: { started: boolean; again: boolean }): Effect.Effect<void> =>
        Effect.flatMap(
          permits.withPermits(1)(Effect.suspend(() => {
            state.started = true
            state.again = false
            return task.refresh
          })),
          () => state.again ? runKey(task, state) : Effect.void
        )
      return RefreshQueue.of({
        enqueue: (task) =>
          Effect.suspend(() => {
            if (!open) {
              return Effect.fail(new EnqueueError({ job: task.job, key: task.key, reason: "the refresh queue is shut down" }))
            }
            const state = keys.get(task.key)
            if (state !== undefined) {
              if (!state.started || state.again) return Effect.succeed("deduplicated" as const)
              state.again = true
              return Effect.succeed("enqueued" as const)
            }
            const fresh = { started: false, again: false }
            keys.set(task.key, fresh)
            return Effect.as(
              FiberSet.run(fibers, Effect.ensuring(runKey(task, fresh), Effect.sync(() => keys.delete(task.key)))),
              "enqueued" as const
            )
          })
      })
    })
  )
}

/**
 * The refresh runs before the enqueue returns, in the caller's fiber (Celery's
 * `CELERY_ALWAYS_EAGER`). Nothing is left running in the background.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerInline: Layer.Layer<RefreshQueue> = Layer.succeed(
  RefreshQueue,
  RefreshQueue.of({ enqueue: (task) => Effect.as(task.refresh, "enqueued" as const) })
)

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
      return Effect.as(Effect.forEach(batch, (task) => task.refresh, { discard: true }), batch.length)
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
