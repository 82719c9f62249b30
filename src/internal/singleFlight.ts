/**
 * Concurrent synchronous fetches of one key share one fetch (DESIGN.md, "One fetch per key").
 *
 * Written by hand: Effect's `Cache` and request caching share an in-flight lookup only by
 * also keeping its result, which would be a second cache beside the store. A table of
 * flights belongs to one store in one runtime (`Engine`), so two stores, or two runtimes,
 * never share one.
 *
 * The shared effect runs in a fiber of the table's owner (a store's engine): a caller that
 * gives up (interrupted, timed out) leaves the others waiting on a fetch that still
 * completes and stores its value, and disposing the runtime ends it. `then` (the store
 * of the value) runs after the callers are answered, and the flight lasts until it is done:
 * a read in that gap joins the answered flight rather than fetching again.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"

interface Flight<A, E> {
  readonly deferred: Deferred.Deferred<A, E>
  /** The value it answered, while `then` runs. */
  answered: { readonly value: A } | undefined
}

export interface FlightOptions<A> {
  readonly onJoin?: () => void
  readonly then?: (value: A) => Effect.Effect<void>
  /** Whether a flight already answered with `value`, and still running `then`, may be joined at `now`. */
  readonly joinable?: (value: A, now: number) => boolean
}

export class Flights {
  private readonly table = new Map<string, Flight<unknown, unknown>>()

  /** `start` runs a flight in a fiber of the table's owner (a store's engine, a queue layer). */
  constructor(private readonly start: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<Fiber.RuntimeFiber<A, E>, never, R>) {}

  /** How many keys have a flight: what a disposed runtime must bring to zero. */
  get size(): number {
    return this.table.size
  }

  /**
   * `effect` for `key`, joined by every concurrent caller of the key. A key's flight is
   * joined only by reads of that key, whose job gives it its `A` and `E`.
   */
  run<A, E, R>(key: string, effect: Effect.Effect<A, E, R>, options?: FlightOptions<A>): Effect.Effect<A, E, R> {
    const table = this.table
    const start = this.start
    // Registering the flight and forking its fiber happen with no interruption in between:
    // a flight registered but never started would make every later read of the key wait.
    return Effect.uninterruptibleMask((restore) =>
      Effect.clockWith((clock) => {
        const inFlight = table.get(key) as Flight<A, E> | undefined
        const check = options?.joinable
        if (
          inFlight !== undefined &&
          (inFlight.answered === undefined || check === undefined || check(inFlight.answered.value, clock.unsafeCurrentTimeMillis()))
        ) {
          options?.onJoin?.()
          return restore(Deferred.await(inFlight.deferred))
        }
        const flight: Flight<A, E> = { deferred: Deferred.unsafeMake<A, E>(FiberId.none), answered: undefined }
        table.set(key, flight as Flight<unknown, unknown>)
        const then = options?.then
        const body = effect.pipe(
          Effect.exit,
          Effect.tap((exit) => Deferred.done(flight.deferred, exit)),
          Effect.flatMap((exit) => {
            if (then === undefined || exit._tag === "Failure") return Effect.void
            flight.answered = { value: exit.value }
            return then(exit.value)
          })
        )
        return Effect.flatMap(start(body), (fiber) => {
          // An observer rather than `ensuring`: a fiber forked into a closed scope (a disposed
          // runtime) is interrupted before it runs anything, and its callers must still hear.
          fiber.addObserver((exit) => {
            if (table.get(key) === flight) table.delete(key)
            if (exit._tag === "Failure") Deferred.unsafeDone(flight.deferred, exit as Exit.Exit<never>)
          })
          return restore(Deferred.await(flight.deferred))
        })
      })
    )
  }
}
