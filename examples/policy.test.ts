/**
 * How to property-test your own job's caching policy: once on the pure decision (the job is
 * the rule set `Policy.decide` reads), once end to end under TestClock with the test queue,
 * and once for a resilience policy (stale-if-error) against an origin that goes down.
 *
 *   npx vitest run examples/policy.test.ts
 */
import { expect, it } from "@effect/vitest"
import { Clock, Effect, Either, FastCheck as fc, Layer, Option, TestClock } from "effect"
import { CacheStore, Entry, Job, Policy, TestRefreshQueue } from "effect-cacheback"

// The job under test: tweets fresh for 20 minutes, never served older than 30.
const userTweets = Job.make({
  name: "userTweets",
  fetch: (username: string) => Effect.map(Clock.currentTimeMillis, (at) => ({ username, fetchedAt: at }))
}).pipe(
  Job.withLifetime("20 minutes"),
  Job.withRefreshTimeout("1 minute"),
  Job.withStaleRefresh({ syncAfter: "30 minutes" })
)
const minutes = (n: number) => n * 60_000

it.prop(
  "decide: whatever the cache holds, a served value is at most 30 minutes old",
  { fetchedAt: fc.nat(minutes(120)), lifetime: fc.nat(minutes(60)), readAt: fc.nat(minutes(240)) },
  ({ fetchedAt, lifetime, readAt }) => {
    const entry = Option.some(Entry.value("tweets", fetchedAt, fetchedAt + lifetime))
    const decision = Policy.decide(entry, readAt, userTweets, "alan")
    if (decision._tag === "Hit" || decision._tag === "ServeStale") {
      expect(readAt - fetchedAt).toBeLessThanOrEqual(minutes(30))
    }
  }
)

it.effect.prop(
  "end to end: readers never wait twice in a row, and never see tweets older than 30 minutes",
  { gaps: fc.array(fc.nat(minutes(45)), { minLength: 1, maxLength: 30 }), drains: fc.array(fc.boolean()) },
  ({ drains, gaps }) =>
    Effect.gen(function*() {
      let waitedLast = false
      for (const [i, gap] of gaps.entries()) {
        yield* TestClock.adjust(gap)
        if (drains[i]) yield* TestRefreshQueue.drain // the worker got to it, or not
        const now = yield* Clock.currentTimeMillis
        const { syncFetch, value } = yield* Job.lookup(userTweets, "alan")
        expect(now - value.fetchedAt).toBeLessThanOrEqual(minutes(30))
        // A synchronous fetch stores a fresh value: the next read within 20 minutes is a hit.
        if (waitedLast && gap < minutes(20)) expect(syncFetch).not.toBe(true)
        waitedLast = syncFetch === true
      }
    }).pipe(Effect.provide(Layer.merge(CacheStore.layerMemory({ capacity: 10 }), TestRefreshQueue.layer)))
)

// The same job with stale-if-error: while the origin is down, a value under 2 hours old is
// served rather than the error.
const origin = { down: false }
const resilientTweets = Job.make({
  name: "resilientTweets",
  fetch: (username: string) =>
    origin.down
      ? Effect.fail("origin down" as const)
      : Effect.map(Clock.currentTimeMillis, (at) => ({ username, fetchedAt: at }))
}).pipe(
  Job.withLifetime("20 minutes"),
  Job.withRefreshTimeout("1 minute"),
  Job.withStaleRefresh({ syncAfter: "30 minutes" }),
  Job.withStaleIfError("2 hours")
)

it.effect.prop(
  "stale-if-error: a read fails only when the newest value is 2 hours old or more, and never serves an older one",
  { steps: fc.array(fc.record({ gap: fc.nat(minutes(50)), down: fc.boolean(), drain: fc.boolean() }), { minLength: 1, maxLength: 40 }) },
  ({ steps }) =>
    Effect.gen(function*() {
      let newest: number | undefined // fetchedAt of the newest value a fetch produced
      let recoveredAt = Number.NEGATIVE_INFINITY // when a read last served stale for an error
      for (const { down, drain, gap } of steps) {
        yield* TestClock.adjust(gap)
        origin.down = down
        if (drain) yield* TestRefreshQueue.drain // refreshes fail too while it is down
        const now = yield* Clock.currentTimeMillis
        const read = yield* Effect.either(Job.lookup(resilientTweets, "alan"))
        if (Either.isLeft(read)) {
          expect(read.left).toBe("origin down")
          if (newest !== undefined) expect(now - newest).toBeGreaterThanOrEqual(minutes(120))
        } else {
          const { error, status, value } = read.right
          newest = Math.max(newest ?? 0, value.fetchedAt)
          if (error !== undefined) recoveredAt = now
          // Never past maxStale; past syncAfter only stale, for an error now or within the
          // refresh timeout after one (no read waits on a dead origin twice in a row).
          expect(now - value.fetchedAt).toBeLessThan(minutes(120))
          if (now - value.fetchedAt > minutes(30)) {
            expect(status).toBe("stale")
            expect(now - recoveredAt).toBeLessThanOrEqual(minutes(1))
          }
        }
      }
    }).pipe(
      Effect.ensuring(Effect.sync(() => (origin.down = false))),
      Effect.provide(Layer.merge(CacheStore.layerMemory({ capacity: 10 }), TestRefreshQueue.layer))
    )
)
