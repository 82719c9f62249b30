/**
 * The exact check that spares a stored value its schema decode (`src/internal/exactCheck.ts`):
 * it accepts a JSON value exactly when the schema decodes it to an equal value, so taking it
 * never changes what a read returns.
 */
import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, Either, FastCheck as fc, Schema } from "effect"
import { compile } from "../src/internal/exactCheck.js"

type AnySchema = Schema.Schema.AnyNoContext

/** Schemas the check covers, nested up to a few levels. */
const covered = fc.letrec<{ schema: AnySchema; leaf: AnySchema; object: AnySchema }>((tie) => ({
  leaf: fc.constantFrom<AnySchema>(
    Schema.String,
    Schema.Number,
    Schema.Boolean,
    Schema.Literal("a"),
    Schema.Literal(1),
    Schema.Null,
    Schema.Literal("x", "y"),
    Schema.Int,
    Schema.NonEmptyString,
    Schema.Unknown
  ),
  object: fc.oneof(
    fc.record({ a: tie("schema"), b: tie("schema"), c: tie("schema") }).map(({ a, b, c }) =>
      Schema.Struct({ a, b, c: Schema.optional(c) }) as AnySchema
    ),
    tie("schema").map((item) => Schema.Array(item) as AnySchema),
    fc.tuple(tie("schema"), tie("schema")).map(([a, b]) => Schema.Tuple(a, b) as AnySchema)
  ),
  schema: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    tie("leaf"),
    tie("object"),
    tie("object").map((object) => Schema.NullOr(object) as AnySchema),
    tie("object").map((object) => Schema.Union(Schema.String, Schema.Literal(0), object) as AnySchema)
  )
})).schema

/** JSON as Redis gives it back: what was written, parsed again. */
const json = (value: unknown): unknown => JSON.parse(JSON.stringify({ value })).value

/** Values of the schema, the same with a property added or one taken away, and any JSON. */
const values = (schema: AnySchema) =>
  fc.oneof(
    Arbitrary.make(schema).map(json),
    Arbitrary.make(schema).map((value) => json(Array.isArray(value) || typeof value !== "object" || value === null ? value : { ...value, extra: 1 })),
    Arbitrary.make(schema).map((value) => {
      if (typeof value !== "object" || value === null || Array.isArray(value)) return json(value)
      const { a: _, ...rest } = value as Record<string, unknown>
      return json(rest)
    }),
    fc.jsonValue()
  )

const decodesToItself = (schema: AnySchema, value: unknown) => {
  const decoded = Schema.decodeUnknownEither(schema)(value)
  if (Either.isLeft(decoded)) return false
  try {
    expect(decoded.right).toStrictEqual(value)
    return true
  } catch {
    return false
  }
}

describe("exactCheck", () => {
  it.prop(
    "accepts a JSON value exactly when the schema decodes it to an equal value",
    [covered.chain((schema) => fc.tuple(fc.constant(schema), fc.array(values(schema), { minLength: 1, maxLength: 8 })))],
    ([[schema, inputs]]) => {
      const check = compile(schema.ast)
      expect(check).toBeDefined()
      for (const input of inputs) expect(check!(input), JSON.stringify(input)).toBe(decodesToItself(schema, input))
    },
    { fastCheck: { numRuns: 300 } }
  )

  it("accepts the values the schema itself writes", () => {
    const Profile = Schema.Struct({ key: Schema.String, name: Schema.String, followers: Schema.Number, tags: Schema.Array(Schema.String) })
    const check = compile(Profile.ast)!
    expect(check(json({ key: "k", name: "n", followers: 3, tags: ["a"] }))).toBe(true)
    expect(check(json({ key: "k", name: "n", followers: "3", tags: ["a"] }))).toBe(false)
    expect(check(json({ key: "k", name: "n", followers: 3, tags: ["a"], extra: true }))).toBe(false)
    expect(check(json({ key: "k", name: "n", tags: ["a"] }))).toBe(false)
  })

  it("reads a property named like one every object inherits as an own property only", () => {
    // (Not in the property above: Effect's union decoding fails on such a name.)
    const check = compile(Schema.Struct({ toString: Schema.optional(Schema.Unknown) }).ast)!
    expect(check(json({ extra: 1 }))).toBe(false)
    expect(check(json({}))).toBe(true)
    expect(check(json({ toString: "x" }))).toBe(true)
  })

  it("does not cover schemas whose decoding can change a value", () => {
    class User extends Schema.Class<User>("User")({ id: Schema.Number }) {}
    const uncovered: ReadonlyArray<AnySchema> = [
      Schema.Date,
      Schema.NumberFromString,
      User,
      Schema.Record({ key: Schema.String, value: Schema.Number }),
      Schema.Struct({ at: Schema.Date }),
      Schema.Array(Schema.NumberFromString),
      Schema.Union(Schema.Struct({ a: Schema.String }), Schema.Struct({ b: Schema.String })),
      Schema.Tuple(Schema.String, Schema.optionalElement(Schema.Number))
    ]
    for (const schema of uncovered) expect(compile(schema.ast), String(schema)).toBeUndefined()
  })
})
