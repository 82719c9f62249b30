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

describe("Policy.decide, rule by rule", () => {
  it("1. a miss fetches when syncOnMiss says so", () => {
    expect(Policy.decide(Option.none(), 0, rules(), "x")).toEqual({ _tag: "Fetch", status: "miss" })
  })

  it("1. a miss without syncOnMiss serves empty and queues one refresh behind a marker", () => {
    const decision = Policy.decide(Option.none(), 1_000, rules({ syncOnMiss: () => false }), "x")
    expect(decision).toEqual({ _tag: "ServeEmpty", marker: Entry.pending(61_000) })
  })

  it("1. syncOnMiss is asked with the input", () => {
    const perInput = rules({ syncOnMiss: (input) => input === "sync" })
    expect(Policy.decide(Option.none(), 0, perInput, "sync")._tag).toBe("Fetch")
    expect(Policy.decide(Option.none(), 0, perInput, "async")._tag).toBe("ServeEmpty")
  })

  it("2. a pending marker enqueues nothing before its expiry, and again after it", () => {
    const async = rules({ syncOnMiss: () => false })
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
    const parity = rules({ staleRefresh: syncOnStale("900 seconds") })
    expect(Policy.decide(value(0, 600_000), 840_000, parity, "x")._tag).toBe("ServeStale")
    expect(Policy.decide(value(0, 600_000), 960_000, parity, "x")).toEqual({ _tag: "Fetch", status: "stale" })
  })

  it("4. a predicate is told the age and how long the value has been stale", () => {
    const seen: Array<Policy.Ages> = []
    const predicate = rules({
      staleRefresh: {
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
    const longLived = rules({ staleRefresh: syncOnStale("1 minute") })
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
  syncOnMiss: fc.func(fc.boolean()),
  staleRefresh: staleRule,
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
      const ceiling = rules.staleRefresh._tag === "SyncAfter" ? Duration.toMillis(rules.staleRefresh.syncAfter) : Infinity
      fc.pre(now - fetchedAt <= ceiling)
      const decision = Policy.decide(Option.some(Entry.value(1, fetchedAt, fetchedAt + lifetime)), now, rules, "x")
      expect(decision).toEqual({ _tag: "Hit", value: 1 })
    }
  )

  it.prop(
    "the value returned is never older than syncAfter",
    { entry: anyEntry, now: fc.double(), syncAfter: span, syncOnMiss: fc.boolean() },
    ({ entry, syncOnMiss, now, syncAfter }) => {
      const decision = Policy.decide(
        entry,
        now,
        rules({ syncOnMiss: () => syncOnMiss, staleRefresh: syncOnStale(syncAfter) }),
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
      const async = rules({ syncOnMiss: () => false, refreshTimeout: () => Duration.millis(timeout) })
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

const maxStaleRule = (ms: number): Policy.StaleIfError<unknown> => ({ _tag: "MaxStale", maxStale: Duration.millis(ms) })
const withPolicies = fc.record({
  syncOnMiss: fc.func(fc.boolean()),
  staleRefresh: staleRule,
  refreshTimeout: span.map((ms) => () => Duration.millis(ms)),
  staleIfError: fc.option(span.map(maxStaleRule), { nil: undefined }),
  earlyRefresh: fc.option(fc.double({ min: 0.01, max: 10, noNaN: true }).map((beta) => ({ beta })), { nil: undefined })
})
const anyGraceEntry: fc.Arbitrary<Option.Option<Entry.Entry<number>>> = fc.oneof(
  anyEntry,
  fc.tuple(fc.integer(), time, time, time, fc.integer({ min: 0, max: 60_000 })).map(([v, f, e, g, d]) =>
    Option.some({ ...Entry.value(v, f, e), graceUntil: g, delta: d })
  )
)

describe("stale-if-error, properties", () => {
  it.prop(
    "a failed fetch of a stale value serves it exactly when it is younger than maxStale, with a grace of one refresh timeout",
    { fetchedAt: time, age: span, maxStale: span, timeout: span, error: fc.anything() },
    ({ age, error, fetchedAt, maxStale, timeout }) => {
      const rulesOf = rules({
        staleRefresh: syncOnStale(0),
        refreshTimeout: () => Duration.millis(timeout),
        staleIfError: maxStaleRule(maxStale)
      })
      const found = Entry.value(1, fetchedAt, fetchedAt)
      const now = fetchedAt + age
      const recovered = Policy.recover(found, error, now, rulesOf, "x")
      if (age < maxStale) {
        expect(recovered).toEqual({ _tag: "ServeStale", value: 1, entry: { ...found, expiresAt: now + timeout, graceUntil: now + timeout } })
      } else {
        expect(recovered).toBeUndefined()
      }
    }
  )

  it.prop(
    "within its grace a stale value is served without fetching, the one exception to syncAfter; after it, or past maxStale, it is fetched",
    { fetchedAt: time, age: span, maxStale: span, grace: span, syncAfter: span },
    ({ age, fetchedAt, grace, maxStale, syncAfter }) => {
      const rulesOf = rules({ staleRefresh: syncOnStale(syncAfter), staleIfError: maxStaleRule(maxStale) })
      const now = fetchedAt + age
      const graced = Option.some({ ...Entry.value(1, fetchedAt, now - 1), graceUntil: now - 1 + grace })
      const decision = Policy.decide(graced, now, rulesOf, "x")
      if (grace >= 1 && age < maxStale) expect(decision).toEqual({ _tag: "ServeGrace", value: 1 })
      else expect(decision._tag).not.toBe("ServeGrace")
      // Without stale-if-error a grace means nothing: the ceiling holds.
      const plain = Policy.decide(graced, now, rules({ staleRefresh: syncOnStale(syncAfter) }), "x")
      if (age > syncAfter) expect(plain._tag).toBe("Fetch")
    }
  )

  it("the predicate form is told the ages, the input and the error", () => {
    const seen: Array<unknown> = []
    const rulesOf = rules({
      staleIfError: { _tag: "When", predicate: (ages, input, error) => (seen.push([ages, input, error]), error === "down") }
    })
    const found = Entry.value(1, 0, 100)
    expect(Policy.recover(found, "down", 250, rulesOf, "in")?._tag).toBe("ServeStale")
    expect(Policy.recover(found, "bad input", 250, rulesOf, "in")).toBeUndefined()
    expect(seen[0]).toEqual([{ age: 250, staleFor: 150 }, "in", "down"])
  })
})

describe("early refresh (XFetch), properties", () => {
  const early = (beta: number) => rules({ earlyRefresh: { beta } })

  it.prop(
    "with any draw, a read at less than half the lifetime never refreshes early",
    { fetchedAt: time, lifetime: fc.integer({ min: 1, max: 3_600_000 }), at: fc.double({ min: 0, max: 0.4999, noNaN: true }), delta: span, beta: fc.double({ min: 0.01, max: 100, noNaN: true }), draw: fc.double({ min: Number.MIN_VALUE, max: 1, noNaN: true }) },
    ({ at, beta, delta, draw, fetchedAt, lifetime }) => {
      const entry = Option.some({ ...Entry.value(1, fetchedAt, fetchedAt + lifetime), delta })
      const decision = Policy.decide(entry, fetchedAt + Math.floor(at * lifetime), early(beta), "x", draw)
      expect(decision).toEqual({ _tag: "Hit", value: 1 })
    }
  )

  it.prop(
    "past half the lifetime it refreshes early exactly when now - delta × beta × ln(draw) ≥ expiresAt; a draw of 1 only at expiry",
    { fetchedAt: time, lifetime: fc.integer({ min: 2, max: 3_600_000 }), at: fc.double({ min: 0.5, max: 1, noNaN: true }), delta: span, beta: fc.double({ min: 0.01, max: 100, noNaN: true }), draw: fc.double({ min: Number.MIN_VALUE, max: 1, noNaN: true }) },
    ({ at, beta, delta, draw, fetchedAt, lifetime }) => {
      const now = fetchedAt + Math.ceil(at * lifetime)
      fc.pre(now <= fetchedAt + lifetime)
      const entry = Option.some({ ...Entry.value(1, fetchedAt, fetchedAt + lifetime), delta })
      const xfetch = now - delta * beta * Math.log(draw) >= fetchedAt + lifetime
      expect(Policy.decide(entry, now, early(beta), "x", draw)).toEqual(
        xfetch ? { _tag: "Hit", value: 1, refreshEarly: true } : { _tag: "Hit", value: 1 }
      )
      const atOne = Policy.decide(entry, now, early(beta), "x", 1)
      expect(atOne._tag === "Hit" && atOne.refreshEarly === true).toBe(now === fetchedAt + lifetime)
      // Without a draw (existing calls) there is no early refresh.
      expect(Policy.decide(entry, now, early(beta), "x")).toEqual({ _tag: "Hit", value: 1 })
    }
  )

  it.prop(
    "a hot key (1,000 reads a second, lifetime 10 s, 50 ms fetches, beta 1): stale reads ≤ 0.1%, refreshes per lifetime ≤ 1.2",
    { seed: fc.integer() },
    ({ seed }) => {
      // The engine's behaviour, simulated on the pure decision: an early refresh or a stale
      // write-back asks for one refresh, which lands 50 ms later; reads every millisecond.
      let state = seed >>> 0
      const random = () => {
        state = (state * 1664525 + 1013904223) >>> 0
        return (state + 1) / 4294967296
      }
      const lifetime = 10_000
      const delta = 50
      const rulesOf = rules({ refreshTimeout: () => Duration.seconds(60), earlyRefresh: { beta: 1 } })
      let entry: Entry.Value<number> = { ...Entry.value(0, 0, lifetime), delta }
      let landsAt: number | undefined
      let stale = 0
      let refreshes = 0
      const duration = 20 * lifetime
      for (let now = 0; now < duration; now++) {
        if (landsAt !== undefined && now >= landsAt) {
          entry = { ...Entry.value(now, now, now + lifetime), delta }
          landsAt = undefined
        }
        const decision = Policy.decide(Option.some(entry), now, rulesOf, "hot", random())
        if (decision._tag === "ServeStale") stale++
        const asks = (decision._tag === "Hit" && decision.refreshEarly === true) || decision._tag === "ServeStale"
        if (asks && landsAt === undefined) {
          refreshes++
          landsAt = now + delta
        }
        if (decision._tag === "ServeStale") entry = decision.entry
      }
      expect(stale / duration).toBeLessThanOrEqual(0.001)
      expect(refreshes / (duration / lifetime)).toBeLessThanOrEqual(1.2)
    },
    { fastCheck: { numRuns: 20 } }
  )
})

describe("the decision stays total with every rule", () => {
  it.prop(
    "one of the five, for every entry, time, rule set, input and draw",
    { entry: anyGraceEntry, now: fc.double(), rules: withPolicies, input: fc.anything(), draw: fc.option(fc.double({ min: 0, max: 1 }), { nil: undefined }) },
    ({ draw, entry, input, now, rules }) => {
      const decision = Policy.decide(entry, now, rules, input, draw)
      expect(["Hit", "Fetch", "ServeEmpty", "ServeStale", "ServeGrace"]).toContain(decision._tag)
      expect(["hit", "stale", "miss"]).toContain(Policy.status(decision))
    }
  )
})
