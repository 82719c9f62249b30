/**
 * Checks of the options a job, a layer or a worker is built with. A bad option is a
 * programmer error: it throws at once, naming where it was given, what was expected and
 * what came, as `Duration.decode` does.
 */
import * as Duration from "effect/Duration"
import * as Durations from "./duration.js"

/** A duration option in milliseconds, > 0 and finite: a timer, so at most `Durations.maxTimer`. */
export const positiveMillis = (where: string, input: Duration.DurationInput): number => {
  const millis = Duration.toMillis(Durations.decode(where, input, { timer: true }))
  if (millis <= 0) throw new RangeError(`${where}: expected a positive duration, got zero`)
  return Math.ceil(millis)
}

/** A count option: an integer of at least `min` and, when given, at most `max`. */
export const integer = (where: string, name: string, value: unknown, min: number, max?: number): number => {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || (max !== undefined && value > max)) {
    const expected = min === 1 ? "a positive integer" : min === 0 ? "a non-negative integer" : `an integer of at least ${min}`
    throw new RangeError(
      `${where}: expected ${name} to be ${expected}${max === undefined ? "" : ` of at most ${max.toLocaleString("en")}`}, got ${
        String(value)
      }`
    )
  }
  return value
}

/** The most attempts a refresh may have: more only hammers an origin that keeps failing. */
export const maxAttempts = 1_000

/** The most refreshes a queue or worker runs at once: more fibers than any origin serves. */
export const maxConcurrency = 10_000

/** BullMQ's highest priority. */
export const maxPriority = 2_097_152

/** The longest job name, in UTF-8 bytes: it is in every key, task and metric label. */
export const maxNameBytes = 200

/** A BullMQ queue name: non-empty, without ":" (BullMQ's key separator refuses it). */
export const queueName = (where: string, name: string, value: unknown): string => {
  const queue = nonEmpty(where, name, value, "name a BullMQ queue, or leave it out")
  if (queue.includes(":")) {
    throw new TypeError(`${where}: expected ${name} to be a BullMQ queue name, which cannot contain ":" (BullMQ's key separator), got ${JSON.stringify(queue)}`)
  }
  return queue
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

/** Whether `text` has no lone surrogate: whether UTF-8 keeps it apart from every other string. */
export const wellFormed = (text: string): boolean => !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text)
