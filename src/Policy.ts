/**
 * The decision of `Job.get` (DESIGN.md §1) as one pure function: given what the cache holds, the
 * time and the job's rules, what to do. No I/O, so a property test can call it directly.
 *
 * This is the cacheback state machine; no library has it, so it is written here by hand.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import * as Entry from "./Entry.js"

/**
 * How a value was found: `hit` (fresh), `stale` (expired, or older than `syncAfter`),
 * `miss` (no value).
 *
 * @since 0.1.0
 * @category models
 */
export type Status = "hit" | "stale" | "miss"

/**
 * The ages of a stale value in milliseconds: since it was fetched, and since it expired.
 *
 * @since 0.1.0
 * @category models
 */
export interface Ages {
  readonly age: number
  readonly staleFor: number
}

/**
 * When a stale value is fetched synchronously instead of being served while a refresh runs.
 *
 * - `Serve`: never; always serve stale and refresh in the background (cacheback's default).
 * - `SyncAfter`: when the value is older than `syncAfter` since it was fetched. This is also
 *   a ceiling: a value older than `syncAfter` is never served, even before its expiry.
 * - `When`: when the predicate says so (cacheback's
 *   `should_stale_item_be_fetched_synchronously`).
 *
 * @since 0.1.0
 * @category models
 */
export type StaleRule<I> =
  | { readonly _tag: "Serve" }
  | { readonly _tag: "SyncAfter"; readonly syncAfter: Duration.Duration }
  | { readonly _tag: "When"; readonly predicate: (ages: Ages, input: I) => boolean }

/**
 * When a stale value whose synchronous fetch failed (or timed out) is served instead of the
 * error (DESIGN.md §8.1; django-cacheback #74): while it is younger than `maxStale` since it was
 * fetched, or when the predicate says so (told the error).
 *
 * @since 0.2.0
 * @category models
 */
export type StaleIfError<I> =
  | { readonly _tag: "MaxStale"; readonly maxStale: Duration.Duration }
  | { readonly _tag: "When"; readonly predicate: (ages: Ages, input: I, error: unknown) => boolean }

/**
 * Probabilistic early expiration (XFetch; Vattani, Chierichetti, Lowenstein, VLDB 2015): a
 * hit refreshes early when `now - delta × beta × ln(draw) ≥ expiresAt`, `delta` the time its
 * fetch took and `draw` uniform in (0, 1]; never before half its lifetime.
 *
 * @since 0.2.0
 * @category models
 */
export interface EarlyRefresh {
  readonly beta: number
}

/**
 * The parts of a job that the decision reads. Every `Job` is one.
 *
 * @since 0.1.0
 * @category models
 */
export interface Rules<in I> {
  /**
   * `Job.withSyncOnMiss`: whether a miss is fetched while the caller waits (cacheback's
   * `fetch_on_miss`). Named `fetchOnMiss` before 0.3.
   */
  readonly syncOnMiss: (input: I) => boolean
  /**
   * `Job.withStaleRefresh`: when a stale value is fetched while the caller waits rather than
   * served (cacheback's `fetch_on_stale_threshold`). Named `fetchOnStale` before 0.3.
   */
  readonly staleRefresh: StaleRule<I>
  /** `Job.withRefreshTimeout`: how long a written-back stale value or a pending marker lasts. */
  readonly refreshTimeout: (input: I) => Duration.Duration
  /** `Job.withStaleIfError`. @since 0.2.0 */
  readonly staleIfError?: StaleIfError<I> | undefined
  /** `Job.withEarlyRefresh`. @since 0.2.0 */
  readonly earlyRefresh?: EarlyRefresh | undefined
}

/**
 * What `get` does.
 *
 * - `Hit`: serve `value`; with `refreshEarly`, also enqueue a refresh (early refresh).
 * - `Fetch`: fetch synchronously, store, serve the fetched value. With `fallback` (a stale
 *   value and stale-if-error rules), a failed fetch may serve it instead: `recover` says.
 * - `ServeEmpty`: serve the job's empty value; when `marker` is set, store it and enqueue a
 *   refresh, otherwise a refresh is already queued.
 * - `ServeStale`: store `entry` (the same value, expiring at now + refresh timeout), enqueue
 *   a refresh, serve the stale value.
 * - `ServeGrace`: serve the stale value whose synchronous fetch failed a moment ago
 *   (stale-if-error): no fetch, no write; its refresh is queued already.
 *
 * @since 0.1.0
 * @category models
 */
export type Decision<A> =
  | { readonly _tag: "Hit"; readonly value: A; readonly refreshEarly?: true }
  | { readonly _tag: "Fetch"; readonly status: "miss" | "stale"; readonly fallback?: Entry.Value<A> }
  | { readonly _tag: "ServeEmpty"; readonly marker: Entry.Pending | undefined }
  | { readonly _tag: "ServeStale"; readonly value: A; readonly entry: Entry.Value<A> }
  | { readonly _tag: "ServeGrace"; readonly value: A }

const fetchMiss: Decision<never> = { _tag: "Fetch", status: "miss" }
const fetchStale: Decision<never> = { _tag: "Fetch", status: "stale" }
const waitForRefresh: Decision<never> = { _tag: "ServeEmpty", marker: undefined }

/**
 * The rules of a job that uses cacheback's defaults: fetch on miss, never fetch a stale
 * value synchronously, refresh timeout 60 seconds. `Job.make` starts from them.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaultRules: Rules<unknown> = {
  syncOnMiss: () => true,
  staleRefresh: { _tag: "Serve" },
  refreshTimeout: () => defaultRefreshTimeout
}

const defaultRefreshTimeout = Duration.seconds(60)

/**
 * Decides what `get` does with `entry` at `now` (epoch milliseconds of `Clock`).
 *
 * 1. No entry (or a tombstone): fetch if `syncOnMiss(input)`, otherwise serve empty and store a pending
 *    marker expiring at `now + refreshTimeout` with one refresh enqueued.
 * 2. A pending marker: as a miss, but nothing is enqueued before the marker expires.
 * 3. A stale value whose synchronous fetch failed less than a refresh timeout ago, while
 *    stale-if-error allows it (`graceUntil`): served, the one exception to `syncAfter`.
 * 4. Fresh (`now <= expiresAt`, and not older than `syncAfter`): a hit; with an early
 *    refresh rule and a `draw`, one that also enqueues a refresh when XFetch says so.
 * 5. Stale: fetch if the stale rule says so (with the value as a fallback under
 *    stale-if-error); otherwise serve it, write it back expiring at `now + refreshTimeout`
 *    (keeping `fetchedAt`) and enqueue a refresh.
 *
 * Total: it returns a decision for every entry, time, rule set, input and draw. `draw`, in
 * (0, 1], is the engine's draw from Effect's `Random` (a `TestRandom` drives it); without
 * one there is no early refresh.
 *
 * @since 0.1.0
 * @category decision
 */
export const decide = <I, A>(
  entry: Option.Option<Entry.Entry<A>>,
  now: number,
  rules: Rules<I>,
  input: I,
  draw?: number
): Decision<A> => {
  // A tombstone (what a delete leaves) holds no value: a miss.
  if (entry._tag === "None" || entry.value._tag === "Tombstone") {
    return rules.syncOnMiss(input) ? fetchMiss : serveEmpty(now, rules, input)
  }
  const found = entry.value
  if (found._tag === "Pending") {
    if (rules.syncOnMiss(input)) return fetchMiss
    return now <= found.expiresAt ? waitForRefresh : serveEmpty(now, rules, input)
  }
  const stale = rules.staleRefresh
  const age = now - found.fetchedAt
  if (found.graceUntil !== undefined && now <= found.graceUntil && withinGrace(rules.staleIfError, age)) {
    return { _tag: "ServeGrace", value: found.value }
  }
  // Written so that an age that cannot be told (NaN times) counts as too old.
  if (stale._tag === "SyncAfter" && !(age <= Duration.toMillis(stale.syncAfter))) return fetchStaleOf(rules, found)
  if (now <= found.expiresAt) {
    return rules.earlyRefresh !== undefined && draw !== undefined && refreshesEarly(rules.earlyRefresh, found, now, draw)
      ? { _tag: "Hit", value: found.value, refreshEarly: true }
      : { _tag: "Hit", value: found.value }
  }
  if (stale._tag === "When" && stale.predicate({ age, staleFor: now - found.expiresAt }, input)) {
    return fetchStaleOf(rules, found)
  }
  return {
    _tag: "ServeStale",
    value: found.value,
    entry: Entry.with_(found, { expiresAt: now + Duration.toMillis(rules.refreshTimeout(input)) })
  }
}

const fetchStaleOf = <I, A>(rules: Rules<I>, found: Entry.Value<A>): Decision<A> =>
  rules.staleIfError === undefined ? fetchStale : { _tag: "Fetch", status: "stale", fallback: found }

/** Whether a value of `age` may still be served in the grace after a failed fetch. */
const withinGrace = <I>(rule: StaleIfError<I> | undefined, age: number): boolean =>
  rule !== undefined && (rule._tag === "When" || age < Duration.toMillis(rule.maxStale))

/**
 * XFetch: `now - delta × beta × ln(draw) ≥ expiresAt`, and never before half the lifetime,
 * whatever the draw (a draw near 0 would otherwise refresh a value just fetched).
 */
const refreshesEarly = <A>(rule: EarlyRefresh, found: Entry.Value<A>, now: number, draw: number): boolean =>
  found.delta !== undefined &&
  now - found.fetchedAt >= (found.expiresAt - found.fetchedAt) / 2 &&
  now - found.delta * rule.beta * Math.log(draw) >= found.expiresAt

/**
 * After the synchronous fetch of a stale value failed with `error`: whether to serve the
 * value instead (stale-if-error), writing it back to be served without fetching until
 * `now + refreshTimeout` (`ServeStale` with `graceUntil`), or to let the error through
 * (`undefined`). Pure, like `decide`.
 *
 * @since 0.2.0
 * @category decision
 */
export const recover = <I, A>(
  fallback: Entry.Value<A>,
  error: unknown,
  now: number,
  rules: Rules<I>,
  input: I
): Decision<A> | undefined => {
  const rule = rules.staleIfError
  if (rule === undefined) return undefined
  const age = now - fallback.fetchedAt
  const allowed = rule._tag === "MaxStale"
    ? age < Duration.toMillis(rule.maxStale)
    : rule.predicate({ age, staleFor: now - fallback.expiresAt }, input, error)
  if (!allowed) return undefined
  const graceUntil = now + Duration.toMillis(rules.refreshTimeout(input))
  return { _tag: "ServeStale", value: fallback.value, entry: Entry.with_(fallback, { expiresAt: graceUntil, graceUntil }) }
}

const serveEmpty = <I>(now: number, rules: Rules<I>, input: I): Decision<never> => ({
  _tag: "ServeEmpty",
  marker: Entry.pending(now + Duration.toMillis(rules.refreshTimeout(input)))
})

/**
 * The status a decision reports to `Job.lookup` and `withProcessResult`.
 *
 * @since 0.1.0
 * @category decision
 */
export const status = <A>(decision: Decision<A>): Status => {
  switch (decision._tag) {
    case "Hit":
      return "hit"
    case "Fetch":
      return decision.status
    case "ServeEmpty":
      return "miss"
    case "ServeStale":
    case "ServeGrace":
      return "stale"
  }
}

/**
 * Whether the decision fetches synchronously: `true` for `Fetch`, `false` when a refresh is
 * left to the queue, `undefined` for a hit (cacheback's `sync_fetch`).
 *
 * @since 0.1.0
 * @category decision
 */
export const syncFetch = <A>(decision: Decision<A>): boolean | undefined =>
  decision._tag === "Hit" ? undefined : decision._tag === "Fetch"
