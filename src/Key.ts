/**
 * Stable cache keys, SPEC §4: the job's name for a void input, otherwise `name:` and a
 * SHA-256 of a canonical encoding of the input (object keys sorted). The same input gives
 * the same key in every process and on every run; two different inputs never share one.
 *
 * @since 0.1.0
 */
import { hash } from "node:crypto"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { KeyError } from "./Errors.js"
import type { SchemaOf } from "./internal/codec.js"
import { formatParseError } from "./internal/describe.js"
import { className, isPlainObject } from "./internal/plainObject.js"

/**
 * Why an input has no canonical encoding: where in it, and what was found there.
 *
 * @since 0.1.0
 * @category models
 */
export interface Unkeyable {
  readonly path: string
  readonly reason: string
}

/**
 * The canonical encoding of an input: strings, numbers, booleans, null, bigint, Date,
 * arrays and plain objects (keys sorted, `undefined` properties left out, as in JSON).
 * The encoding is injective: each part is tagged by its type, so `1`, `"1"` and `1n`
 * differ.
 *
 * @since 0.1.0
 * @category encoding
 */
export const canonical = (input: unknown): Either.Either<string, Unkeyable> => {
  const ancestors = new Set<object>()
  const go = (value: unknown, path: string): string => {
    switch (typeof value) {
      case "string":
        return JSON.stringify(value)
      case "number":
        return Object.is(value, -0) ? "0" : String(value)
      case "boolean":
        return value ? "true" : "false"
      case "bigint":
        return `${value}n`
      case "undefined":
        return "undefined"
      case "function":
        throw unkeyable(path, "a function")
      case "symbol":
        throw unkeyable(path, "a symbol")
    }
    if (value === null) return "null"
    const object = value as object
    if (ancestors.has(object)) throw unkeyable(path, "a cycle (this value contains itself)")
    ancestors.add(object)
    try {
      if (Array.isArray(object)) {
        let out = "["
        for (let i = 0; i < object.length; i++) out += (i === 0 ? "" : ",") + go(object[i], `${path}[${i}]`)
        return out + "]"
      }
      if (object instanceof Date) {
        if (Number.isNaN(object.getTime())) throw unkeyable(path, "an invalid Date")
        return `Date(${object.toISOString()})`
      }
      if (!isPlainObject(object)) throw unkeyable(path, `an instance of ${className(object)}`)
      if (Object.getOwnPropertySymbols(object).length > 0) throw unkeyable(path, "an object with symbol keys")
      const record = object as Record<string, unknown>
      let out = "{"
      let first = true
      for (const key of Object.keys(record).sort()) {
        const field = record[key]
        if (field === undefined) continue
        out += (first ? "" : ",") + JSON.stringify(key) + ":" + go(field, `${path}.${key}`)
        first = false
      }
      return out + "}"
    } finally {
      ancestors.delete(object)
    }
  }
  try {
    return Either.right(go(input, "$"))
  } catch (error) {
    if (error instanceof UnkeyableInput) return Either.left({ path: error.path, reason: error.reason })
    throw error
  }
}

class UnkeyableInput {
  constructor(readonly path: string, readonly reason: string) {}
}
const unkeyable = (path: string, reason: string) => new UnkeyableInput(path, reason)

/**
 * The first part of every key of the job called `name`: the name with `%` and `:` escaped,
 * so that the first `:` of a key ends the name and two jobs never share a key (a job
 * `"user"` keying an input `"settings"` and a void job `"user:settings"`).
 *
 * @since 0.1.0
 * @category keys
 */
export const prefix = (name: string): string =>
  name.includes("%") || name.includes(":") ? name.replace(/%/g, "%25").replace(/:/g, "%3A") : name

/**
 * The key of `input` for the job called `name`.
 *
 * @since 0.1.0
 * @category keys
 */
export const make = (name: string, input: unknown): Either.Either<string, KeyError> =>
  keyWith(name, prefix(name), digest, input)

/** The key of `value` under `start` (the job's prefix), hashing its encoding with `hashOf`. */
const keyWith = (
  name: string,
  start: string,
  hashOf: (encoded: string) => string,
  value: unknown
): Either.Either<string, KeyError> => {
  if (value === undefined) return Either.right(start)
  const encoded = canonical(value)
  return Either.isLeft(encoded)
    ? Either.left(new KeyError({ job: name, ...encoded.left }))
    : Either.right(`${start}:${hashOf(encoded.right)}`)
}

/**
 * The key function of a job: `make`, with inputs that are not plain data first encoded by
 * the job's input schema, and recent keys remembered.
 *
 * A SHA-256 is a large share of a memory hit (see BENCHMARKS.md); hits repeat the same inputs, so
 * small memos take it off the hit path: one by primitive input (which skips the encoding
 * too), one by canonical encoding (for objects, which must still be encoded). Both are
 * bounded and simply start over when full.
 *
 * @since 0.1.0
 * @category keys
 */
export const derive = <I>(
  name: string,
  inputSchema?: SchemaOf<I>
): (input: I) => Either.Either<string, KeyError> => {
  const byPrimitive = new Map<unknown, Either.Either<string, KeyError>>()
  const byEncoding = new Map<string, string>()
  const encodeInput = inputSchema === undefined ? undefined : Schema.encodeEither(inputSchema)
  const start = prefix(name)
  const hashOf = (encoded: string) => remember(byEncoding, encoded, () => digest(encoded))
  const keyOf = (value: unknown) => keyWith(name, start, hashOf, value)
  return (input) => {
    const type = typeof input
    if (type === "string" || type === "number" || type === "boolean" || type === "bigint") {
      return remember(byPrimitive, input, () => keyOf(input))
    }
    if (encodeInput === undefined || input === undefined || input === null) return keyOf(input)
    const encoded = encodeInput(input)
    return Either.isLeft(encoded)
      ? Either.left(
        new KeyError({
          job: name,
          path: "$",
          reason: `the input schema rejects it (${formatParseError(encoded.left)})`
        })
      )
      : keyOf(encoded.right)
  }
}

const remember = <K, V>(memo: Map<K, V>, key: K, compute: () => V): V => {
  const known = memo.get(key)
  if (known !== undefined) return known
  const value = compute()
  if (memo.size >= memoCapacity) memo.clear()
  memo.set(key, value)
  return value
}

const memoCapacity = 4096

const digest = (encoded: string): string => hash("sha256", encoded, "base64url")
