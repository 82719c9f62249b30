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
  () => new WeakMap<object, Map<string, Deferred.Deferred<any, any>>>()
)

export const run = <A, E, R>(
  owner: object,
  key: string,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.suspend(() => {
    let byKey = flights.get(owner)
    if (byKey === undefined) {
      byKey = new Map()
      flights.set(owner, byKey)
    }
    const inFlight = byKey.get(key)
    if (inFlight !== undefined) {
      return Deferred.await(inFlight as Deferred.Deferred<A, E>)
    }
    const deferred = Deferred.unsafeMake<A, E>(FiberId.none)
    const table = byKey
    table.set(key, deferred)
    return Effect.forkDaemon(
      Effect.exit(effect).pipe(
        Effect.flatMap((exit) => {
          table.delete(key)
          return Deferred.done(deferred, exit)
        }),
        Effect.onInterrupt(() => {
          table.delete(key)
          return Deferred.interrupt(deferred)
        })
      )
    ).pipe(Effect.zipRight(Deferred.await(deferred)))
  })
