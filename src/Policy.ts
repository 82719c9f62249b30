/**
 * The decision of `Job.get`, SPEC §3, as one pure function: given what the cache holds, the
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
 * The parts of a job that the decision reads. Every `Job` is one.
 *
 * @since 0.1.0
 * @category models
 */
export interface Rules<in I> {
  readonly fetchOnMiss: (input: I) => boolean
  readonly fetchOnStale: StaleRule<I>
  readonly refreshTimeout: (input: I) => Duration.Duration
}

/**
 * What `get` does.
 *
 * - `Hit`: serve `value`; nothing else.
 * - `Fetch`: fetch synchronously, store, serve the fetched value.
 * - `ServeEmpty`: serve the job's empty value; when `marker` is set, store it and enqueue a
 *   refresh, otherwise a refresh is already queued.
 * - `ServeStale`: store `entry` (the same value, expiring at now + refresh timeout), enqueue
 *   a refresh, serve the stale value.
 *
 * @since 0.1.0
 * @category models
 */
export type Decision<A> =
  | { readonly _tag: "Hit"; readonly value: A }
  | { readonly _tag: "Fetch"; readonly status: "miss" | "stale" }
  | { readonly _tag: "ServeEmpty"; readonly marker: Entry.Pending | undefined }
  | { readonly _tag: "ServeStale"; readonly value: A; readonly entry: Entry.Value<A> }

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
  fetchOnMiss: () => true,
  fetchOnStale: { _tag: "Serve" },
  refreshTimeout: () => defaultRefreshTimeout
}

const defaultRefreshTimeout = Duration.seconds(60)

/**
 * Decides what `get` does with `entry` at `now` (epoch milliseconds of `Clock`).
 *
 * 1. No entry: fetch if `fetchOnMiss(input)`, otherwise serve empty and store a pending
 *    marker expiring at `now + refreshTimeout` with one refresh enqueued.
 * 2. A pending marker: as a miss, but nothing is enqueued before the marker expires.
 * 3. Fresh (`now <= expiresAt`, and not older than `syncAfter`): a hit.
 * 4. Stale: fetch if the stale rule says so; otherwise serve it, write it back expiring at
 *    `now + refreshTimeout` (keeping `fetchedAt`) and enqueue a refresh.
 *
 * Total: it returns a decision for every entry, time, rule set and input.
 *
 * @since 0.1.0
 * @category decision
 */
export const decide = <I, A>(
  entry: Option.Option<Entry.Entry<A>>,
  now: number,
  rules: Rules<I>,
  input: I
): Decision<A> => {
  if (entry._tag === "None") {
    return rules.fetchOnMiss(input) ? fetchMiss : serveEmpty(now, rules, input)
  }
  const found = entry.value
  if (found._tag === "Pending") {
    if (rules.fetchOnMiss(input)) return fetchMiss
    return now <= found.expiresAt ? waitForRefresh : serveEmpty(now, rules, input)
  }
  const stale = rules.fetchOnStale
  const age = now - found.fetchedAt
  // Written so that an age that cannot be told (NaN times) counts as too old.
  if (stale._tag === "SyncAfter" && !(age <= Duration.toMillis(stale.syncAfter))) return fetchStale
  if (now <= found.expiresAt) return { _tag: "Hit", value: found.value }
  if (stale._tag === "When" && stale.predicate({ age, staleFor: now - found.expiresAt }, input)) return fetchStale
  return {
    _tag: "ServeStale",
    value: found.value,
    entry: { ...found, expiresAt: now + Duration.toMillis(rules.refreshTimeout(input)) }
  }
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
