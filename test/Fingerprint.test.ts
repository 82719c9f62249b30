/**
 * Schema fingerprints: the same for the same encoded shape (in another process, for a
 * separately built schema, whatever the annotations or field order), different when the
 * shape changes.
 */
import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc, Schema } from "effect"
import { execFileSync } from "node:child_process"
import { fingerprint, fingerprintOf, structure } from "../src/internal/fingerprint.js"
import { jobFingerprints, queryJobName, schemas } from "./fixtures/fingerprint-schemas.js"

const Base = Schema.Struct({ id: Schema.Number, name: Schema.String, tags: Schema.Array(Schema.String) })
const print = (schema: Schema.Schema<any, any, never>) => fingerprint(schema)

describe("fingerprint", () => {
  it("is 16 characters of base64url", () => {
    expect(print(Base)).toMatch(/^[A-Za-z0-9_-]{16}$/)
  })

  it("is the same in another process, for each schema of the fixture, and so is a query job's name", () => {
    const child = JSON.parse(
      execFileSync(process.execPath, ["--import", "tsx", "test/fixtures/fingerprint-schemas.ts"], { encoding: "utf8" })
    )
    expect(child.pid).not.toBe(process.pid)
    const here = Object.fromEntries(Object.entries(schemas).map(([name, schema]) => [name, print(schema)]))
    expect(child.prints).toEqual(here)
    expect(new Set(Object.values(here)).size).toBe(Object.keys(here).length)
    expect(child.queryJobName).toBe(queryJobName())
    // A job's fingerprint too: none without a value schema at version 0, and distinct ones
    // for a version, a value schema, and both.
    const jobs = jobFingerprints()
    expect(child.jobs).toEqual(jobs)
    expect(jobs.none).toBeNull()
    expect(new Set([jobs.versioned, jobs.schema, jobs.both]).size).toBe(3)
  })

  it("is the same for a separately built identical schema, and for the same fields in another order", () => {
    const again = Schema.Struct({ id: Schema.Number, name: Schema.String, tags: Schema.Array(Schema.String) })
    expect(again).not.toBe(Base)
    expect(print(again)).toBe(print(Base))
    expect(print(Schema.Struct({ tags: Schema.Array(Schema.String), name: Schema.String, id: Schema.Number }))).toBe(
      print(Base)
    )
    expect(print(Schema.Union(Schema.String, Schema.Number))).toBe(print(Schema.Union(Schema.Number, Schema.String)))
  })

  it("changes when a field is added, removed, retyped or made optional, or a literal changes", () => {
    const changed = [
      Schema.Struct({ ...Base.fields, email: Schema.String }),
      Schema.Struct({ id: Schema.Number, name: Schema.String }),
      Schema.Struct({ ...Base.fields, id: Schema.String }),
      Schema.Struct({ ...Base.fields, id: Schema.BigIntFromSelf }),
      Schema.Struct({ ...Base.fields, id: Schema.Boolean }),
      Schema.Struct({ ...Base.fields, name: Schema.optional(Schema.String) }),
      Schema.Struct({ ...Base.fields, name: Schema.optionalWith(Schema.String, { exact: true }) }),
      Schema.Struct({ ...Base.fields, name: Schema.NullOr(Schema.String) }),
      Schema.Struct({ ...Base.fields, tags: Schema.Array(Schema.Number) }),
      Schema.Struct({ ...Base.fields, tags: Schema.Tuple(Schema.String) }),
      Schema.Struct({ ...Base.fields, ID: Schema.Number }).omit("id")
    ]
    const prints = changed.map(print)
    expect(prints).not.toContain(print(Base))
    expect(new Set(prints).size).toBe(prints.length)

    const literals = [
      Schema.Literal("a"),
      Schema.Literal("b"),
      Schema.Literal(1),
      Schema.Literal("1"),
      Schema.Literal(1n),
      Schema.Literal(true),
      Schema.Literal("true"),
      Schema.Literal(null),
      Schema.Literal("null"),
      Schema.Literal("a", "b"),
      Schema.Enums({ A: "a" }),
      Schema.Enums({ A: "a", B: "b" }),
      Schema.TemplateLiteral("a", Schema.Number),
      Schema.TemplateLiteral("a", Schema.String)
    ]
    const literalPrints = literals.map(print)
    expect(new Set(literalPrints).size).toBe(literals.length)
  })

  it("hashes the encoded side: transformations by what they encode to, refinements by their base", () => {
    expect(print(Schema.NumberFromString)).toBe(print(Schema.String))
    expect(print(Schema.Date)).toBe(print(Schema.String))
    expect(print(Schema.BigInt)).toBe(print(Schema.String))
    expect(print(Schema.Int)).toBe(print(Schema.Number))
    expect(print(Schema.String.pipe(Schema.maxLength(3)))).toBe(print(Schema.String))
    // A class encodes as the struct of its fields.
    class Person extends Schema.Class<Person>("Person")({ id: Schema.Number, name: Schema.String }) {}
    expect(print(Person)).toBe(print(Schema.Struct({ id: Schema.Number, name: Schema.String })))
    // Readonly-ness does not reach the encoded value.
    expect(print(Schema.mutable(Schema.Array(Schema.String)))).toBe(print(Schema.Array(Schema.String)))
    // Members that encode alike are one; nested unions are flattened.
    expect(print(Schema.Union(Schema.NumberFromString, Schema.String))).toBe(print(Schema.String))
    expect(print(Schema.Union(Schema.Literal("a"), Schema.Union(Schema.Literal("b"), Schema.Number)))).toBe(
      print(Schema.Union(Schema.Number, Schema.Literal("a", "b")))
    )
  })

  it("declarations count by their type parameters only: their name is an annotation", () => {
    expect(print(Schema.Uint8ArrayFromSelf)).toBe(print(Schema.DateFromSelf))
    expect(print(Schema.OptionFromSelf(Schema.String))).not.toBe(print(Schema.OptionFromSelf(Schema.Number)))
    expect(print(Schema.OptionFromSelf(Schema.String))).not.toBe(print(Schema.DateFromSelf))
    expect(structure(Schema.OptionFromSelf(Schema.NumberFromString))).toBe("declaration(string)")
  })

  it("recursive schemas: a cycle is a back-reference; the same shape built twice has one fingerprint", () => {
    interface Tree {
      readonly value: number
      readonly children: ReadonlyArray<Tree>
    }
    const tree = (): Schema.Schema<Tree> => {
      const Tree: Schema.Schema<Tree> = Schema.Struct({
        value: Schema.Number,
        children: Schema.Array(Schema.suspend(() => Tree))
      })
      return Tree
    }
    expect(structure(tree())).toBe(`{"children":tuple(;rec({"children":tuple(;ref(0)),"value":number;})),"value":number;}`)
    expect(print(tree())).toBe(print(tree()))

    interface Labelled {
      readonly value: string
      readonly children: ReadonlyArray<Labelled>
    }
    const Labelled: Schema.Schema<Labelled> = Schema.Struct({
      value: Schema.String,
      children: Schema.Array(Schema.suspend(() => Labelled))
    })
    expect(print(Labelled)).not.toBe(print(tree()))
  })

  it("throws for a suspended schema that builds a new schema at each expansion", () => {
    const endless = (): Schema.Schema<any> => Schema.Struct({ next: Schema.suspend(endless) })
    expect(() => print(endless())).toThrow(/more than 100 levels deep/)
  })

  it("fingerprintOf: parts taken together, in order, without ambiguity", () => {
    expect(fingerprintOf(["a", "b"])).toBe(fingerprintOf(["a", "b"]))
    expect(fingerprintOf(["a", "b"])).not.toBe(fingerprintOf(["b", "a"]))
    expect(fingerprintOf(["ab", ""])).not.toBe(fingerprintOf(["a", "b"]))
  })

  const annotations = fc.record({
    title: fc.string(),
    description: fc.string(),
    identifier: fc.string({ minLength: 1 }),
    documentation: fc.string()
  }, { requiredKeys: [] })
  const shapes = fc.constantFrom(...Object.values(schemas), Base, Schema.Union(Schema.Literal(1), Schema.Null))

  it.prop(
    "annotating a schema, or any of its fields, never changes its fingerprint",
    [shapes, annotations, annotations],
    ([schema, outer, inner]) => {
      const before = print(schema)
      expect(print(schema.annotations(outer))).toBe(before)
      expect(print(Schema.Struct({ field: schema }).annotations(outer))).toBe(
        print(Schema.Struct({ field: schema.annotations(inner) }))
      )
    }
  )
})
