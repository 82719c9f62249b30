/**
 * The machinery of `RefreshQueue.layerMemory`: background refreshes in this process, at
 * most `concurrency` at once, at most `capacity` keys waiting or running, collapsed by key.
 */
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import type * as Scope from "effect/Scope"
import { EnqueueError } from "../Errors.js"
import type { Enqueued, Service, Task } from "../RefreshQueue.js"
import { run } from "./refresh.js"

/** Per key: whether its task has started, and the task owed a run after it. */
interface KeyState {
  started: boolean
  next: Task | undefined
}

export const make = (options: { readonly concurrency: number; readonly capacity: number }): Effect.Effect<Service, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { capacity, concurrency } = options
    const fibers = yield* FiberSet.make()
    let open = true
    yield* Effect.addFinalizer(() => Effect.sync(() => (open = false)))
    const permits = yield* Effect.makeSemaphore(concurrency)
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
      const existing = keys.get(task.key)
      if (existing !== undefined) {
        if (!existing.started || existing.next !== undefined) return Effect.succeed("deduplicated")
        existing.next = task
        return Effect.succeed("enqueued")
      }
      if (keys.size >= capacity) return refuse(`the refresh queue is full (${capacity} keys wait or run)`)
      const state: KeyState = { started: false, next: undefined }
      keys.set(task.key, state)
      // Interruptible whatever the caller's region: closing the layer must stop it.
      const body = Effect.interruptible(runKey(task, state)).pipe(
        Effect.onInterrupt(() => Effect.sync(() => keys.get(task.key) === state && keys.delete(task.key)))
      )
      return Effect.as(FiberSet.run(fibers, body), "enqueued" as const)
    }
    // Registering a key and forking its fiber happen with no interruption in between: a
    // key registered but never run would collapse every later enqueue into nothing.
    return { enqueue: (task) => Effect.uninterruptible(Effect.suspend(() => enqueue(task))) }
  })
