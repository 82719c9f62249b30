/**
 * Checks of the options a job, a layer or a worker is built with. A bad option is a
 * programmer error: it throws at once, naming where it was given, what was expected and
 * what came, as `Duration.decode` does.
 */
import * as Duration from "effect/Duration"
import * as Durations from "./duration.js"

/** A duration option in milliseconds, > 0 and finite. */
export const positiveMillis = (where: string, input: Duration.DurationInput): number => {
  const millis = Duration.toMillis(Durations.decode(where, input))
  if (millis <= 0) throw new RangeError(`${where}: expected a positive duration, got zero`)
  return Math.ceil(millis)
}

/** A count option: an integer of at least `min`. */
export const integer = (where: string, name: string, value: unknown, min: number): number => {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min) {
    const expected = min === 1 ? "a positive integer" : min === 0 ? "a non-negative integer" : `an integer of at least ${min}`
    throw new RangeError(`${where}: expected ${name} to be ${expected}, got ${String(value)}`)
  }
  return value
}

/** A name option: a non-empty string. */
export const nonEmpty = (where: string, name: string, value: unknown, hint: string): string => {
  if (typeof value !== "string" || value.trim() === "") {
    throw new TypeError(`${where}: expected ${name} to be a non-empty string, got ${JSON.stringify(value)}; ${hint}`)
  }
  return value
}

/** A function option. */
export const func = <F>(where: string, f: F): F => {
  if (typeof f !== "function") throw new TypeError(`${where}: expected a function, got ${typeof f}`)
  return f
}
