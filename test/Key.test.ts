import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc, Schema } from "effect"
import { Key, KeyError } from "effect-cacheback"

const keyOf = (input: unknown) => Either.getOrThrow(Key.make("job", input))
const failure = (input: unknown) => Either.getLeft(Key.make("job", input)).pipe((o) => o._tag === "Some" ? o.value : undefined)

describe("Key (SPEC §4)", () => {
  it("a void input keys as the job's name", () => {
    expect(keyOf(undefined)).toBe("job")
  })

  it("other inputs key as name: and a SHA-256 of the canonical encoding", () => {
    expect(keyOf("alan")).toMatch(/^job:[A-Za-z0-9_-]{43}$/)
  })

  it("is the same on every run and in every process (a pinned value)", () => {
    // printf '%s' '{"page":2,"user":"alan"}' | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d =
    expect(keyOf({ user: "alan", page: 2 })).toBe("job:PMPgZfk4yjOLUdem1DKFzf6TsdcPVMFW4AwoDI43XDE")
  })

  it("sorts object keys and leaves out undefined properties", () => {
    expect(keyOf({ a: 1, b: [true, null] })).toBe(keyOf({ b: [true, null], a: 1 }))
    expect(keyOf({ a: 1, c: undefined })).toBe(keyOf({ a: 1 }))
  })

  it("tells types apart: 1, \"1\", 1n, true, \"true\", null, [] and {} all differ", () => {
    const inputs = [1, "1", 1n, true, "true", null, "null", [], {}, [undefined], [null], new Date(0), "Date(1970-01-01T00:00:00.000Z)"]
    expect(new Set(inputs.map(keyOf)).size).toBe(inputs.length)
  })

  it("keys a Date by its instant", () => {
    expect(keyOf(new Date("2024-01-01T00:00:00Z"))).toBe(keyOf(new Date(Date.UTC(2024, 0, 1))))
  })

  it.prop("two inputs share a key only when their canonical encodings are equal", {
    a: fc.jsonValue(),
    b: fc.jsonValue()
  }, ({ a, b }) => {
    const encode = (x: unknown) => Either.getOrThrow(Key.canonical(x))
    expect(keyOf(a) === keyOf(b)).toBe(encode(a) === encode(b))
  })

  it.prop("the canonical encoding of JSON data does not depend on key order", { value: fc.dictionary(fc.string(), fc.jsonValue()) }, ({ value }) => {
    const reversed = Object.fromEntries(Object.entries(value).reverse())
    expect(keyOf(reversed)).toBe(keyOf(value))
  })

  describe("inputs that cannot be keyed fail with a KeyError naming the path and pointing to withKey", () => {
    class Point {
      constructor(readonly x: number) {}
    }
    const cycle: Record<string, unknown> = { a: 1 }
    cycle.self = cycle
    const cases: Array<[string, unknown, string, string]> = [
      ["a function", { user: { onChange: () => 1 } }, "$.user.onChange", "a function"],
      ["a symbol", [1, Symbol("s")], "$[1]", "a symbol"],
      ["a cycle", cycle, "$.self", "a cycle (this value contains itself)"],
      ["a class instance", { at: new Point(1) }, "$.at", "an instance of Point"],
      ["a Map", new Map(), "$", "an instance of Map"],
      ["an invalid Date", new Date(Number.NaN), "$", "an invalid Date"]
    ]
    for (const [name, input, path, reason] of cases) {
      it(name, () => {
        const error = failure(input)
        expect(error).toBeInstanceOf(KeyError)
        expect(error).toMatchObject({ job: "job", path, reason })
        expect(error!.message).toContain("Job.withKey")
      })
    }

    it("shared references that are not cycles are fine", () => {
      const shared = { x: 1 }
      expect(Either.isRight(Key.make("job", { a: shared, b: shared }))).toBe(true)
    })
  })

  describe("derive: the key function of a job", () => {
    class Point extends Schema.Class<Point>("Point")({ x: Schema.Number, y: Schema.Number }) {}

    it("keys class instances through the input schema", () => {
      const key = Key.derive("job", Point)
      expect(Either.getOrThrow(key(new Point({ x: 1, y: 2 })))).toBe(Either.getOrThrow(key(new Point({ y: 2, x: 1 }))))
      expect(Either.getOrThrow(key(new Point({ x: 1, y: 2 })))).toBe(keyOf({ x: 1, y: 2 }))
    })

    it("without a schema, a class instance is a KeyError", () => {
      expect(Either.isLeft(Key.derive("job")(new Point({ x: 1, y: 2 })))).toBe(true)
    })

    it("remembers primitive inputs without mixing up their types", () => {
      const key = Key.derive("job")
      for (let round = 0; round < 2; round++) {
        expect(Either.getOrThrow(key(1))).toBe(keyOf(1))
        expect(Either.getOrThrow(key("1"))).toBe(keyOf("1"))
        expect(Either.getOrThrow(key(true))).toBe(keyOf(true))
      }
    })

    it("stays correct past the memo's bound", () => {
      const key = Key.derive("job")
      for (let i = 0; i < 10_000; i++) key(i)
      expect(Either.getOrThrow(key(3))).toBe(keyOf(3))
      expect(Either.getOrThrow(key(9_999))).toBe(keyOf(9_999))
    })
  })
})
