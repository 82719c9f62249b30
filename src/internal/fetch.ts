/**
 * Fetching and storing (DESIGN.md §3.1, §3.2): a fetch within its deadline, shared by the
 * concurrent readers of a key in this runtime (single flight) and, on a store that can,
 * across processes (claims); and `write`, the one function every write of an entry goes
 * through. Nothing here calls back into the read: each function answers its caller.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type { Claim, Service as StoreService, Tags } from "../CacheStore.js"
import * as Entry from "../Entry.js"
import { type CodecError, FetchTimeout, type KeyError, type StoreError } from "../Errors.js"
import { degrade } from "./faults.js"
import * as Token from "./token.js"
import { type Definition, tagsOf } from "./job.js"
import * as Metrics from "./metrics.js"

/**
 * One key of a job's store: what fetching and storing need. Records of the engine are
 * class instances rather than object literals: V8 allocates them several times faster on
 * the hit path (BENCHMARKS.md).
 */
export class Target<I, A, E, R> {
  constructor(
    readonly job: Definition<I, A, E, R>,
    readonly input: I,
    readonly key: string,
    readonly store: StoreService
  ) {}
}

/** The deadline of a fetch of the target: `withFetchTimeout`, else the refresh timeout. */
export const deadlineOf = <I, A, E, R>({ input, job }: Target<I, A, E, R>): Duration.Duration =>
  job.fetchTimeout === undefined ? job.refreshTimeout(input) : job.fetchTimeout(input)

// -----------------------------------------------------------------------------
// The fetches: while callers wait, for `Job.refresh`, for a queue's attempt
// -----------------------------------------------------------------------------

/**
 * A fetch while the caller waits, shared by every concurrent caller of the key in this
 * runtime (single flight) that read the same token (DESIGN.md §3.2: a read after a write
 * never joins a fetch begun before it); counted once, by the fetch that runs. The callers
 * are answered as soon as the value is fetched; its store runs after, counted in the
 * background budget (a failure is logged), only while the key's token is still `token`, and
 * the flight lasts until it is done.
 */
export const fetchShared = <I, A, E, R>(
  target: Target<I, A, E, R>,
  token: string,
  since?: number
): Effect.Effect<A, E | FetchTimeout | KeyError, R> =>
  target.store.engine.flights.run(
    // Tokens hold no "|": one flight per token and key.
    `${token}|${target.key}`,
    Effect.suspend(() => {
      // With "cluster", the flight of this process coordinates with those of the others
      // through the store, when the store can (DESIGN.md §3.1).
      const claim = target.job.singleFlight === "cluster" ? target.store.claim : undefined
      return claim === undefined ? fetchHere(target, deadlineOf(target), undefined) : claimThenFetch(target, claim, token, since)
    }),
    {
      then: (fetched) => fetched.found ? Effect.void : storeFetched(target, fetched, token),
      // A flight answered but still storing (a store that hangs) is joined only while its
      // value is fresh: a write that never ends cannot serve its value forever.
      joinable: (fetched, now) => now <= fetched.entry.expiresAt
    }
  ).pipe(Effect.map((fetched) => fetched.entry.value))

/**
 * Fetches and stores (`Job.refresh`), over what was there when it began; a failed store
 * write is logged, and the value still answered.
 */
export const fetchAndStore = <I, A, E, R>(target: Target<I, A, E, R>): Effect.Effect<A, E | FetchTimeout | KeyError, R> => {
  const { throttle } = target.store.engine
  // A token that cannot be read is "": the value is then stored only where nothing is.
  return Effect.flatMap(degrade(throttle, target.job.name, tokenNow(target), ""), (token) =>
    Effect.map(
      fetchThen(target, "sync", (entry) => Effect.as(degrade(throttle, target.job.name, write(target, entry, token), false), entry)),
      (entry) => entry.value
    ))
}

/**
 * One attempt at a background refresh: read the key's token, fetch, store over that token,
 * count. It fails when the store cannot be read or written, so that a lost write is retried
 * like a failed fetch; a store refused because another write came first is no failure.
 */
export const refreshAttempt = <I, A, E, R>(
  target: Target<I, A, E, R>
): Effect.Effect<A, E | FetchTimeout | KeyError | StoreError | CodecError, R> =>
  Effect.flatMap(tokenNow(target), (token) =>
    fetchThen(target, "background", (entry) => Effect.as(write(target, entry, token), entry)).pipe(
      Effect.map((entry) => entry.value),
      Effect.tap(() => Metrics.bump(Metrics.forJob(target.job.name).refreshed))
    ))

/** The token of what the store holds for the target now. */
export const tokenNow = <I, A, E, R>({ job, key, store }: Target<I, A, E, R>): Effect.Effect<string, StoreError> =>
  Effect.map(store.get(key, job.valueSchema), Entry.tokenOf)

// -----------------------------------------------------------------------------
// Writing
// -----------------------------------------------------------------------------

/**
 * Every write of an entry (DESIGN.md §3.2): with `expected`, only while the key's token is
 * still that one (`""`: nothing is there), atomically where the store can (`compareAndSet`);
 * without, over anything (`Job.set`, `Job.delete`). Answers whether it wrote.
 */
export const write = <I, A, E, R>(
  { input, job, key, store }: Target<I, A, E, R>,
  entry: Entry.Entry<A>,
  expected: string | undefined
): Effect.Effect<boolean, StoreError | CodecError> =>
  Effect.clockWith((clock) => {
    // The backend keeps a tombstone until its `expiresAt`, anything else for the cache TTL.
    const ttl = entry._tag === "Tombstone"
      ? Duration.millis(Math.max(1, entry.expiresAt - clock.unsafeCurrentTimeMillis()))
      : job.cacheTtl(input)
    return store.compareAndSet === undefined || expected === undefined
      ? Effect.as(store.set(key, entry, ttl, job.valueSchema), true)
      : Effect.tap(store.compareAndSet(key, entry, ttl, job.valueSchema, expected), (written) => {
        if (!written) Metrics.bump(Metrics.forJob(job.name).writesSuperseded)
      })
  })

/**
 * What a delete of the target leaves at `now`: a tombstone with a new token that outlives
 * any fetch begun before it (the fetch's deadline, plus the time its store may take in the
 * background); a job whose fetches have no deadline keeps it for its cache TTL.
 */
export const tombstoneOf = <I, A, E, R>(target: Target<I, A, E, R>, now: number): Effect.Effect<Entry.Tombstone> => {
  const deadline = deadlineOf(target)
  const lasts = Duration.isFinite(deadline)
    ? Duration.toMillis(deadline) + target.store.engine.sizes.backgroundTimeout
    : Duration.toMillis(target.job.cacheTtl(target.input))
  return Effect.map(Token.make, (token) => Entry.tombstone(now + lasts, token))
}

/** The record of an entry's tags: each tag's token, or "" (which no tag holds) where there is none. */
export const recorded = (
  names: ReadonlyArray<string>,
  tokens?: ReadonlyArray<string | undefined>
): Record<string, string> => Object.fromEntries(names.map((name, i) => [name, tokens?.[i] ?? ""]))

// -----------------------------------------------------------------------------
// One fetch: deadline, span, duration, tags
// -----------------------------------------------------------------------------

/**
 * Fetches within the job's deadline (in a `cacheback.fetch` span), makes the entry with
 * the job's expiry and hands it to `then`. A fetch past its deadline is interrupted (in
 * the background, so that one that ignores interruption cannot hold its caller) and fails
 * with `FetchTimeout`, logged and counted.
 */
const fetchThen = <I, A, E, R, X, E2>(
  target: Target<I, A, E, R>,
  where: Metrics.FetchPlace,
  then: (entry: Entry.Value<A>) => Effect.Effect<X, E2>
): Effect.Effect<X, E | FetchTimeout | KeyError | E2, R> => {
  const { input, job, key } = target
  const deadline = deadlineOf(target)
  const fetch = job.fetch(input).pipe(
    Effect.withSpan("cacheback.fetch", {
      attributes: { "cacheback.job": job.name, "cacheback.key": key },
      captureStackTrace: false
    })
  )
  const bounded: Effect.Effect<A, E | FetchTimeout | KeyError, R> = Duration.isFinite(deadline)
    ? fetch.pipe(
      Effect.disconnect,
      Effect.timeoutFail({ duration: deadline, onTimeout: () => new FetchTimeout({ job: job.name, key, millis: Duration.toMillis(deadline) }) }),
      Effect.tapError((error) =>
        error instanceof FetchTimeout
          ? Effect.zipRight(Effect.sync(() => Metrics.bump(Metrics.forJob(job.name).fetchTimeouts)), Effect.logWarning(`cacheback: ${error.message}`))
          : Effect.void
      )
    )
    : fetch
  const tags = job.tags === undefined ? undefined : target.store.tags
  const histogram = Metrics.fetchDuration(job.name, where)
  // A tagged job reads the store's tag generation before the fetch and its tags' tokens
  // after: a generation that moved meanwhile (an invalidation during the fetch) leaves the
  // entry with tokens that match nothing, so it is stale at once.
  return Effect.flatMap(tags === undefined ? Effect.succeed(undefined) : generationOf(target, tags), (before) =>
    Effect.clockWith((clock) => {
      const start = clock.unsafeCurrentTimeMillis()
      return bounded.pipe(
        Effect.ensuring(Effect.sync(() => histogram.unsafeUpdate(clock.unsafeCurrentTimeMillis() - start, []))),
        Effect.zip(Token.make),
        Effect.flatMap(([value, token]): Effect.Effect<X, KeyError | E2> => {
          const now = clock.unsafeCurrentTimeMillis()
          const base = Entry.value(value, now, now + Duration.toMillis(job.expiry(input)), job.fingerprint, token)
          const entry = job.earlyRefresh === undefined ? base : Entry.with_(base, { delta: now - start })
          if (tags === undefined) return then(entry)
          const names = tagsOf(job, input, value)
          if (Either.isLeft(names)) return Effect.fail(names.left)
          return names.right.length === 0
            ? then(entry)
            : Effect.flatMap(tokensOf(target, tags, names.right, before), (tokens) => then(Entry.with_(entry, { tags: tokens })))
        })
      )
    }))
}

/** The store's tag generation, or none when it cannot tell (its entry is then stale at once). */
const generationOf = <I, A, E, R>(target: Target<I, A, E, R>, tags: Tags): Effect.Effect<string | undefined> =>
  degrade(target.store.engine.throttle, target.job.name, tags.generation, undefined)

/**
 * The tokens an entry records for its tags (created for a tag that has none). When the
 * generation moved since `before` or cannot be told, the tokens recorded are empty, which no
 * tag holds: the entry is stale at once (refreshed, never fresh past an invalidation).
 */
const tokensOf = <I, A, E, R>(
  target: Target<I, A, E, R>,
  tags: Tags,
  names: ReadonlyArray<string>,
  before: string | undefined
): Effect.Effect<Record<string, string>> =>
  degrade(
    target.store.engine.throttle,
    target.job.name,
    Effect.zipWith(
      tags.tokens(names, true),
      tags.generation,
      (tokens, after) => before === undefined || after !== before ? recorded(names) : recorded(names, tokens)
    ),
    recorded(names)
  )

// -----------------------------------------------------------------------------
// One fetch across processes (DESIGN.md §3.1)
// -----------------------------------------------------------------------------

/**
 * What a flight of `fetchShared` answers: the entry, fetched here (`release` then frees the
 * store's claim once it is stored) or `found` in the store, stored by another process.
 */
class Fetched<A> {
  constructor(
    readonly entry: Entry.Value<A>,
    readonly release: ((stored: boolean) => Effect.Effect<void>) | undefined,
    readonly found: boolean
  ) {}
}

/**
 * Asks the store who fetches, then answers what another process stored or fetches here. The
 * flight keeps one deadline, its fetch's: the claim, the wait for another process and a fetch
 * after it all fit in it, so that a read still answers within one store timeout plus its
 * fetch. A fetch here that fails, or is given up, releases the claim without a value.
 */
const claimThenFetch = <I, A, E, R>(
  target: Target<I, A, E, R>,
  claim: NonNullable<StoreService["claim"]>,
  token: string,
  since: number | undefined
): Effect.Effect<Fetched<A>, E | FetchTimeout | KeyError, R> =>
  Effect.clockWith((clock) => {
    const { job } = target
    const start = clock.unsafeCurrentTimeMillis()
    const deadline = Duration.toMillis(deadlineOf(target))
    // A value written since this read's lookup (another token) is what it wanted.
    const accept = (entry: Entry.Entry<A>): entry is Entry.Value<A> =>
      entry._tag === "Value" && entry.fingerprint === job.fingerprint && (entry.token ?? "") !== token
    return Effect.flatMap(claim<A>(target.key, job.valueSchema, { accept, until: start + deadline, since: since ?? start }), (claimed: Claim<A>) => {
      if (claimed._tag === "Found") return Effect.succeed(new Fetched(claimed.entry, undefined, true))
      const left = start + deadline - clock.unsafeCurrentTimeMillis()
      if (claimed._tag === "Alone") return left > 0 ? fetchHere(target, Duration.millis(left), undefined) : timedOut(target, deadline)
      const release = claimed.release
      return Effect.onExit(
        left > 0 ? fetchHere(target, Duration.millis(left), release) : timedOut(target, deadline),
        (exit) => exit._tag === "Failure" ? release(false) : Effect.void
      )
    })
  })

/** A fetch in this process within `deadline`, counted as a synchronous fetch. */
const fetchHere = <I, A, E, R>(
  target: Target<I, A, E, R>,
  deadline: Duration.Duration,
  release: ((stored: boolean) => Effect.Effect<void>) | undefined
): Effect.Effect<Fetched<A>, E | FetchTimeout | KeyError, R> => {
  Metrics.bump(Metrics.forJob(target.job.name).syncFetches)
  const within = Duration.equals(deadline, deadlineOf(target))
    ? target
    : new Target({ ...target.job, fetchTimeout: () => deadline }, target.input, target.key, target.store)
  return fetchThen(within, "sync", (entry) => Effect.succeed(new Fetched(entry, release, false)))
}

/** A flight whose deadline passed while it waited for another process: the read's fetch timed out. */
const timedOut = <I, A, E, R>(target: Target<I, A, E, R>, millis: number): Effect.Effect<never, FetchTimeout> => {
  const error = new FetchTimeout({ job: target.job.name, key: target.key, millis })
  Metrics.bump(Metrics.forJob(target.job.name).fetchTimeouts)
  return Effect.zipRight(Effect.logWarning(`cacheback: ${error.message}`), Effect.fail(error))
}

/**
 * Stores a fetched value after its callers are answered, over the token its read saw,
 * counted in the background budget; a claimed fetch then releases its claim, saying whether
 * a value is there (the processes waiting for it read it, or fetch themselves). A value
 * written meanwhile, found in its place, is one the waiting processes read too.
 */
const storeFetched = <I, A, E, R>(target: Target<I, A, E, R>, fetched: Fetched<A>, token: string): Effect.Effect<void> => {
  const { engine } = target.store
  const store = degrade(engine.throttle, target.job.name, Effect.as(write(target, fetched.entry, token), true), false)
  const release = fetched.release
  if (release === undefined) return engine.counted(target.job.name, Effect.asVoid(store))
  let stored = false
  // Released however the store ends, interrupted at its deadline included: a claim left
  // held would be renewed for as long as its fetch's deadline allows.
  return Effect.ensuring(
    engine.counted(target.job.name, Effect.map(store, (ok) => (stored = ok))),
    Effect.suspend(() => release(stored))
  )
}
