import * as Duration from "effect/Duration"
import * as Durations from "../../internal/duration.js"

/** A duration option in milliseconds, > 0 and finite; throws at once otherwise. */
export const positiveMillis = (where: string, input: Duration.DurationInput): number => {
  const millis = Duration.toMillis(Durations.decode(where, input))
  if (millis <= 0) throw new RangeError(`${where}: expected a positive duration, got zero`)
  return Math.ceil(millis)
}

/** A count option: an integer ≥ `min`; throws at once otherwise. */
export const integer = (where: string, value: unknown, min: number): number => {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min) {
    throw new RangeError(`${where}: expected an integer of at least ${min}, got ${String(value)}`)
  }
  return value
}

/** A name option: a non-empty string; throws at once otherwise. */
export const nonEmpty = (where: string, value: unknown, hint: string): string => {
  if (typeof value !== "string" || value.trim() === "") {
    throw new TypeError(`${where}: expected a non-empty string, got ${JSON.stringify(value)}; ${hint}`)
  }
  return value
}
