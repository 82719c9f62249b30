import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, FastCheck as fc, Layer, Schema } from "effect"
import { CacheStore, Job, Key, KeyError, TestRefreshQueue } from "effect-cacheback"
import * as v8 from "node:v8"
import * as vm from "node:vm"

const keyOf = (input: unknown) => Either.getOrThrow(Key.make("job", input))
const failure = (input: unknown) => Either.getLeft(Key.make("job", input)).pipe((o) => o._tag === "Some" ? o.value : undefined)
const derivedFailure = (key: (input: any) => Either.Either<string, KeyError>, input: unknown) =>
  Either.match(key(input), { onLeft: (error) => error, onRight: (key) => expect.fail(`expected a KeyError, got the key ${key}`) })

/** `input` nested in `levels` one-element arrays: `[[[input]]]` for 3. */
const nested = (levels: number, input: unknown = 0) => {
  let value = input
  for (let i = 0; i < levels; i++) value = [value]
  return value
}

describe("Key", () => {
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

    it("an input nested deeper than 1,000 levels, at the level past the limit (not a RangeError)", () => {
      expect(Either.isRight(Key.make("job", nested(1_000)))).toBe(true)
      for (const levels of [1_001, 10_000]) {
        const error = failure(nested(levels))
        expect(error).toBeInstanceOf(KeyError)
        expect(error).toMatchObject({ path: "$" + "[0]".repeat(1_000), reason: "nested deeper than 1,000 levels" })
      }
      let deepObject: unknown = 1
      for (let i = 0; i < 1_001; i++) deepObject = { a: deepObject }
      expect(failure(deepObject)).toMatchObject({ path: "$" + ".a".repeat(1_000), reason: "nested deeper than 1,000 levels" })
    })

    it("a getter or Proxy trap that throws, at the property it guards, with its message", () => {
      const getter = { user: { id: 1, get name(): string { throw new Error("not loaded") } } }
      expect(failure(getter)).toMatchObject({ path: "$.user.name", reason: "reading it threw (a getter or Proxy trap): not loaded" })
      const item = Object.defineProperty([1, 2], 1, { get: () => { throw new TypeError("gone") }, enumerable: true })
      expect(failure({ list: item })).toMatchObject({ path: "$.list[1]", reason: "reading it threw (a getter or Proxy trap): gone" })
      const proxy = new Proxy({}, { ownKeys: () => { throw new Error("no keys") } })
      expect(failure({ q: proxy })).toMatchObject({ path: "$.q", reason: "reading it threw (a getter or Proxy trap): no keys" })
      const revocable = Proxy.revocable({}, {})
      revocable.revoke()
      expect(failure([revocable.proxy])).toMatchObject({ path: "$[0]", reason: expect.stringMatching(/^reading it threw .*revoked/) })
    })

    it("an object whose prototype was set by hand is not called a class instance", () => {
      const byHand = "an object whose prototype is not Object.prototype (set with __proto__ or Object.create)"
      expect(failure({ options: { __proto__: { retries: 3 }, page: 1 } })).toMatchObject({ path: "$.options", reason: byHand })
      expect(failure(Object.create({ role: "admin" }))).toMatchObject({ path: "$", reason: byHand })
      expect(failure(Object.create(Object.create(null)))).toMatchObject({ path: "$", reason: byHand })
      expect(failure(new (class {})())).toMatchObject({ path: "$", reason: "an instance of an anonymous class" })
    })

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

    it("stays correct on both sides of the longest remembered input (4,096 characters encoded)", () => {
      const key = Key.derive("job")
      // A string encodes with its two quotes, { text } with 11 more characters: between them
      // these encodings run from 4,093 to 4,099 characters, and one of 8,011.
      const inputs = [4_093, 4_094, 4_095, 4_096, 4_097, 8_000].flatMap((length) => {
        const text = "é".repeat(length)
        return [text, { text: text.slice(11) }]
      })
      for (let round = 0; round < 3; round++) {
        for (const input of inputs) expect(Either.getOrThrow(key(input))).toBe(keyOf(input))
      }
    })

    it("stays correct past the memo's budget of characters", () => {
      const key = Key.derive("job")
      // 600 inputs of ~3,000 characters: twice what a memo holds, so it starts over mid-way.
      const inputs = Array.from({ length: 600 }, (_, i) => `${i}:`.padEnd(3_000, "x"))
      const first = inputs.map((input) => Either.getOrThrow(key(input)))
      expect(inputs.map((input) => Either.getOrThrow(key(input)))).toEqual(first)
      expect(first).toEqual(inputs.map(keyOf))
      expect(new Set(first).size).toBe(inputs.length)
    })

    describe("what the memo keeps alive is bounded", () => {
      // Tests run without --expose-gc; V8 still hands out its gc function to a new context.
      v8.setFlagsFromString("--expose-gc")
      const gc = vm.runInNewContext("gc") as () => void
      /** How much the heap grows, after GC, with a job's key function alive that has keyed `inputs` inputs. */
      const retained = (inputs: number, input: (i: number) => unknown) => {
        const key = Key.derive("job")
        gc()
        const before = process.memoryUsage().heapUsed
        for (let i = 0; i < inputs; i++) key(input(i))
        gc()
        const grown = (process.memoryUsage().heapUsed - before) / 2 ** 20
        expect(Either.isRight(key("still alive"))).toBe(true)
        return grown
      }
      const text = (length: number) => (i: number) => `${i}:`.padEnd(length, "x")

      it("large inputs are not remembered: 64 distinct 1 MB strings, then 64 { text: 1 MB }", () => {
        expect(retained(64, text(2 ** 20))).toBeLessThan(8)
        expect(retained(64, (i) => ({ text: text(2 ** 20)(i) }))).toBeLessThan(8)
      })

      it("inputs short enough to remember are held up to the budget: 3,000 distinct 4,000-character strings and objects", () => {
        // Bounded by entries alone (4,096), a memo would hold ~12 M characters of these; the
        // budget is 1 M.
        expect(retained(3_000, text(4_000))).toBeLessThan(8)
        expect(retained(3_000, (i) => ({ text: text(4_000)(i) }))).toBeLessThan(8)
      })
    })

    describe("an input schema keys strictly", () => {
      const Lookup = Schema.Struct({ id: Schema.Number, tags: Schema.optional(Schema.Array(Schema.Struct({ name: Schema.String }))) })

      it("a field the input schema does not know is a KeyError naming it, never dropped", () => {
        const key = Key.derive("job", Lookup)
        expect(Either.getOrThrow(key({ id: 1 }))).toBe(keyOf({ id: 1 }))
        expect(derivedFailure(key, { id: 1, extra: "a" })).toMatchObject({
          job: "job",
          path: "$.extra",
          reason: "the input schema has no field \"extra\": is unexpected, expected: \"id\" | \"tags\""
        })
        expect(derivedFailure(key, { id: 1, tags: [{ name: "a", color: "red" }] })).toMatchObject({
          path: "$.tags[0].color",
          reason: expect.stringContaining("the input schema has no field \"color\": is unexpected")
        })
        expect(derivedFailure(key, { id: "1" })).toMatchObject({ path: "$.id", reason: "the input schema rejects it: Expected number, actual \"1\"" })
      })

      it("an encode that throws is a KeyError with its message", () => {
        const Throwing = Schema.Struct({
          id: Schema.transform(Schema.Number, Schema.Number, {
            strict: true,
            decode: (n) => n,
            encode: () => {
              throw new Error("cannot encode")
            }
          })
        })
        expect(derivedFailure(Key.derive("job", Throwing), { id: 1 })).toMatchObject({
          path: "$",
          reason: "the input schema's encode threw: cannot encode"
        })
        const Filtered = Schema.Struct({
          id: Schema.Number.pipe(Schema.filter(() => {
            throw new Error("bad filter")
          }))
        })
        expect(derivedFailure(Key.derive("job", Filtered), { id: 1 })).toMatchObject({ reason: "the input schema's encode threw: bad filter" })
      })

      it("an input type with a field its input schema lacks does not compile, at any depth (checked by tsc in CI)", () => {
        const fetch = (input: { readonly id: number; readonly lang?: string }) => Effect.succeed(input.id)
        const nested = (input: { readonly user: { readonly id: number; readonly extra: string } }) => Effect.succeed(input.user.id)
        // @ts-expect-error the schema has no field "lang"
        Job.make({ name: "wider", fetch }).pipe(Job.withSchema({ input: Schema.Struct({ id: Schema.Number }) }))
        // @ts-expect-error the schema has no field "extra" in "user"
        Job.withSchema(Job.make({ name: "widerNested", fetch: nested }), { input: Schema.Struct({ user: Schema.Struct({ id: Schema.Number }) }) })
        // The same fields, or a schema of a wider type (readonly, optional), compile.
        const fits = Job.make({ name: "fits", fetch }).pipe(
          Job.withSchema({ input: Schema.Struct({ id: Schema.Number, lang: Schema.optional(Schema.String) }) })
        )
        const arrays = Job.make({ name: "arrays", fetch: (ids: Array<number>) => Effect.succeed(ids.length) }).pipe(
          Job.withSchema({ input: Schema.Array(Schema.Number) })
        )
        expect([fits.inputSchema, arrays.inputSchema].every((schema) => schema !== undefined)).toBe(true)
      })

      it.effect("through Job.get: two inputs differing in a field the schema does not know never share a value", () =>
        Effect.gen(function*() {
          let fetches = 0
          const job = Job.make({
            name: "strict",
            fetch: (input: { readonly id: number }) =>
              Effect.sync(() => `${input.id}/${(input as { readonly lang?: string }).lang ?? "en"}#${++fetches}`)
          }).pipe(Job.withSchema({ input: Schema.Struct({ id: Schema.Number }) }))
          for (const lang of ["fr", "de"]) {
            // An object with more fields than its type says (TypeScript allows it when not a literal).
            const wider: { readonly id: number } = { id: 1, lang } as { readonly id: number; readonly lang: string }
            const error = yield* Effect.flip(Job.get(job, wider))
            expect(error).toBeInstanceOf(KeyError)
            expect(error).toMatchObject({ job: "strict", path: "$.lang" })
            expect(error.message).toContain("the input schema has no field \"lang\"")
          }
          expect(fetches).toBe(0)
          expect(yield* Job.get(job, { id: 1 })).toBe("1/en#1")
          expect(yield* Job.get(job, { id: 1 })).toBe("1/en#1")
        }).pipe(Effect.provide(Layer.mergeAll(CacheStore.layerMemory({ capacity: 100 }), TestRefreshQueue.layer))))
    })
  })
})
