/**
 * Model-based test: random sequences of get / set / invalidate / delete / clock advance /
 * drain run against the library and against `Reference`, a small model of the decision
 * table of DESIGN.md §1 written here from its words and sharing no code with `Policy`.
 * Values, statuses, entries and the number of fetches must agree after every step.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, FastCheck as fc, Layer, Option, TestClock } from "effect"
import { CacheStore, Entry, Job, TestRefreshQueue } from "effect-cacheback"

interface Config {
  readonly syncOnMiss: boolean
  readonly lifetime: number
  readonly refreshTimeout: number
  readonly syncAfter: number | undefined
  readonly cacheTtl: number
  /** `withStaleIfError(maxStale)` */
  readonly staleIfError: number | undefined
  /** `withTags(() => ["t"])` */
  readonly tagged: boolean
}

type Op =
  | { readonly op: "get"; readonly key: string }
  | { readonly op: "set"; readonly key: string; readonly value: string }
  | { readonly op: "invalidate"; readonly key: string }
  | { readonly op: "delete"; readonly key: string }
  | { readonly op: "advance"; readonly by: number | "lifetime" | "refreshTimeout" | "syncAfter" | "cacheTtl" }
  | { readonly op: "drain" }
  | { readonly op: "outage"; readonly down: boolean }
  | { readonly op: "getMany" }
  | { readonly op: "invalidateTag" }

const EMPTY = "(empty)"
const FAILED = { value: "(failed)", status: "failed" }

class Down {}

/** The reference: DESIGN.md §1 read literally, over a map of entries with backend deadlines. */
const withoutToken = <E extends { readonly token?: string }>(entry: E | undefined) => {
  if (entry === undefined) return undefined
  const { token: _, ...rest } = entry
  return rest
}

class Reference {
  now = 0
  fetches = 0
  readonly versions = new Map<string, number>()
  readonly entries = new Map<string, { entry: Entry.Entry<string>; deadline: number }>()
  queue: Array<string> = []
  down = false
  /** The token of tag "t", as the memory store numbers them (one counter for all tags). */
  token: string | undefined = undefined
  tokens = 0
  constructor(readonly config: Config) {}

  /** Counts the attempt; while the upstream is down it fails and nothing is stored. */
  fetch(key: string) {
    this.fetches++
    if (this.down) throw new Down()
    const version = (this.versions.get(key) ?? 0) + 1
    this.versions.set(key, version)
    return `${key}#${version}`
  }
  store(key: string, entry: Entry.Entry<string>) {
    this.entries.set(key, { entry, deadline: this.now + this.config.cacheTtl })
  }
  read(key: string): Entry.Entry<string> | undefined {
    const slot = this.entries.get(key)
    if (slot === undefined || this.now >= slot.deadline) return undefined
    return slot.entry
  }
  fetchAndStore(key: string) {
    const value = this.fetch(key)
    this.storeValue(key, value)
    return value
  }
  /** A fetched or set value; a tagged one records the tag's token as it is now. */
  storeValue(key: string, value: string) {
    const entry = Entry.value(value, this.now, this.now + this.config.lifetime)
    if (this.config.tagged) {
      this.token ??= String(++this.tokens)
      this.store(key, { ...entry, tags: { t: this.token } })
    } else {
      this.store(key, entry)
    }
  }
  invalidateTag() {
    this.token = String(++this.tokens)
  }
  enqueue(key: string) {
    if (!this.queue.includes(key)) this.queue.push(key)
  }

  get(key: string): { value: string; status: string } {
    try {
      return this.read_(key)
    } catch (error) {
      if (error instanceof Down) return FAILED
      throw error
    }
  }
  read_(key: string): { value: string; status: string } {
    const { refreshTimeout, staleIfError, syncAfter, syncOnMiss } = this.config
    const found = this.read(key)
    let entry = found?._tag === "Tombstone" ? undefined : found
    if (entry === undefined || entry._tag === "Pending") {
      if (syncOnMiss) return { value: this.fetchAndStore(key), status: "miss" }
      if (entry !== undefined && this.now <= entry.expiresAt) return { value: EMPTY, status: "miss" }
      this.store(key, Entry.pending(this.now + refreshTimeout))
      this.enqueue(key)
      return { value: EMPTY, status: "miss" }
    }
    // A tag invalidated since the fetch: expired now, its tags forgotten.
    if (entry.tags !== undefined && entry.tags.t !== this.token) {
      const { tags: _, ...rest } = entry
      entry = { ...rest, expiresAt: Math.min(entry.expiresAt, this.now - 1) }
    }
    const age = this.now - entry.fetchedAt
    // Stale-if-error's grace after a failed fetch: served, syncAfter or not.
    if (entry.graceUntil !== undefined && this.now <= entry.graceUntil && staleIfError !== undefined && age < staleIfError) {
      return { value: entry.value, status: "stale" }
    }
    if (syncAfter !== undefined && age > syncAfter) {
      try {
        return { value: this.fetchAndStore(key), status: "stale" }
      } catch (error) {
        if (!(error instanceof Down) || staleIfError === undefined || !(age < staleIfError)) throw error
        const graceUntil = this.now + refreshTimeout
        this.store(key, { ...entry, expiresAt: graceUntil, graceUntil })
        this.enqueue(key)
        return { value: entry.value, status: "stale" }
      }
    }
    if (this.now <= entry.expiresAt) return { value: entry.value, status: "hit" }
    this.store(key, { ...entry, expiresAt: this.now + refreshTimeout })
    this.enqueue(key)
    return { value: entry.value, status: "stale" }
  }
  set(key: string, value: string) {
    this.storeValue(key, value)
  }
  invalidate(key: string) {
    const entry = this.read(key)
    if (entry === undefined) return
    this.store(key, { ...entry, expiresAt: this.now + this.config.refreshTimeout })
    this.enqueue(key)
  }
  delete(key: string) {
    this.entries.delete(key)
  }
  drain() {
    while (this.queue.length > 0) {
      const batch = this.queue
      this.queue = []
      for (const key of batch) {
        try {
          this.fetchAndStore(key)
        } catch (error) {
          if (!(error instanceof Down)) throw error
        }
      }
    }
  }
}

const seconds = (min: number, max: number) => fc.integer({ min, max }).map((s) => s * 1_000)
const config: fc.Arbitrary<Config> = fc
  .record({
    syncOnMiss: fc.boolean(),
    lifetime: seconds(1, 100),
    refreshTimeout: seconds(1, 50),
    syncAfter: fc.option(seconds(0, 200), { nil: undefined }),
    cacheTtl: seconds(1, 1_000),
    staleIfError: fc.option(seconds(0, 300), { nil: undefined }),
    tagged: fc.boolean()
  })
const key = fc.constantFrom("a", "b")
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: key.map((key) => ({ op: "get", key }) as const) },
  { weight: 1, arbitrary: fc.tuple(key, fc.constantFrom("x", "y")).map(([key, value]) => ({ op: "set", key, value }) as const) },
  { weight: 1, arbitrary: key.map((key) => ({ op: "invalidate", key }) as const) },
  { weight: 1, arbitrary: key.map((key) => ({ op: "delete", key }) as const) },
  { weight: 1, arbitrary: seconds(0, 150).map((by) => ({ op: "advance", by }) as const) },
  // Steps of the job's own durations land exactly on expiries and deadlines; 1 ms steps past them.
  {
    weight: 4,
    arbitrary: fc.constantFrom("lifetime" as const, "refreshTimeout" as const, "syncAfter" as const, "cacheTtl" as const, 1).map((by) =>
      ({ op: "advance", by }) as const
    )
  },
  { weight: 2, arbitrary: fc.constant({ op: "drain" } as const) },
  { weight: 1, arbitrary: fc.boolean().map((down) => ({ op: "outage", down }) as const) },
  { weight: 1, arbitrary: fc.constant({ op: "getMany" } as const) },
  { weight: 1, arbitrary: fc.constant({ op: "invalidateTag" } as const) }
)

describe("Job against a reference model of its decisions and policies", () => {
  it.effect.prop(
    "values, statuses, entries and fetch counts agree after every step",
    { config, ops: fc.array(op, { minLength: 1, maxLength: 30 }) },
    ({ config, ops }) =>
      Effect.gen(function*() {
        const model = new Reference(config)
        let fetches = 0
        let down = false
        const versions = new Map<string, number>()
        let job = Job.make({
          name: "model",
          fetch: (key: string) =>
            Effect.suspend(() => {
              fetches++
              if (down) return Effect.fail("upstream down")
              const version = (versions.get(key) ?? 0) + 1
              versions.set(key, version)
              return Effect.succeed(`${key}#${version}`)
            })
        }).pipe(
          Job.withQueueOptions({ attempts: 1 }),
          Job.withSyncOnMiss(config.syncOnMiss),
          Job.withEmpty(() => EMPTY),
          Job.withLifetime(config.lifetime),
          Job.withRefreshTimeout(config.refreshTimeout),
          Job.withCacheTtl(config.cacheTtl)
        )
        if (config.syncAfter !== undefined) job = job.pipe(Job.withStaleRefresh({ syncAfter: config.syncAfter }))
        if (config.staleIfError !== undefined) job = job.pipe(Job.withStaleIfError(config.staleIfError))
        if (config.tagged) job = job.pipe(Job.withTags(() => ["t"]))

        for (const [step, action] of ops.entries()) {
          const where = `step ${step}: ${JSON.stringify(action)} at ${model.now} ms`
          switch (action.op) {
            case "get": {
              const found = yield* Effect.either(Job.lookup(job, action.key))
              const got = found._tag === "Left" ? FAILED : { value: found.right.value, status: found.right.status }
              expect(got, where).toEqual(model.get(action.key))
              break
            }
            case "set":
              yield* Job.set(job, action.key, action.value)
              model.set(action.key, action.value)
              break
            case "invalidate":
              yield* Job.invalidate(job, action.key)
              model.invalidate(action.key)
              break
            case "delete":
              yield* Job.delete(job, action.key)
              model.delete(action.key)
              break
            case "advance": {
              const millis = typeof action.by === "number" ? action.by : config[action.by] ?? 0
              yield* TestClock.adjust(millis)
              model.now += millis
              break
            }
            case "drain":
              yield* TestRefreshQueue.drain
              model.drain()
              break
            case "outage":
              down = action.down
              model.down = action.down
              break
            case "getMany": {
              // One read of both keys, decided on one snapshot: each as a get would.
              const found = yield* Effect.either(Job.getMany(job, ["a", "b"]))
              const expected = ["a", "b"].map((key) => model.get(key))
              if (expected.some((read) => read === FAILED)) expect(found._tag, where).toBe("Left")
              else expect(found, where).toEqual(Either.right(expected.map((read) => read.value)))
              break
            }
            case "invalidateTag":
              yield* CacheStore.invalidateTags(["t"])
              model.invalidateTag()
              break
          }
          expect(fetches, where).toBe(model.fetches)
          for (const k of ["a", "b"]) {
            // The model has no tokens: they are checked by the tests of writes.
            expect(withoutToken(Option.getOrUndefined(yield* Job.rawGet(job, k))), `${where}, entry of ${k}`).toEqual(model.read(k))
          }
        }
      }).pipe(Effect.provide(Layer.mergeAll(CacheStore.layerMemory({ capacity: 100 }), TestRefreshQueue.layer))),
    { fastCheck: { numRuns: 500 } }
  )
})
