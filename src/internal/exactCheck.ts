import * as Option from "effect/Option"
import type * as AST from "effect/SchemaAST"

/**
 * A check compiled once from a schema's AST: true only for a JSON value that the schema
 * decodes to an equal value (every declared property present or optional, of its type,
 * and no other property). A value it does not accept still goes through
 * `Schema.decodeUnknownEither`, which answers it (a value with its excess properties
 * stripped, or the error), so the check changes how fast a stored value decodes, never what
 * it decodes to (`test/exactCheck.test.ts` holds it to that).
 *
 * `undefined` for a schema it does not cover: transformations (`Schema.Class`, `Date`,
 * `NumberFromString`...), declarations, recursive schemas, records and template literals.
 *
 * Written by hand: Effect Schema interprets the AST on every decode, ~0.4 µs and several
 * objects for a 4-field struct, a third of the CPU of a Redis hit (BENCHMARKS.md); this is
 * a few type tests and no allocation.
 */
export type Check = (json: unknown) => boolean

export const compile = (ast: AST.AST): Check | undefined => {
  switch (ast._tag) {
    case "StringKeyword":
      return isString
    case "NumberKeyword":
      return isNumber
    case "BooleanKeyword":
      return isBoolean
    case "UndefinedKeyword":
      return isUndefined
    case "UnknownKeyword":
    case "AnyKeyword":
      return always
    case "Literal": {
      const literal = ast.literal
      return typeof literal === "bigint" ? undefined : (json) => json === literal
    }
    case "Enums": {
      const values = ast.enums.map(([, value]) => value)
      return (json) => values.includes(json as string | number)
    }
    case "Refinement": {
      const from = compile(ast.from)
      return from === undefined ? undefined : (json) => from(json) && Option.isNone(ast.filter(json, {}, ast))
    }
    case "Union":
      return union(ast)
    case "TupleType":
      return tuple(ast)
    case "TypeLiteral":
      return struct(ast)
    default:
      return undefined
  }
}

const isString: Check = (json) => typeof json === "string"
const isNumber: Check = (json) => typeof json === "number"
const isBoolean: Check = (json) => typeof json === "boolean"
const isUndefined: Check = (json) => json === undefined
const always: Check = () => true

const primitive = (ast: AST.AST): boolean =>
  ast._tag === "StringKeyword" || ast._tag === "NumberKeyword" || ast._tag === "BooleanKeyword" ||
  ast._tag === "UndefinedKeyword" || ast._tag === "Literal" || ast._tag === "Enums" || ast._tag === "Refinement" && primitive(ast.from)

/**
 * A union decodes with its first member that succeeds. Primitive members return the value
 * itself, and only one may be an object or array: a member that accepts a value is then
 * the only one that can succeed, or succeeds with the value as well.
 */
const union = (ast: AST.Union): Check | undefined => {
  if (ast.types.filter((member) => !primitive(member)).length > 1) return undefined
  const members: Array<Check> = []
  for (const member of ast.types) {
    const check = compile(member)
    if (check === undefined) return undefined
    members.push(check)
  }
  return (json) => members.some((member) => member(json))
}

/** Required elements, then at most one rest type (`Schema.Array`, `Schema.Tuple`). */
const tuple = (ast: AST.TupleType): Check | undefined => {
  if (ast.rest.length > 1 || ast.elements.some((element) => element.isOptional)) return undefined
  const elements: Array<Check> = []
  for (const element of ast.elements) {
    const check = compile(element.type)
    if (check === undefined) return undefined
    elements.push(check)
  }
  const rest = ast.rest.length === 1 ? compile(ast.rest[0]!.type) : undefined
  if (ast.rest.length === 1 && rest === undefined) return undefined
  const count = elements.length
  return (json) => {
    if (!Array.isArray(json) || json.length < count || (rest === undefined && json.length !== count)) return false
    for (let i = 0; i < count; i++) if (!elements[i]!(json[i])) return false
    if (rest !== undefined) for (let i = count; i < json.length; i++) if (!rest(json[i])) return false
    return true
  }
}

const struct = (ast: AST.TypeLiteral): Check | undefined => {
  if (ast.indexSignatures.length > 0) return undefined
  const names: Array<string> = []
  const optional: Array<boolean> = []
  // Names that a JSON object inherits (`toString`...): read as own properties only.
  const inherited: Array<boolean> = []
  const checks: Array<Check> = []
  for (const property of ast.propertySignatures) {
    if (typeof property.name !== "string") return undefined
    const check = compile(property.type)
    if (check === undefined) return undefined
    names.push(property.name)
    optional.push(property.isOptional)
    inherited.push(property.name in Object.prototype)
    checks.push(check)
  }
  return (json) => {
    if (typeof json !== "object" || json === null || Array.isArray(json)) return false
    const object = json as Record<string, unknown>
    let present = 0
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!
      const value = object[name]
      if ((value === undefined || inherited[i]) && !Object.hasOwn(object, name)) {
        // A required property that is missing decodes as undefined, where allowed: not the same value.
        if (!optional[i]) return false
        continue
      }
      if (!checks[i]!(value)) return false
      present++
    }
    // No other property: decoding would strip it, and the value would not be the same.
    let own = 0
    for (const _ in object) own++
    return own === present
  }
}
