/**
 * Fingerprints of schemas: a short hash of the shape a schema encodes to, the same in every
 * process, run and Node version, so that an entry or a job name written by one process can
 * be told apart from another shape by the next.
 *
 * What is hashed is the encoded side's structure, walked as `SchemaAST.encodedAST` would
 * give it (transformations by their `from`, refinements by their `from`):
 * - keywords by name (`string`, `number`, `boolean`, `bigint`, `symbol`, `object`, `unknown`,
 *   `any`, `undefined`, `void`, `never`);
 * - literals by type and value (`"1"`, `1` and `1n` differ), enums by their values (their
 *   names never reach the encoded form), template literals by head, spans and literals;
 * - structs by their fields, sorted by name (two structs with the same fields in another
 *   order encode the same JSON), each with its optionality and type, and their index
 *   signatures; tuples and arrays by elements (with optionality) and rest;
 * - unions by their members' serializations, flattened, sorted and without duplicates;
 * - declarations (`DateFromSelf`, `Uint8ArrayFromSelf`, `OptionFromSelf(…)`) by their tag and
 *   their type parameters only. A declaration is its decode function, whose identity is not
 *   the same in two processes, and its name lives in an annotation (`identifier`), which
 *   callers may change freely; so `DateFromSelf` and `Uint8ArrayFromSelf` share a
 *   fingerprint, and a shape change between two declarations of the same arity needs
 *   `Job.withVersion`.
 *
 * What is not: annotations of any kind (title, description, identifier, ...), readonly-ness
 * (it does not reach the encoded value), refinements (the encoded side of a refinement is
 * its `from`: `Schema.Int` is `number`), transformations' functions, symbol and function
 * identities. Symbols (property keys and unique-symbol literals) count by their registry
 * key or description, which are the same in every process.
 *
 * Recursive schemas: a `Suspend` is expanded once as `rec(...)`; a `Suspend` that leads back
 * to a schema being expanded is `ref(n)`, `n` counting the enclosing `rec`s outwards, so the
 * text depends on the shape alone, never on object identities.
 *
 * The walk is on the original AST rather than on `encodedAST`'s result because the latter
 * builds a new `Suspend` at each expansion, where the original's thunks are memoized: a cycle
 * is found by the identity of what a `Suspend` leads to.
 */
import { hash } from "node:crypto"
import type * as Schema from "effect/Schema"
import type * as AST from "effect/SchemaAST"

/**
 * The fingerprint of what `schema` encodes to: 16 characters of base64url (96 bits of a
 * SHA-256). Throws for a suspended schema that expands more than 100 levels deep without
 * coming back to itself (a thunk that builds a new schema at each call).
 */
export const fingerprint = (schema: Schema.Schema.AnyNoContext): string => {
  const known = memo.get(schema.ast)
  if (known !== undefined) return known
  const print = digest(structure(schema))
  memo.set(schema.ast, print)
  return print
}

/** The fingerprint of several parts (fingerprints, versions, names) taken together, in order. */
export const fingerprintOf = (parts: ReadonlyArray<string>): string => digest(JSON.stringify(parts))

/** The canonical text that `fingerprint` hashes: readable, for tests and for debugging. */
export const structure = (schema: Schema.Schema.AnyNoContext): string => walk(schema.ast, [])

const memo = new WeakMap<AST.AST, string>()

const digest = (text: string) => hash("sha256", text, "base64url").slice(0, 16)

const maxDepth = 100

/** `expanding`: the schemas the enclosing `Suspend`s led to, innermost last. */
const walk = (ast: AST.AST, expanding: Array<AST.AST>): string => {
  switch (ast._tag) {
    case "Transformation":
    case "Refinement":
      return walk(ast.from, expanding)
    case "Suspend": {
      const target = ast.f()
      const at = expanding.lastIndexOf(target)
      if (at >= 0) return `ref(${expanding.length - 1 - at})`
      if (expanding.length >= maxDepth) {
        throw new RangeError(
          `fingerprint: a suspended schema expands more than ${maxDepth} levels deep without coming back to itself; ` +
            "declare a recursive schema once and refer to it (const A = Schema.Struct({ a: Schema.suspend(() => A) }))"
        )
      }
      expanding.push(target)
      try {
        return `rec(${walk(target, expanding)})`
      } finally {
        expanding.pop()
      }
    }
    case "Declaration":
      return `declaration(${ast.typeParameters.map((parameter) => walk(parameter, expanding)).join(",")})`
    case "Literal":
      return literal(ast.literal)
    case "UniqueSymbol":
      return `uniqueSymbol(${symbol(ast.symbol)})`
    case "Enums":
      return `enums(${sorted(ast.enums.map(([, value]) => literal(value))).join(",")})`
    case "TemplateLiteral":
      return `template(${
        [JSON.stringify(ast.head), ...ast.spans.map((span) => `${walk(span.type, expanding)}${JSON.stringify(span.literal)}`)]
          .join(",")
      })`
    case "TupleType": {
      const elements = ast.elements.map((element) => `${walk(element.type, expanding)}${element.isOptional ? "?" : ""}`)
      const rest = ast.rest.map((element) => walk(element.type, expanding))
      return `tuple(${elements.join(",")};${rest.join(",")})`
    }
    case "TypeLiteral": {
      const fields = sorted(ast.propertySignatures.map((property) =>
        `${key(property.name)}${property.isOptional ? "?" : ""}:${walk(property.type, expanding)}`
      ))
      const indexes = sorted(ast.indexSignatures.map((index) =>
        `[${walk(index.parameter, expanding)}]:${walk(index.type, expanding)}`
      ))
      return `{${fields.join(",")};${indexes.join(",")}}`
    }
    case "Union": {
      // Nested unions and members that encode alike are one set: `A | (B | A)` is `A | B`.
      const members = sorted(ast.types.flatMap((member) => unionMembers(member, expanding)))
      return members.length === 1 ? members[0] : `union(${members.join("|")})`
    }
    case "UndefinedKeyword":
      return "undefined"
    case "VoidKeyword":
      return "void"
    case "NeverKeyword":
      return "never"
    case "UnknownKeyword":
      return "unknown"
    case "AnyKeyword":
      return "any"
    case "StringKeyword":
      return "string"
    case "NumberKeyword":
      return "number"
    case "BooleanKeyword":
      return "boolean"
    case "BigIntKeyword":
      return "bigint"
    case "SymbolKeyword":
      return "symbol"
    case "ObjectKeyword":
      return "object"
  }
}

const unionMembers = (ast: AST.AST, expanding: Array<AST.AST>): Array<string> => {
  switch (ast._tag) {
    case "Transformation":
    case "Refinement":
      return unionMembers(ast.from, expanding)
    case "Union":
      return ast.types.flatMap((member) => unionMembers(member, expanding))
    default:
      return [walk(ast, expanding)]
  }
}

/** Sorted by code unit (never by locale), without duplicates. */
const sorted = (texts: ReadonlyArray<string>): Array<string> =>
  Array.from(new Set(texts)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))

const literal = (value: AST.LiteralValue): string => {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value)
    case "bigint":
      return `${value}n`
    default:
      // numbers, booleans and null; String(-0) is "0", as JSON has it.
      return String(value)
  }
}

const key = (name: PropertyKey): string => typeof name === "symbol" ? symbol(name) : JSON.stringify(String(name))

const symbol = (value: symbol): string => {
  const registered = Symbol.keyFor(value)
  return registered !== undefined
    ? `Symbol.for(${JSON.stringify(registered)})`
    : `Symbol(${JSON.stringify(value.description ?? "")})`
}
