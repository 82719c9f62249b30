/**
 * Filters: checked against the model and turned into conditions before any SQL is built,
 * and carried as JSON (their key, and their form in tasks for remote workers).
 */
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { formatParseError } from "../../internal/describe.js"
import { isPlainObject } from "../../internal/plainObject.js"
import { FilterError } from "../Errors.js"
import { SqlValueJson } from "./json.js"
import type { Field, Source } from "./source.js"

/** The lookups a field may take, besides a bare value (equality). */
const lookups = ["in", "gt", "gte", "lt", "lte", "startsWith", "endsWith", "contains", "isNull"] as const

/** A checked part of a filter; values are what the driver binds. */
export type Condition =
  | { readonly _tag: "Compare"; readonly field: Field; readonly op: "=" | ">" | ">=" | "<" | "<="; readonly value: unknown }
  | { readonly _tag: "In"; readonly field: Field; readonly values: ReadonlyArray<unknown> }
  | { readonly _tag: "Text"; readonly field: Field; readonly lookup: TextLookup; readonly text: string }
  | { readonly _tag: "IsNull"; readonly field: Field; readonly isNull: boolean }

type TextLookup = "startsWith" | "endsWith" | "contains"
type JsonLookups = Record<string, unknown>

export interface Compiled {
  readonly conditions: ReadonlyArray<Condition>
  /** The filter as JSON: `{ field: { eq | lookup: operand } }`, operands through `SqlValueJson`. */
  readonly json: Readonly<Record<string, JsonLookups>>
}

const comparisons = { gt: ">", gte: ">=", lt: "<", lte: "<=" } as const

/** Checks `filter` against the source's model; fails with what does not fit and why. */
export const compile = (source: Source, filter: unknown): Either.Either<Compiled, FilterError> => {
  const fail = (field: string | undefined, reason: string) =>
    Either.left(new FilterError({ model: source.identifier, table: source.table, field, reason }))
  if (!isPlainObject(filter)) {
    return fail(undefined, `expected a filter object of fields (such as {} for every row), got ${show(filter)}`)
  }
  if (Object.getOwnPropertySymbols(filter).length > 0) {
    return fail(undefined, "the filter has symbol keys; its keys must be field names")
  }
  const conditions: Array<Condition> = []
  const json: Record<string, JsonLookups> = {}
  for (const name of Object.keys(filter)) {
    const operand = filter[name]
    if (operand === undefined) continue
    const field = source.fields.get(name)
    if (field === undefined) {
      return fail(name, `${show(name)} is not a field of ${source.identifier}; filter on one of ${[...source.fields.keys()].join(", ")}`)
    }
    const compiled = isPlainObject(operand) ? compileLookups(field, operand, conditions) : compileEquals(field, operand, conditions)
    if (Either.isLeft(compiled)) return fail(name, compiled.left)
    json[name] = compiled.right
  }
  return Either.right({ conditions, json })
}

const compileEquals = (field: Field, operand: unknown, conditions: Array<Condition>): Either.Either<JsonLookups, string> =>
  Either.map(bind(field, "the value", operand), (value) => {
    // `= NULL` matches nothing in SQL; equality with a value stored as NULL means IS NULL.
    conditions.push(value === null ? { _tag: "IsNull", field, isNull: true } : { _tag: "Compare", field, op: "=", value })
    return { eq: toJson(value) }
  })

const compileLookups = (
  field: Field,
  operands: Record<string, unknown>,
  conditions: Array<Condition>
): Either.Either<JsonLookups, string> => {
  const json: JsonLookups = {}
  for (const lookup of Object.keys(operands)) {
    const operand = operands[lookup]
    if (operand === undefined) continue
    switch (lookup) {
      case "in": {
        if (!Array.isArray(operand)) return Either.left(`in needs an array of values, got ${show(operand)}`)
        const values: Array<unknown> = []
        for (const item of operand) {
          const value = bind(field, "in", item)
          if (Either.isLeft(value)) return Either.left(value.left)
          if (value.right === null) return Either.left("in cannot match NULL; use isNull: true")
          values.push(value.right)
        }
        conditions.push({ _tag: "In", field, values })
        json.in = values.map(toJson)
        break
      }
      case "gt":
      case "gte":
      case "lt":
      case "lte": {
        const value = bind(field, lookup, operand)
        if (Either.isLeft(value)) return Either.left(value.left)
        if (!isOrdered(value.right)) {
          return Either.left(
            `${lookup} needs a field whose values are ordered (numbers, bigints, strings or dates); ${field.name} stores ${show(value.right)} for ${show(operand)}`
          )
        }
        conditions.push({ _tag: "Compare", field, op: comparisons[lookup], value: value.right })
        json[lookup] = toJson(value.right)
        break
      }
      case "startsWith":
      case "endsWith":
      case "contains": {
        const text = field.isText(operand) ? field.encode(operand) : Either.left("")
        if (Either.isLeft(text) || typeof text.right !== "string") {
          return Either.left(`${lookup} needs a string, on a field whose values are strings; got ${show(operand)}`)
        }
        conditions.push({ _tag: "Text", field, lookup, text: text.right })
        json[lookup] = operand
        break
      }
      case "isNull": {
        if (typeof operand !== "boolean") return Either.left(`isNull needs true or false, got ${show(operand)}`)
        if (!field.nullable) return Either.left(`isNull needs a field that may be NULL; ${field.name} never is`)
        conditions.push({ _tag: "IsNull", field, isNull: operand })
        json.isNull = operand
        break
      }
      default:
        return Either.left(`${show(lookup)} is not a lookup; use one of ${lookups.join(", ")}, or a bare value for equality`)
    }
  }
  if (Object.keys(json).length === 0) {
    return Either.left(`the lookup object is empty; give a bare value for equality, or one of ${lookups.join(", ")}`)
  }
  return Either.right(json)
}

/**
 * The value the driver binds for `operand`: a scalar, never an object (nor a SQL fragment),
 * and one that SQL compares as JavaScript does (see `incomparable`).
 */
const bind = (field: Field, what: string, operand: unknown): Either.Either<unknown, string> => {
  const refused = incomparable(operand)
  if (refused !== undefined) {
    return Either.left(
      `${what} ${refused} is not a value SQL compares (NaN equals nothing, and JSON, in which filters travel, ` +
        "has no NaN or Infinity); filter on finite numbers and valid dates, or leave the lookup out"
    )
  }
  return Either.flatMap(
    Either.mapLeft(field.encode(operand), (reason) => `${what} ${show(operand)} is not a value of ${field.name}: ${reason}`),
    (value) => {
      if (!isBindable(value)) {
        return Either.left(`${field.name} stores ${show(value)} for ${show(operand)}; filters compare scalar columns only`)
      }
      const stored = incomparable(value)
      return stored === undefined
        ? Either.right(value)
        : Either.left(`${what} ${show(operand)}: ${field.name} stores it as ${stored}, which SQL does not compare`)
    }
  )
}

/**
 * What makes `value` no operand on any database, if anything: NaN equals nothing and the
 * dialects disagree on it (libsql refuses to bind it, PostgreSQL takes it for floats only
 * and orders it above every number). ±Infinity is refused too: a filter travels as JSON (its
 * key, and tasks for remote workers), where both are `null`; libsql refuses to bind it and
 * PostgreSQL's integer columns reject it. A caller who means "no bound" leaves the lookup
 * out. An invalid Date is a NaN time.
 */
const incomparable = (value: unknown): string | undefined => {
  if (typeof value === "number" && !Number.isFinite(value)) return String(value)
  if (value instanceof Date && Number.isNaN(value.getTime())) return "an invalid Date"
  return undefined
}

const isBindable = (value: unknown) => {
  const type = typeof value
  return type === "string" || type === "number" || type === "bigint" || type === "boolean" || value === null ||
    value instanceof Date || value instanceof Uint8Array
}

const isOrdered = (value: unknown) =>
  typeof value === "number" || typeof value === "bigint" || typeof value === "string" || value instanceof Date

const encodeJson = Schema.encodeSync(SqlValueJson)
/** Bound values are the scalars `SqlValueJson` encodes (`isBindable`). */
const toJson = (value: unknown) => encodeJson(value as typeof SqlValueJson.Type)

/** The filter as words, for errors: `username = "alan" and id in [1n, 2n]`. */
export const describe = (conditions: ReadonlyArray<Condition>): string =>
  conditions.length === 0 ? "{} (every row)" : conditions.map((condition) => {
    const name = condition.field.name
    switch (condition._tag) {
      case "Compare":
        return `${name} ${condition.op} ${show(condition.value)}`
      case "In":
        return `${name} in [${condition.values.map(show).join(", ")}]`
      case "Text":
        return `${name} ${condition.lookup} ${show(condition.text)}`
      case "IsNull":
        return `${name} is ${condition.isNull ? "" : "not "}null`
    }
  }).join(" and ")

/**
 * The input schema of a query job. Encoding never fails: a filter that does not compile
 * encodes to the text of its error, so that it still has a key of its own and `fetch`
 * reports the `FilterError` (a failing encode would surface as a `KeyError` instead).
 * Decoding accepts only what a valid filter encodes to.
 */
export const schema = <F>(source: Source): Schema.Schema<F, unknown, never> =>
  Schema.declare<F, unknown, readonly []>([], {
    decode: () => (input, _options, ast) =>
      Either.match(fromJson(source, input), {
        onLeft: (reason) => ParseResult.fail(new ParseResult.Type(ast, input, reason)),
        onRight: (filter) => ParseResult.succeed(filter as F)
      }),
    encode: () => (filter) =>
      ParseResult.succeed(Either.match(compile(source, filter), {
        onLeft: (error): unknown => error.message,
        onRight: (compiled) => compiled.json
      }))
  }, { identifier: `QueryJob.Filter<${source.identifier}>` })

const fromJson = (source: Source, json: unknown): Either.Either<Record<string, unknown>, string> => {
  if (typeof json === "string") return Either.left(`the filter was refused when it was encoded: ${json}`)
  if (!isPlainObject(json)) return Either.left(`expected a filter encoded by QueryJob (an object of fields), got ${show(json)}`)
  const filter: Record<string, unknown> = {}
  for (const name of Object.keys(json)) {
    const field = source.fields.get(name)
    const operands = json[name]
    if (field === undefined || !isPlainObject(operands)) return Either.left(`${show(name)} is not an encoded filter on a field of ${source.identifier}`)
    const decoded = decodeLookups(field, operands)
    if (Either.isLeft(decoded)) return Either.left(`field ${name}: ${decoded.left}`)
    filter[name] = decoded.right
  }
  return Either.match(compile(source, filter), {
    onLeft: (error) => Either.left(error.message),
    onRight: () => Either.right(filter)
  })
}

const decodeLookups = (field: Field, operands: Record<string, unknown>): Either.Either<unknown, string> => {
  if ("eq" in operands) {
    return Object.keys(operands).length === 1 ? fromStored(field, operands.eq) : Either.left("eq travels alone")
  }
  const out: Record<string, unknown> = {}
  for (const lookup of Object.keys(operands)) {
    const operand = operands[lookup]
    if (lookup === "in") {
      if (!Array.isArray(operand)) return Either.left(`in needs an array, got ${show(operand)}`)
      const values = Either.all(operand.map((item) => fromStored(field, item)))
      if (Either.isLeft(values)) return values
      out.in = values.right
    } else if (Object.hasOwn(comparisons, lookup)) {
      const value = fromStored(field, operand)
      if (Either.isLeft(value)) return value
      out[lookup] = value.right
    } else {
      // Text lookups and isNull travel as given; `compile` checks them.
      out[lookup] = operand
    }
  }
  return Either.right(out)
}

const decodeJson = Schema.decodeUnknownEither(SqlValueJson)

const fromStored = (field: Field, json: unknown): Either.Either<unknown, string> =>
  Either.flatMap(
    Either.mapLeft(decodeJson(json), formatParseError),
    field.decode
  )

/** A short, unambiguous rendering of a value for messages. */
const show = (value: unknown): string => {
  let text: string
  if (typeof value === "bigint") text = `${value}n`
  else if (value instanceof Date) text = Number.isNaN(value.getTime()) ? "Invalid Date" : value.toISOString()
  else if (value instanceof Uint8Array) text = `<${value.length} bytes>`
  else if (value === undefined || typeof value === "function" || typeof value === "symbol") text = String(value)
  else {
    try {
      text = JSON.stringify(value, (_, inner) => typeof inner === "bigint" ? `${inner}n` : inner) ?? String(value)
    } catch {
      text = Object.prototype.toString.call(value)
    }
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text
}
