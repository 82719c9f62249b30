import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import { globalValue } from "effect/GlobalValue"

/**
 * Concurrent synchronous fetches of one key share one fetch (SPEC §3, single flight).
 *
 * Written by hand: Effect's `Cache` and request caching share an in-flight lookup only by
 * also keeping its result, which would be a second cache beside the store. Flights are
 * keyed by the store they write to and the key, so two stores never share one.
 *
 * The shared effect runs in a daemon fiber: a caller that gives up (interrupted, timed out)
 * leaves the others waiting on a fetch that still completes and stores its value.
 */
const flights = globalValue(
  Symbol.for("effect-cacheback/flights"),
  () => new WeakMap<object, Map<string, Deferred.Deferred<unknown, unknown>>>()
)

export const run = <A, E, R>(
  owner: object,
  key: string,
  effect: Effect.Effect<A, E, R>,
  onJoin?: () => void
): Effect.Effect<A, E, R> =>
  // Registering the flight and forking its fiber happen with no interruption in between:
  // a flight registered but never started would make every later read of the key wait.
  Effect.uninterruptibleMask((restore) =>
    Effect.suspend(() => {
      let byKey = flights.get(owner)
      if (byKey === undefined) {
        byKey = new Map()
        flights.set(owner, byKey)
      }
      const inFlight = byKey.get(key)
      if (inFlight !== undefined) {
        onJoin?.()
        return restore(Deferred.await(inFlight as Deferred.Deferred<A, E>))
      }
      const deferred = Deferred.unsafeMake<A, E>(FiberId.none)
      const table = byKey
      // A key's flight is joined only by reads of that key, whose job gives it its A and E.
      table.set(key, deferred as Deferred.Deferred<unknown, unknown>)
      return Effect.forkDaemon(
        Effect.interruptible(effect).pipe(
          Effect.exit,
          Effect.flatMap((exit) => {
            table.delete(key)
            return Deferred.done(deferred, exit)
          }),
          Effect.onInterrupt(() => {
            table.delete(key)
            return Deferred.interrupt(deferred)
          })
        )
      ).pipe(Effect.zipRight(restore(Deferred.await(deferred))))
    })
  )
