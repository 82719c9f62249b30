/**
 * What a query job reads: a model's fields as columns of a table, each with the codecs that
 * turn filter operands into the values the driver binds and back.
 */
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as AST from "effect/SchemaAST"
import { formatParseError as format } from "../../internal/describe.js"
import { fingerprint } from "../../internal/fingerprint.js"

/**
 * A model: a schema whose decoded rows are its instances, with the fields that are its
 * columns (`Model.Class`, or any `Schema.Class`).
 */
export interface Model extends Schema.Schema.AnyNoContext {
  readonly identifier: string
  readonly fields: Schema.Struct.Fields
}

export interface Field {
  /** The model's name for it: the key of a filter. */
  readonly name: string
  /** The column, before the client's `transformQueryNames`: the field's encoded key. */
  readonly column: string
  /** An operand to the value the driver binds; Left says why it is not a value of the field. */
  readonly encode: (operand: unknown) => Either.Either<unknown, string>
  /** A bound value back to the operand it encodes. */
  readonly decode: (stored: unknown) => Either.Either<unknown, string>
  /** Whether `operand` is a string and the field's values are strings. */
  readonly isText: (operand: unknown) => boolean
  /** Whether the column may hold NULL. */
  readonly nullable: boolean
}

export interface Source {
  readonly model: Model
  readonly identifier: string
  /**
   * The model as job names give it: its identifier and the fingerprint of the rows it
   * encodes to (`User#k3F9aQ2xL0pZ7mWc`), so that two models of one name and other fields
   * never share entries, and the same model has the same name in every process.
   */
  readonly name: string
  readonly table: string
  readonly fields: ReadonlyMap<string, Field>
}

/** Describes `model` read from `table`; throws at once for what is not a model or a table. */
export const make = (where: string, model: Model, table: string): Source => {
  if (!Schema.isSchema(model) || typeof model.identifier !== "string" || typeof model.fields !== "object") {
    throw new TypeError(`${where}: expected a model class (Model.Class or Schema.Class) with fields, got ${typeof model}`)
  }
  if (typeof table !== "string" || table.trim() === "") {
    throw new TypeError(`${where}: expected options.table to be a non-empty table name, got ${JSON.stringify(table)}`)
  }
  const names = Object.keys(model.fields)
  if (names.length === 0) {
    throw new TypeError(`${where}: model ${model.identifier} has no fields; a query job selects its fields as columns`)
  }
  const fields = new Map<string, Field>()
  for (const name of names) fields.set(name, field(where, model.identifier, name, model.fields[name]))
  return { model, identifier: model.identifier, name: `${model.identifier}#${fingerprint(model)}`, table, fields }
}

const field = (where: string, identifier: string, name: string, schema: Schema.Struct.Field): Field => {
  // A one-field struct carries what a field alone does not: its encoded key (`fromKey`), and
  // optional or defaulted property signatures.
  const one = Schema.make<Record<string, unknown>, Record<string, unknown>, never>(loosen(Schema.Struct({ [name]: schema }).ast))
  const encoded = AST.encodedAST(one.ast)
  if (encoded._tag !== "TypeLiteral" || encoded.propertySignatures.length !== 1) {
    throw new TypeError(`${where}: field "${name}" of model ${identifier} does not encode to one column`)
  }
  const column = String(encoded.propertySignatures[0].name)
  const encode = Schema.encodeEither(one)
  const decode = Schema.decodeUnknownEither(one)
  const isType = Schema.is(Schema.typeSchema(one))
  const isEncoded = Schema.is(Schema.make(encoded))
  return {
    name,
    column,
    encode: (operand) =>
      Either.match(encode({ [name]: operand }), {
        onLeft: (error) => Either.left(format(error)),
        onRight: (row) =>
          column in row ? Either.right(row[column]) : Either.left("its encoding leaves the column out")
      }),
    decode: (stored) =>
      Either.match(decode({ [column]: stored }), {
        onLeft: (error) => Either.left(format(error)),
        onRight: (row) => Either.right(row[name])
      }),
    isText: (operand) => typeof operand === "string" && isType({ [name]: operand }) && isEncoded({ [column]: operand }),
    nullable: isEncoded({ [column]: null })
  }
}

/**
 * The schema without its refinements: an operand is a bound, not a value to store, so
 * `{ id: { gt: 0 } }` on a positive id, or `startsWith: "a"` on a field of at least three
 * characters, must encode.
 */
const loosen = (ast: AST.AST): AST.AST => {
  switch (ast._tag) {
    case "Refinement":
      return loosen(ast.from)
    case "Transformation":
      return new AST.Transformation(loosen(ast.from), loosen(ast.to), ast.transformation, ast.annotations)
    case "Union":
      return AST.Union.make(ast.types.map(loosen), ast.annotations)
    case "TypeLiteral":
      return new AST.TypeLiteral(
        ast.propertySignatures.map((p) =>
          new AST.PropertySignature(p.name, loosen(p.type), p.isOptional, p.isReadonly, p.annotations)
        ),
        ast.indexSignatures,
        ast.annotations
      )
    default:
      return ast
  }
}
