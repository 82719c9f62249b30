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
 * leaves the others waiting on a fetch that still completes and stores its value. `then`
 * (the store of the value) runs after the callers are answered, and the flight lasts until
 * it is done: a read in that gap joins the answered flight rather than fetching again.
 */
const flights = globalValue(
  Symbol.for("effect-cacheback/flights"),
  () => new WeakMap<object, Map<string, Flight<unknown, unknown>>>()
)

interface Flight<A, E> {
  readonly deferred: Deferred.Deferred<A, E>
  /** The value it answered, while `then` runs. */
  answered: { readonly value: A } | undefined
}

export const run = <A, E, R>(
  owner: object,
  key: string,
  effect: Effect.Effect<A, E, R>,
  options?: {
    readonly onJoin?: () => void
    readonly then?: (value: A) => Effect.Effect<void>
    /** Whether a flight already answered with `value`, and still running `then`, may be joined at `now`. */
    readonly joinable?: (value: A, now: number) => boolean
  }
): Effect.Effect<A, E, R> =>
  // Registering the flight and forking its fiber happen with no interruption in between:
  // a flight registered but never started would make every later read of the key wait.
  Effect.uninterruptibleMask((restore) =>
    Effect.clockWith((clock) => {
      let byKey = flights.get(owner)
      if (byKey === undefined) {
        byKey = new Map()
        flights.set(owner, byKey)
      }
      // A key's flight is joined only by reads of that key, whose job gives it its A and E.
      const inFlight = byKey.get(key) as Flight<A, E> | undefined
      const check = options?.joinable
      if (
        inFlight !== undefined &&
        (inFlight.answered === undefined || check === undefined || check(inFlight.answered.value, clock.unsafeCurrentTimeMillis()))
      ) {
        options?.onJoin?.()
        return restore(Deferred.await(inFlight.deferred))
      }
      const flight: Flight<A, E> = { deferred: Deferred.unsafeMake<A, E>(FiberId.none), answered: undefined }
      const table = byKey
      table.set(key, flight as Flight<unknown, unknown>)
      const then = options?.then
      return Effect.forkDaemon(
        Effect.interruptible(effect).pipe(
          Effect.exit,
          Effect.tap((exit) => Deferred.done(flight.deferred, exit)),
          Effect.flatMap((exit) => {
            if (then === undefined || exit._tag === "Failure") return Effect.void
            flight.answered = { value: exit.value }
            return then(exit.value)
          }),
          Effect.onInterrupt(() => Deferred.interrupt(flight.deferred)),
          Effect.ensuring(Effect.sync(() => table.get(key) === flight && table.delete(key)))
        )
      ).pipe(Effect.zipRight(restore(Deferred.await(flight.deferred))))
    })
  )
