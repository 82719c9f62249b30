/**
 * Where refreshes wait to run. A service, so that a program chooses with a layer:
 * background fibers in this process (the default), inline (Celery's "always eager"), a test
 * queue drained by hand (`TestRefreshQueue.layer`, rq's burst mode), or BullMQ
 * (`effect-cacheback/redis`).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Schema from "effect/Schema"
import type * as Tracer from "effect/Tracer"
import type { EnqueueError } from "./Errors.js"
import * as MemoryQueue from "./internal/memoryQueue.js"
import { integer, maxConcurrency } from "./internal/options.js"
import * as Refresh from "./internal/refresh.js"
import { Flights } from "./internal/singleFlight.js"

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
  /** The identity of the producer's store (`CacheStore.Service["identity"]`), if it has one. */
  readonly store?: string | undefined
  readonly input: unknown
  readonly inputSchema: Schema.Schema.AnyNoContext | undefined
  readonly options: QueueOptions
  /**
   * The lifetime and cache TTL (ms) the producer's job gives the input: a worker stores the
   * refreshed value with them rather than with its own job's (a job derived with another
   * lifetime shares the registered job's entries).
   */
  readonly policy?: Policy | undefined
  /**
   * The span of the request that enqueued it, if it was traced: a refresh's
   * `cacheback.refresh` span is a root span with a link to it (the request has long ended).
   */
  readonly span?: Tracer.AnySpan | undefined
  readonly refresh: Effect.Effect<void, unknown>
}

/**
 * What a task says of how to store its refresh (`Task.policy`).
 *
 * @since 0.3.0
 * @category models
 */
export interface Policy {
  readonly lifetime: number
  readonly cacheTtl: number
}

/**
 * Attempts of a job without queue options: 3, the first included.
 *
 * @since 0.1.0
 * @category defaults
 */
export const defaultAttempts: number = Refresh.defaultAttempts

/**
 * Backoff of a job without queue options: exponential from 1 second.
 *
 * @since 0.1.0
 * @category defaults
 */
export const defaultBackoff: { readonly type: "exponential"; readonly delay: number } = Refresh.defaultBackoff

/**
 * Runs a task in this process, for a queue of your own: its attempts one after another
 * (per the task's options), each in a `cacheback.refresh` span, waiting the backoff between
 * them on the `Clock`. Each failed attempt is logged; the last one is counted, and leaves
 * the entry as it was.
 *
 * @since 0.1.0
 * @category running
 */
export const run = (task: Task): Effect.Effect<void> => Effect.asVoid(Refresh.run(task, { backoff: true }))

/**
 * `deduplicated` when a task for the key was already waiting; `full` when the queue holds
 * its maximum of waiting tasks and took none (the refresh is skipped, counted in
 * `cacheback_queue_full`: the caller does not refresh instead, since the workers are
 * behind, likely because the origin is).
 *
 * @since 0.1.0
 * @category models
 */
export type Enqueued = "enqueued" | "deduplicated" | "full"

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
 * Refreshes run in `concurrency` fibers owned by the layer's scope, which serve the keys
 * waiting in one FIFO: each task costs O(1), whatever the backlog. A refresh waiting to
 * retry holds no slot. Enqueues of a key collapse while it waits, and the newest task's
 * input and services run; while it runs, one more may wait (the running fetch may have
 * started before the change that asked for the new one). At most `capacity` keys (default
 * 10,000) wait or run; beyond that an enqueue fails and the caller refreshes in the
 * background.
 *
 * When the scope closes, waiting and running refreshes are interrupted: their entries stay
 * as they were (stale, or pending) and the next read after the refresh timeout enqueues
 * again. An enqueue after that fails, and the caller refreshes in the background.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (options: {
  readonly concurrency: number
  readonly capacity?: number
}): Layer.Layer<RefreshQueue> => {
  const where = "RefreshQueue.layerMemory"
  const concurrency = integer(where, "concurrency", options.concurrency, 1, maxConcurrency)
  const capacity = integer(where, "capacity", options.capacity ?? 10_000, 1)
  return Layer.scoped(RefreshQueue, MemoryQueue.make({ concurrency, capacity }))
}

/**
 * The refresh runs before the enqueue returns, in the caller's fiber (Celery's
 * `CELERY_ALWAYS_EAGER`). Concurrent enqueues of a key share one refresh. Nothing is left
 * running in the background.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerInline: Layer.Layer<RefreshQueue> = Layer.scoped(
  RefreshQueue,
  Effect.map(Effect.scope, (scope) => {
    const flights = new Flights((effect) => Effect.forkIn(Effect.interruptible(effect), scope))
    return RefreshQueue.of({
      enqueue: (task) => {
        let enqueued: Enqueued = "enqueued"
        return Effect.map(
          flights.run(task.key, run(task), { onJoin: () => (enqueued = "deduplicated") }),
          () => enqueued
        )
      }
    })
  })
)
