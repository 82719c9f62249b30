import { describe, expect, it } from "@effect/vitest"
import { Duration, FastCheck as fc, Option } from "effect"
import { Entry, Policy } from "effect-cacheback"

const rules = (overrides: Partial<Policy.Rules<unknown>> = {}): Policy.Rules<unknown> => ({
  ...Policy.defaultRules,
  refreshTimeout: () => Duration.seconds(60),
  ...overrides
})
const syncOnStale = (syncAfter: Duration.DurationInput): Policy.StaleRule<unknown> => ({
  _tag: "SyncAfter",
  syncAfter: Duration.decode(syncAfter)
})
const value = (fetchedAt: number, expiresAt: number) => Option.some(Entry.value("v", fetchedAt, expiresAt))

describe("Policy.decide, rule by rule (SPEC §3)", () => {
  it("1. a miss fetches when fetchOnMiss says so", () => {
    expect(Policy.decide(Option.none(), 0, rules(), "x")).toEqual({ _tag: "Fetch", status: "miss" })
  })

  it("1. a miss without fetchOnMiss serves empty and queues one refresh behind a marker", () => {
    const decision = Policy.decide(Option.none(), 1_000, rules({ fetchOnMiss: () => false }), "x")
    expect(decision).toEqual({ _tag: "ServeEmpty", marker: Entry.pending(61_000) })
  })

  it("1. fetchOnMiss is asked with the input", () => {
    const perInput = rules({ fetchOnMiss: (input) => input === "sync" })
    expect(Policy.decide(Option.none(), 0, perInput, "sync")._tag).toBe("Fetch")
    expect(Policy.decide(Option.none(), 0, perInput, "async")._tag).toBe("ServeEmpty")
  })

  it("2. a pending marker enqueues nothing before its expiry, and again after it", () => {
    const async = rules({ fetchOnMiss: () => false })
    const marker = Option.some(Entry.pending(61_000))
    expect(Policy.decide(marker, 61_000, async, "x")).toEqual({ _tag: "ServeEmpty", marker: undefined })
    expect(Policy.decide(marker, 61_001, async, "x")).toEqual({ _tag: "ServeEmpty", marker: Entry.pending(121_001) })
  })

  it("2. a pending marker is a miss: a job that fetches on miss fetches", () => {
    expect(Policy.decide(Option.some(Entry.pending(10)), 0, rules(), "x")).toEqual({ _tag: "Fetch", status: "miss" })
  })

  it("3. a fresh value is a hit, up to and including its expiry", () => {
    expect(Policy.decide(value(0, 600_000), 600_000, rules(), "x")).toEqual({ _tag: "Hit", value: "v" })
  })

  it("4. a stale value is served, written back for the refresh timeout, keeping fetchedAt", () => {
    expect(Policy.decide(value(0, 600_000), 600_001, rules(), "x")).toEqual({
      _tag: "ServeStale",
      value: "v",
      entry: Entry.value("v", 0, 660_001)
    })
  })

  it("4. cacheback parity: lifetime 600 s, syncAfter 900 s: stale at 840 s, fetched at 960 s", () => {
    const parity = rules({ fetchOnStale: syncOnStale("900 seconds") })
    expect(Policy.decide(value(0, 600_000), 840_000, parity, "x")._tag).toBe("ServeStale")
    expect(Policy.decide(value(0, 600_000), 960_000, parity, "x")).toEqual({ _tag: "Fetch", status: "stale" })
  })

  it("4. a predicate is told the age and how long the value has been stale", () => {
    const seen: Array<Policy.Ages> = []
    const predicate = rules({
      fetchOnStale: {
        _tag: "When",
        predicate: (ages) => {
          seen.push(ages)
          return ages.staleFor > 100
        }
      }
    })
    expect(Policy.decide(value(1_000, 2_000), 2_050, predicate, "x")._tag).toBe("ServeStale")
    expect(Policy.decide(value(1_000, 2_000), 2_101, predicate, "x")._tag).toBe("Fetch")
    expect(seen).toEqual([{ age: 1_050, staleFor: 50 }, { age: 1_101, staleFor: 101 }])
  })

  it("syncAfter is a ceiling: a value older than it is fetched even before its expiry", () => {
    const longLived = rules({ fetchOnStale: syncOnStale("1 minute") })
    expect(Policy.decide(value(0, 3_600_000), 60_000, longLived, "x")._tag).toBe("Hit")
    expect(Policy.decide(value(0, 3_600_000), 60_001, longLived, "x")).toEqual({ _tag: "Fetch", status: "stale" })
  })

  it("status and syncFetch follow cacheback's process_result arguments", () => {
    expect([Policy.status({ _tag: "Hit", value: 1 }), Policy.syncFetch({ _tag: "Hit", value: 1 })]).toEqual(["hit", undefined])
    expect([Policy.status({ _tag: "Fetch", status: "stale" }), Policy.syncFetch({ _tag: "Fetch", status: "stale" })])
      .toEqual(["stale", true])
    const empty: Policy.Decision<number> = { _tag: "ServeEmpty", marker: undefined }
    expect([Policy.status(empty), Policy.syncFetch(empty)]).toEqual(["miss", false])
  })
})

// Times within a day, in milliseconds; durations up to an hour.
const time = fc.integer({ min: 0, max: 86_400_000 })
const span = fc.integer({ min: 0, max: 3_600_000 })
const staleRule: fc.Arbitrary<Policy.StaleRule<unknown>> = fc.oneof(
  fc.constant({ _tag: "Serve" } as const),
  span.map((ms) => ({ _tag: "SyncAfter", syncAfter: Duration.millis(ms) }) as const),
  fc.func(fc.boolean()).map((f) => ({ _tag: "When", predicate: (ages: Policy.Ages) => f(ages.age, ages.staleFor) }) as const)
)
const anyRules: fc.Arbitrary<Policy.Rules<unknown>> = fc.record({
  fetchOnMiss: fc.func(fc.boolean()),
  fetchOnStale: staleRule,
  refreshTimeout: span.map((ms) => () => Duration.millis(ms))
})
const anyEntry: fc.Arbitrary<Option.Option<Entry.Entry<number>>> = fc.oneof(
  fc.constant(Option.none()),
  fc.double({ noDefaultInfinity: false }).map((at) => Option.some(Entry.pending(at))),
  fc.tuple(fc.integer(), fc.double(), fc.double()).map(([v, f, e]) => Option.some(Entry.value(v, f, e)))
)

describe("Policy.decide, properties", () => {
  it.prop(
    "a fresh entry never fetches nor enqueues",
    { fetchedAt: time, lifetime: span, elapsed: span, rules: anyRules },
    ({ elapsed, fetchedAt, lifetime, rules }) => {
      const now = fetchedAt + Math.min(elapsed, lifetime)
      const ceiling = rules.fetchOnStale._tag === "SyncAfter" ? Duration.toMillis(rules.fetchOnStale.syncAfter) : Infinity
      fc.pre(now - fetchedAt <= ceiling)
      const decision = Policy.decide(Option.some(Entry.value(1, fetchedAt, fetchedAt + lifetime)), now, rules, "x")
      expect(decision).toEqual({ _tag: "Hit", value: 1 })
    }
  )

  it.prop(
    "the value returned is never older than syncAfter",
    { entry: anyEntry, now: fc.double(), syncAfter: span, fetchOnMiss: fc.boolean() },
    ({ entry, fetchOnMiss, now, syncAfter }) => {
      const decision = Policy.decide(
        entry,
        now,
        rules({ fetchOnMiss: () => fetchOnMiss, fetchOnStale: syncOnStale(syncAfter) }),
        "x"
      )
      if (decision._tag === "Hit" || decision._tag === "ServeStale") {
        const served = Option.getOrThrow(entry) as Entry.Value<number>
        expect(now - served.fetchedAt).toBeLessThanOrEqual(syncAfter)
      }
    }
  )

  it.prop(
    "a pending marker never enqueues twice within its expiry",
    { start: time, timeout: span, later: fc.array(span, { maxLength: 20 }) },
    ({ later, start, timeout }) => {
      const async = rules({ fetchOnMiss: () => false, refreshTimeout: () => Duration.millis(timeout) })
      const first = Policy.decide(Option.none(), start, async, "x")
      if (first._tag !== "ServeEmpty" || first.marker === undefined) throw new Error("a miss must queue a refresh")
      const marker = first.marker
      let enqueues = 0
      for (const offset of later) {
        const now = start + Math.min(offset, timeout)
        const decision = Policy.decide(Option.some(marker), now, async, "x")
        if (decision._tag === "ServeEmpty" && decision.marker !== undefined) enqueues++
      }
      expect(enqueues).toBe(0)
    }
  )

  it.prop(
    "a stale write-back keeps the value and fetchedAt and expires one refresh timeout from now",
    { entry: anyEntry, now: time, rules: anyRules },
    ({ entry, now, rules }) => {
      const decision = Policy.decide(entry, now, rules, "x")
      if (decision._tag !== "ServeStale") return
      const stale = Option.getOrThrow(entry) as Entry.Value<number>
      expect(decision.value).toBe(stale.value)
      expect(decision.entry).toEqual(
        Entry.value(stale.value, stale.fetchedAt, now + Duration.toMillis(rules.refreshTimeout("x")))
      )
    }
  )

  it.prop(
    "the decision is total: one of the four, for every entry, time and rule set",
    { entry: anyEntry, now: fc.double(), rules: anyRules, input: fc.anything() },
    ({ entry, input, now, rules }) => {
      const decision = Policy.decide(entry, now, rules, input)
      expect(["Hit", "Fetch", "ServeEmpty", "ServeStale"]).toContain(decision._tag)
      expect(["hit", "stale", "miss"]).toContain(Policy.status(decision))
    }
  )
})
