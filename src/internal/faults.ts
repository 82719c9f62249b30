/**
 * Faults of the store met by a read: they degrade to what a read can do without the store,
 * and are logged once per job every 10 seconds, however many there are, while a counter
 * counts every one (DESIGN.md, "Faults"). The throttle belongs to one store in one runtime,
 * or to one worker: one runtime's outage never silences another's warnings.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { CodecError, StoreError } from "../Errors.js"
import * as Metrics from "./metrics.js"

/** How often a warning of one kind is logged at most. */
const quiet = 10_000

/**
 * Lines logged at WARN at most once per id every 10 seconds; the next one logged says how
 * many were not. Keyed by kind of fault and job (or queue): a few entries per store.
 */
export class Throttle {
  private readonly last = new Map<string, { at: number; unlogged: number }>()

  /** `line` at WARN unless a line of `id` was logged in the last 10 seconds; `what` names what was not. */
  warn(id: string, line: string, what: string): Effect.Effect<void> {
    return Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const last = this.last.get(id)
      if (last !== undefined && now >= last.at && now - last.at < quiet) {
        last.unlogged++
        return Effect.void
      }
      this.last.set(id, { at: now, unlogged: 0 })
      const more = last !== undefined && last.unlogged > 0 ? ` (and ${last.unlogged} more ${what} since the last warning)` : ""
      return Effect.logWarning(line + more)
    })
  }

  /**
   * During an outage every read meets the fault: one warning per job and kind of fault
   * (`store`, `enqueue`) every 10 seconds says so; the counters count them all.
   */
  fault(kind: "store" | "enqueue" | "background", job: string, message: string): Effect.Effect<void> {
    return this.warn(`${kind}:${job}`, `cacheback: job "${job}": ${message}`, `${kind} faults`)
  }
}

/**
 * `effect` with its store faults (failures and defects) logged through `throttle` and
 * counted, and `fallback` in their place; an interruption goes on being one.
 */
export const degrade = <A, B>(
  throttle: Throttle,
  job: string,
  effect: Effect.Effect<A, StoreError | CodecError>,
  fallback: B
): Effect.Effect<A | B> =>
  Effect.catchAllCause(effect, (cause): Effect.Effect<A | B> => {
    if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause as Cause.Cause<never>)
    const failure = Cause.failureOption(cause)
    const message = Option.isSome(failure) ? failure.value.message : `the cache store died: ${Cause.pretty(cause)}`
    Metrics.bump(Metrics.forJob(job).storeErrors)
    return Effect.as(throttle.fault("store", job, message), fallback)
  })
