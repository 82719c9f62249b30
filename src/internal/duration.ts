import * as Duration from "effect/Duration"
import * as Option from "effect/Option"

/**
 * Decodes a duration given to a combinator, throwing at once when it is negative, not
 * finite or not a duration. `Duration.decode` would turn `-5` into zero and
 * `"-5 minutes"` into zero silently; a job built with either is a mistake to report.
 */
export const decode = (
  where: string,
  input: Duration.DurationInput,
  options?: { readonly infinite: boolean }
): Duration.Duration => {
  const infinite = options?.infinite === true
  const fail = (why: string): never => {
    throw new RangeError(
      `${where}: expected a ${infinite ? "" : "finite, "}non-negative duration such as 30_000 (milliseconds) or "10 minutes"` +
        `${infinite ? " (or Duration.infinity for none)" : ""}, got ${show(input)} (${why})`
    )
  }
  if (typeof input === "number" && (Number.isNaN(input) || input < 0)) return fail("negative or NaN")
  if (typeof input === "bigint" && input < 0n) return fail("negative")
  if (typeof input === "string" && /^\s*-/.test(input)) return fail("negative")
  if (Array.isArray(input) && !input.every((part) => Number.isFinite(part))) return fail("not finite")
  if (Array.isArray(input) && (input[0] < 0 || input[1] < 0)) return fail("negative")
  const decoded = Duration.decodeUnknown(input)
  if (Option.isNone(decoded)) return fail("not a duration")
  if (!infinite && !Duration.isFinite(decoded.value)) return fail("not finite")
  return decoded.value
}

/** A duration function of a job, checked on every call: a bad result is a defect. */
export const decodeWith = <I>(
  where: string,
  f: (input: I) => Duration.DurationInput,
  options?: { readonly infinite: boolean }
): (input: I) => Duration.Duration =>
(input) => decode(`${where}: the function's result`, f(input), options)

const show = (input: unknown): string => {
  if (typeof input === "string") return JSON.stringify(input)
  if (typeof input === "bigint") return `${input}n`
  if (Array.isArray(input)) return `[${input.join(", ")}]`
  return String(input)
}
