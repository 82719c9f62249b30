import * as Duration from "effect/Duration"
import * as Option from "effect/Option"

/**
 * The longest wait a timer can take: Node's timers, and Effect's `sleep` on them, treat a
 * longer one as never (Effect) or as 1 ms (Node). A deadline, a timeout or a backoff is a
 * timer.
 */
export const maxTimer = 2 ** 31 - 1

/**
 * The longest duration stored with an entry (a lifetime, a cache TTL, a stale window):
 * 100 years, far beyond any use, and below what Redis's `PX` and a date can hold.
 */
export const maxStored = 100 * 365.25 * 86_400_000

/** Which limit a duration has (DESIGN.md §6). */
export interface Limits {
  readonly infinite?: boolean
  readonly timer?: boolean
}

/**
 * Decodes a duration given to a combinator, throwing at once when it is negative, not
 * finite, past its limit (`maxTimer` for a timer, `maxStored` otherwise) or not a duration.
 * `Duration.decode` would turn `-5` into zero and `"-5 minutes"` into zero silently; a job
 * built with either is a mistake to report.
 */
export const decode = (
  where: string,
  input: Duration.DurationInput,
  options?: Limits
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
  const max = options?.timer === true ? maxTimer : maxStored
  if (Duration.isFinite(decoded.value) && Duration.toMillis(decoded.value) > max) {
    return fail(
      options?.timer === true
        ? `longer than ${maxTimer} ms, about 24.8 days, the longest a timer can wait`
        : "longer than 100 years"
    )
  }
  return decoded.value
}

/** A duration function of a job, checked on every call: a bad result is a defect. */
export const decodeWith = <I>(
  where: string,
  f: (input: I) => Duration.DurationInput,
  options?: Limits
): (input: I) => Duration.Duration =>
(input) => decode(`${where}: the function's result`, f(input), options)

const show = (input: unknown): string => {
  if (typeof input === "string") return JSON.stringify(input)
  if (typeof input === "bigint") return `${input}n`
  if (Array.isArray(input)) return `[${input.join(", ")}]`
  return String(input)
}
