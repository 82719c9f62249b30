/**
 * Stable cache keys (DESIGN.md §5.1): the job's name for a void input, otherwise `name:` and a
 * SHA-256 of a canonical encoding of the input (object keys sorted). The same input gives
 * the same key in every process and on every run; two different inputs never share one.
 *
 * @since 0.1.0
 */
import { hash } from "node:crypto"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { KeyError } from "./Errors.js"
import type { SchemaOf } from "./internal/codec.js"
import { describe } from "./internal/describe.js"
import { isPlainObject } from "./internal/plainObject.js"

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
 * How deep arrays and objects may nest in an input. Walking a deeper one would exhaust the
 * stack (a `RangeError` at ~3,400 levels); no key input needs a tenth of this.
 */
const maxDepth = 1_000

/**
 * The canonical encoding of an input: strings, numbers, booleans, null, bigint, Date,
 * arrays and plain objects (keys sorted, `undefined` properties left out, as in JSON).
 * The encoding is injective: each part is tagged by its type, so `1`, `"1"` and `1n`
 * differ.
 *
 * Anything else is `Unkeyable`, with the path of the offending part: a function, a symbol,
 * a cycle, an invalid Date, an object that is not plain (a class instance, or an object
 * whose prototype was set with `__proto__` or `Object.create`), symbol keys, arrays and
 * objects nested deeper than 1,000 levels, and a getter or Proxy trap that throws (with
 * its message).
 *
 * @since 0.1.0
 * @category encoding
 */
export const canonical = (input: unknown): Either.Either<string, Unkeyable> => {
  const walk: Walk = { path: [], ancestors: new Set() }
  try {
    return Either.right(encode(input, walk))
  } catch (error) {
    // Only our own UnkeyableInput and what the input's getters and Proxy traps throw can
    // reach here: the walk itself calls nothing else that throws.
    return Either.left({
      path: pathText(walk.path),
      reason: error instanceof UnkeyableInput ? error.reason : `reading it threw (a getter or Proxy trap): ${describe(error)}`
    })
  }
}

/**
 * Where a walk of an input is: the keys and indexes from the input down to the part being
 * read, and the arrays and objects that contain it. A failure reads its path from here as
 * the walk left it, so a getter that throws is found at its property; a successful walk
 * builds no path strings.
 */
interface Walk {
  readonly path: Array<string | number>
  readonly ancestors: Set<object>
}

const encode = (value: unknown, walk: Walk): string => {
  switch (typeof value) {
    case "string":
    case "number":
    case "boolean":
    case "bigint":
      return encodePrimitive(value)
    case "undefined":
      return "undefined"
    case "function":
      throw new UnkeyableInput("a function")
    case "symbol":
      throw new UnkeyableInput("a symbol")
  }
  if (value === null) return "null"
  const object = value as object
  const { ancestors, path } = walk
  if (path.length === maxDepth) throw new UnkeyableInput(`nested deeper than ${maxDepth.toLocaleString("en-US")} levels`)
  if (ancestors.has(object)) throw new UnkeyableInput("a cycle (this value contains itself)")
  ancestors.add(object)
  let out: string
  if (Array.isArray(object)) {
    out = "["
    for (let i = 0; i < object.length; i++) {
      path.push(i)
      out += (i === 0 ? "" : ",") + encode(object[i], walk)
      path.pop()
    }
    out += "]"
  } else if (object instanceof Date) {
    if (Number.isNaN(object.getTime())) throw new UnkeyableInput("an invalid Date")
    out = `Date(${object.toISOString()})`
  } else {
    if (!isPlainObject(object)) throw new UnkeyableInput(notPlain(object))
    if (Object.getOwnPropertySymbols(object).length > 0) throw new UnkeyableInput("an object with symbol keys")
    out = "{"
    for (const key of Object.keys(object).sort()) {
      path.push(key)
      const field = (object as Record<string, unknown>)[key]
      if (field !== undefined) out += (out.length === 1 ? "" : ",") + JSON.stringify(key) + ":" + encode(field, walk)
      path.pop()
    }
    out += "}"
  }
  ancestors.delete(object)
  return out
}

class UnkeyableInput {
  constructor(readonly reason: string) {}
}

/** The encoding of a string, number, boolean or bigint, as part of `canonical`. */
const encodePrimitive = (value: string | number | boolean | bigint): string => {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value)
    case "number":
      return Object.is(value, -0) ? "0" : String(value)
    case "boolean":
      return value ? "true" : "false"
    case "bigint":
      return `${value}n`
  }
}

/** A path as messages write it: `$.user.tags[0]`. */
const pathText = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>((text, part) => typeof part === "number" ? `${text}[${part}]` : `${text}.${String(part)}`, "$")

/**
 * What an object that is not plain is. A class's prototype holds the class as its
 * `constructor`; a prototype set by hand (`{ __proto__: defaults }`, `Object.create(p)`)
 * only inherits one, so it is not called an instance of anything.
 */
const notPlain = (object: object): string => {
  const proto: object = Object.getPrototypeOf(object)
  const made = Object.hasOwn(proto, "constructor") ? (proto as { constructor: unknown }).constructor : undefined
  return typeof made === "function" && made.prototype === proto
    ? `an instance of ${made.name === "" ? "an anonymous class" : made.name}`
    : "an object whose prototype is not Object.prototype (set with __proto__ or Object.create)"
}

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
export const make = (name: string, input: unknown): Either.Either<string, KeyError> => {
  if (input === undefined) return Either.right(prefix(name))
  const encoded = canonical(input)
  return Either.isLeft(encoded)
    ? Either.left(new KeyError({ job: name, ...encoded.left }))
    : Either.right(`${prefix(name)}:${digest(encoded.right)}`)
}

/**
 * The key function of a job: `make`, with inputs that are not plain data first encoded by
 * the job's input schema, and recent keys remembered.
 *
 * The input schema encodes with `onExcessProperty: "error"`: a field it does not know is a
 * `KeyError` at that field's path, never dropped (two inputs differing only there would
 * share a key and a value). An encode that throws is a `KeyError` too.
 *
 * A SHA-256 is a large share of a memory hit (see BENCHMARKS.md); hits repeat the same inputs, so
 * small memos take it off the hit path: one by primitive input (which skips the encoding
 * too), one by canonical encoding (for objects, which must still be encoded). Each memo
 * holds at most 4,096 entries and 1,048,576 characters of inputs, encodings and keys
 * (V8 stores a character in 1 or 2 bytes: 2–4 MB a job for both memos, and under 1 MB for
 * their entries' own overhead), and starts over when either bound is reached. An input whose encoding is longer than 4,096 characters is never remembered: it
 * is hashed on every read, and the memo keeps nothing of it alive.
 *
 * @since 0.1.0
 * @category keys
 */
export const derive = <I>(
  name: string,
  inputSchema?: SchemaOf<I>
): (input: I) => Either.Either<string, KeyError> => {
  const start = prefix(name)
  const byPrimitive = new Memo<unknown>()
  const byEncoding = new Memo<string>()
  const encodeInput = inputSchema === undefined ? undefined : strictEncoder(name, inputSchema)
  return (input) => {
    const type = typeof input
    if (type === "string" || type === "number" || type === "boolean" || type === "bigint") {
      const known = byPrimitive.get(input)
      if (known !== undefined) return known
      // The memo holds the input itself, which is no longer than its encoding: the encoding's
      // length bounds what the entry keeps alive.
      return byPrimitive.remember(input, start, encodePrimitive(input as string | number | boolean | bigint))
    }
    if (input === undefined) return Either.right(start)
    const value = encodeInput === undefined || input === null ? Either.right(input) : encodeInput(input)
    if (Either.isLeft(value)) return Either.left(value.left)
    const encoded = canonical(value.right)
    if (Either.isLeft(encoded)) return Either.left(new KeyError({ job: name, ...encoded.left }))
    return byEncoding.get(encoded.right) ?? byEncoding.remember(encoded.right, start, encoded.right)
  }
}

/**
 * An input schema's encode for keys. A field the schema does not know is refused, never
 * dropped (two inputs differing only there would share a key and a value); an encode that
 * throws (a transformation or filter of the user's) leaves the input without an encoding.
 */
const strictEncoder = <I>(name: string, schema: SchemaOf<I>) => {
  const encode = Schema.encodeEither(schema, { onExcessProperty: "error" })
  return (input: I): Either.Either<unknown, KeyError> => {
    try {
      return Either.mapLeft(encode(input), (error) => rejected(name, error))
    } catch (defect) {
      return Either.left(new KeyError({ job: name, path: "$", reason: `the input schema's encode threw: ${describe(defect)}` }))
    }
  }
}

/** A schema's refusal of an input, at the path of its first issue. */
const rejected = (job: string, error: ParseResult.ParseError): KeyError => {
  // Every ParseError formats to one issue or more: a composite issue holds at least one.
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]!
  const field = issue.path.at(-1)
  return new KeyError({
    job,
    path: pathText(issue.path),
    reason: issue._tag === "Unexpected" && field !== undefined
      ? `the input schema has no field ${JSON.stringify(String(field))}: ${issue.message}`
      : `the input schema rejects it: ${issue.message}`
  })
}

/**
 * Keys by what they were derived from, bounded in entries and in characters (of what each
 * entry holds: its input or encoding, and its key). Full, it starts over: the next reads of
 * the inputs it held hash them again.
 */
class Memo<K> {
  private readonly keys = new Map<K, Either.Either<string, KeyError>>()
  private characters = 0

  get(from: K): Either.Either<string, KeyError> | undefined {
    return this.keys.get(from)
  }

  /** The key of `encoded` under `start`, remembered under `from` unless the encoding is long. */
  remember(from: K, start: string, encoded: string): Either.Either<string, KeyError> {
    const text = `${start}:${digest(encoded)}`
    const key = Either.right(text)
    if (encoded.length > memoLongest) return key
    const characters = encoded.length + text.length
    if (this.keys.size === memoEntries || this.characters + characters > memoCharacters) {
      this.keys.clear()
      this.characters = 0
    }
    this.keys.set(from, key)
    this.characters += characters
    return key
  }
}

const memoEntries = 4_096
const memoCharacters = 1_048_576
// Longer strings would cost a memo a quarter of its budget each, and past 16,383
// characters V8 hashes a string by its length alone, so long keys of one length would
// collide in the Map.
const memoLongest = 4_096

const digest = (encoded: string): string => hash("sha256", encoded, "base64url")
