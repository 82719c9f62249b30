/**
 * The machinery of `RefreshQueue.layerMemory`: background refreshes in this process.
 *
 * Keys ready to run wait in one FIFO (an Effect `Queue`), served by `concurrency`
 * long-lived fibers: a completion wakes one worker, never every waiting key, so a backlog
 * of N keys drains in O(N). Per key the queue keeps one state, so that enqueues of a key
 * collapse: while it waits (or waits out a retry's backoff) into that run, with the
 * newest task's input and services; while it runs into one owed run after it. A failed
 * attempt waits its backoff in a timer fiber of its own, holding no worker. The cacheback
 * state machine of a queued key is written here by hand: no library keeps it.
 *
 * Keys in the FIFO are counted in `cacheback_refreshes_waiting{job}`: one gauge update when a
 * key goes in and one when a worker takes it.
 */
import * as Effect from "effect/Effect"
import type * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import { EnqueueError } from "../Errors.js"
import type { Enqueued, Service, Task } from "../RefreshQueue.js"
import * as Metrics from "./metrics.js"
import * as Refresh from "./refresh.js"

interface KeyState {
  /** What runs next: the newest task enqueued while the key waited. */
  task: Task
  /** The attempt `task` is at. */
  attempt: number
  status: "ready" | "running" | "backoff"
  /** A task enqueued while `task` runs: the run owed after it. */
  next: Task | undefined
  /**
   * The waiting gauge of the job that first enqueued the key, looked up once per key: a
   * later task of the key counts there too (two jobs share a key only through `withKey`),
   * so that every take undoes its enqueue's count.
   */
  readonly waiting: Metric.Metric.Gauge<number>
}

export const make = (options: { readonly concurrency: number; readonly capacity: number }): Effect.Effect<Service, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { capacity, concurrency } = options
    const scope = yield* Effect.scope
    const ready = yield* Queue.unbounded<KeyState>()
    const keys = new Map<string, KeyState>()
    let open = true
    // Runs after the workers are interrupted (finalizers run in reverse): the keys still
    // "ready" are those left in the FIFO, no longer waiting for anything.
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        open = false
        for (const state of keys.values()) if (state.status === "ready") Metrics.shift(state.waiting, -1)
      })
    )

    const schedule = (state: KeyState) => {
      state.status = "ready"
      Metrics.shift(state.waiting, 1)
      Queue.unsafeOffer(ready, state)
    }
    // After an attempt: wait out the backoff of a failed one (unless a newer run is owed),
    // run the owed task, or forget the key. One synchronous step, so that an enqueue never
    // lands between the decision and its effect.
    const settle = (state: KeyState, outcome: Refresh.Outcome): Effect.Effect<void> =>
      Effect.suspend(() => {
        const { next, task } = state
        if (outcome._tag === "Failed" && next === undefined && state.attempt < Refresh.attemptsOf(task.options)) {
          state.status = "backoff"
          const delay = Refresh.backoff(task.options, state.attempt)
          state.attempt++
          return Effect.asVoid(Effect.forkIn(Effect.interruptible(Effect.delay(Effect.sync(() => schedule(state)), delay)), scope))
        }
        if (next !== undefined) {
          state.task = next
          state.next = undefined
          state.attempt = 1
          schedule(state)
          return Effect.void
        }
        keys.delete(task.key)
        return Effect.void
      })
    const worker = Effect.forever(
      Effect.flatMap(Queue.take(ready), (state) => {
        state.status = "running"
        Metrics.shift(state.waiting, -1)
        return Effect.flatMap(
          Refresh.attempt(state.task, state.attempt, "retrying after its backoff"),
          (outcome) => settle(state, outcome)
        )
      })
    )
    // Interruptible whatever region the layer is built in: closing it must stop them.
    for (let i = 0; i < concurrency; i++) yield* Effect.forkScoped(Effect.interruptible(worker))

    const enqueue = (task: Task): Effect.Effect<Enqueued, EnqueueError> => {
      const refuse = (reason: string) => Effect.fail(new EnqueueError({ job: task.job, key: task.key, reason }))
      if (!open) return refuse("the refresh queue is shut down")
      const state = keys.get(task.key)
      if (state !== undefined) {
        if (state.status === "running") {
          const owed = state.next === undefined
          state.next = task
          return Effect.succeed(owed ? "enqueued" : "deduplicated")
        }
        state.task = task
        state.attempt = 1
        return Effect.succeed("deduplicated")
      }
      if (keys.size >= capacity) return refuse(`the refresh queue is full (${capacity} keys wait or run)`)
      const added: KeyState = { task, attempt: 1, status: "ready", next: undefined, waiting: Metrics.refreshesWaiting(task.job) }
      keys.set(task.key, added)
      schedule(added)
      return Effect.succeed("enqueued")
    }
    return { enqueue: (task) => Effect.suspend(() => enqueue(task)) }
  })
