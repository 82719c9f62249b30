/**
 * Faults of the store met by a read: they degrade to what a read can do without the store,
 * and are logged once per job every 10 seconds, however many there are, while a counter
 * counts every one.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { globalValue } from "effect/GlobalValue"
import * as Option from "effect/Option"
import type { CodecError, StoreError } from "../Errors.js"
import * as Metrics from "./metrics.js"

/**
 * `effect` with its store faults (failures and defects) logged and counted, and `fallback`
 * in their place; an interruption goes on being one.
 */
export const degrade = <A, B>(
  job: string,
  effect: Effect.Effect<A, StoreError | CodecError>,
  fallback: B
): Effect.Effect<A | B> =>
  Effect.catchAllCause(effect, (cause): Effect.Effect<A | B> => {
    if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause as Cause.Cause<never>)
    const failure = Cause.failureOption(cause)
    const message = Option.isSome(failure) ? failure.value.message : `the cache store died: ${Cause.pretty(cause)}`
    Metrics.bump(Metrics.forJob(job).storeErrors)
    return Effect.as(warnThrottled("store", job, message), fallback)
  })

/**
 * During an outage every read meets the fault: one warning per job and kind of fault
 * (`store`, `enqueue`) every 10 seconds says so, with how many were not logged; the
 * counters count them all.
 */
export const warnThrottled = (kind: "store" | "enqueue", job: string, message: string): Effect.Effect<void> =>
  throttled(`${kind}:${job}`, `cacheback: job "${job}": ${message}`, `${kind} faults`)

/**
 * `line` logged at WARN unless a line of the same `id` was in the last 10 seconds; the next
 * one logged says how many (`what`) were not.
 */
export const throttled = (id: string, line: string, what: string): Effect.Effect<void> =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => {
    const last = warnings.get(id)
    if (last !== undefined && now >= last.at && now - last.at < 10_000) {
      last.unlogged++
      return Effect.void
    }
    warnings.set(id, { at: now, unlogged: 0 })
    const more = last !== undefined && last.unlogged > 0 ? ` (and ${last.unlogged} more ${what} since the last warning)` : ""
    return Effect.logWarning(line + more)
  })

const warnings = globalValue(
  Symbol.for("effect-cacheback/faultWarnings"),
  () => new Map<string, { at: number; unlogged: number }>()
)
