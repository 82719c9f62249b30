/**
 * The engine of a read. An operation resolves its job and input to one record, a `Read`
 * (the key, the store, the caller's services), then runs the steps below on it: look the
 * entry up and decide (`Policy.decide`), carry the decision out, fetch and store, enqueue
 * or refresh now. Each step is written once, here.
 *
 * The hit path is kept short: no `Effect.gen` (several times a `flatMap` chain), services
 * read from the fiber rather than with effects, a memory store read synchronously, and
 * counters updated with `unsafeUpdate` (see BENCHMARKS.md for what each costs).
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Tracer from "effect/Tracer"
import type { Service as StoreService, Tags } from "../CacheStore.js"
import * as Entry from "../Entry.js"
import { type CodecError, FetchTimeout, type KeyError, type StoreError } from "../Errors.js"
import type * as Job from "../Job.js"
import * as Policy from "../Policy.js"
import { RefreshQueue, type Task } from "../RefreshQueue.js"
import { degrade, warnThrottled } from "./faults.js"
import { currentSpans } from "./job.js"
import * as Metrics from "./metrics.js"
import * as SingleFlight from "./singleFlight.js"

/** A job as the operations take it: everything but the types of what `get` answers. */
export type Stored<I, A, E, R, S> = Job.Job<I, A, E, R, unknown, unknown, boolean, S>

/** What a read uses of its job once its store is resolved. Every `Job` is one. */
export type Definition<I, A, E, R> = Omit<Stored<I, A, E, R, never>, "store" | Job.TypeId | "pipe">

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

/**
 * One read: its target and the caller's services, those `fetch` needs and the queue. A
 * refresh it enqueues runs with them.
 */
export class Read<I, A, E, R> implements Target<I, A, E, R> {
  constructor(
    readonly job: Definition<I, A, E, R>,
    readonly input: I,
    readonly key: string,
    readonly store: StoreService,
    readonly context: Context.Context<R | RefreshQueue>
  ) {}
}

// -----------------------------------------------------------------------------
// Resolving an operation: key, store, services, span
// -----------------------------------------------------------------------------

/**
 * Runs `body` on the read of `input`: its key, the job's store and the caller's services,
 * in a `cacheback.<operation>` span when spans are on (`traced`). For the operations that
 * may enqueue a refresh.
 */
export const resolve = <I, A, E, R, S, X, E2, R2>(
  job: Stored<I, A, E, R, S>,
  input: I,
  operation: string,
  body: (read: Read<I, A, E, R>, clock: Clock.Clock, traced: boolean) => Effect.Effect<X, E2, R2>
): Effect.Effect<X, E2 | KeyError, R | S | RefreshQueue | R2> =>
  Effect.withFiberRuntime((fiber) => {
    const key = job.key(input)
    if (key._tag === "Left") return Effect.fail(key.left)
    const context = callerContext<R | S | RefreshQueue>(fiber)
    const read = new Read<I, A, E, R>(job, input, key.right, Context.get(context, job.store), context)
    const traced = spansOn(job, fiber)
    const effect = body(read, Context.get(fiber.currentDefaultServices, Clock.Clock), traced)
    return traced ? inSpan(effect, operation, job.name, key.right) : effect
  })

/** `resolve` for the operations that never enqueue: the key and the store only. */
export const resolveTarget = <I, A, E, R, S, X, E2, R2>(
  job: Stored<I, A, E, R, S>,
  input: I,
  operation: string,
  body: (target: Target<I, A, E, R>) => Effect.Effect<X, E2, R2>
): Effect.Effect<X, E2 | KeyError, S | R2> =>
  Effect.withFiberRuntime((fiber) => {
    const key = job.key(input)
    if (key._tag === "Left") return Effect.fail(key.left)
    const effect = body(new Target(job, input, key.right, Context.get(callerContext<S>(fiber), job.store)))
    return spansOn(job, fiber) ? inSpan(effect, operation, job.name, key.right) : effect
  })

/**
 * The caller's services, read from its fiber without an effect step. The effect that calls
 * this requires `C` in its type, so the fiber's context holds them: the one place where
 * that is asserted rather than checked.
 */
export const callerContext = <C>(fiber: Fiber.RuntimeFiber<unknown, unknown>): Context.Context<C> =>
  fiber.currentContext as Context.Context<C>

export const spansOn = (job: { readonly spans: boolean }, fiber: Fiber.RuntimeFiber<unknown, unknown>): boolean =>
  job.spans || fiber.getFiberRef(currentSpans)

const inSpan = <X, E, R>(effect: Effect.Effect<X, E, R>, operation: string, job: string, key: string) =>
  Effect.withSpan(effect, `cacheback.${operation}`, {
    attributes: { "cacheback.job": job, "cacheback.key": key },
    captureStackTrace: false
  })

// -----------------------------------------------------------------------------
// Looking up, deciding, answering
// -----------------------------------------------------------------------------

/** What a read answers once it knows its value and how it found it. */
export type Answer<I, X> = (
  job: Answerable<I>,
  input: I,
  value: unknown,
  status: Policy.Status,
  syncFetch: boolean | undefined,
  error?: unknown
) => X

interface Answerable<I> {
  readonly processResult: ((value: unknown, context: Job.ResultContext<I>) => unknown) | undefined
}

/** `get`'s answer: the value, through `withProcessResult` when the job has one. */
export const answerValue = <I>(
  job: Answerable<I>,
  input: I,
  value: unknown,
  status: Policy.Status,
  syncFetch: boolean | undefined
): unknown => job.processResult === undefined ? value : job.processResult(value, { input, status, syncFetch })

/** `lookup`'s answer: the value before `withProcessResult`, with how it was found. */
export const answerLookup = <I>(
  _job: Answerable<I>,
  _input: I,
  value: unknown,
  status: Policy.Status,
  syncFetch: boolean | undefined,
  error?: unknown
): Job.Lookup<unknown, unknown> => error === undefined ? { value, status, syncFetch } : { value, status, syncFetch, error }

/**
 * Reads the entry (synchronously where the store can), decides, and carries it out. A store
 * read that fails is a miss (logged and counted), never a failed read.
 */
export const lookup = <I, A, E, R, X>(
  read: Read<I, A, E, R>,
  clock: Clock.Clock,
  answer: Answer<I, X>
): Effect.Effect<X, E | FetchTimeout, R> => {
  const { job, key, store } = read
  if (store.unsafeGet !== undefined) {
    const now = clock.unsafeCurrentTimeMillis()
    const known = store.unsafeGet<A>(key, now)
    if (known !== undefined) return decideOn(read, current(job, known), now, answer)
  }
  // One flatMap after the store (an `Effect.map` first would be two more effects a read).
  return Effect.flatMap(
    degrade(job.name, store.get(key, job.valueSchema), Option.none()),
    (entry) => decideOn(read, current(job, entry), clock.unsafeCurrentTimeMillis(), answer)
  )
}

/**
 * Decides on the entry and carries the decision out: first, for a tagged entry, checks its
 * tags' tokens (an invalidated one expires it), and for a job with an early refresh, draws
 * from Effect's `Random`. An untagged entry of a job without one takes no effect step.
 */
export const decideOn = <I, A, E, R, X>(
  read: Read<I, A, E, R>,
  entry: Option.Option<Entry.Entry<A>>,
  now: number,
  answer: Answer<I, X>
): Effect.Effect<X, E | FetchTimeout, R> => {
  if (entry._tag === "Some" && entry.value._tag === "Value" && entry.value.tags !== undefined) {
    const tagged = entry.value
    const known = read.store.tags?.unsafeTokens
    if (known !== undefined) {
      return decideChecked(read, holds(tagged.tags!, known) ? entry : Option.some(expired(tagged, now)), now, answer)
    }
    return Effect.flatMap(tagsHold(read, tagged), (hold) =>
      decideChecked(read, hold ? entry : Option.some(expired(tagged, now)), now, answer))
  }
  return decideChecked(read, entry, now, answer)
}

/** Whether every recorded tag still has its token. */
const holds = (
  recorded: Readonly<Record<string, string>>,
  tokensOf: (names: ReadonlyArray<string>) => ReadonlyArray<string | undefined>
): boolean => {
  const names = Object.keys(recorded)
  const tokens = tokensOf(names)
  return names.every((name, i) => tokens[i] === recorded[name])
}

/** `decideOn` once the entry's tags are checked. */
const decideChecked = <I, A, E, R, X>(
  read: Read<I, A, E, R>,
  entry: Option.Option<Entry.Entry<A>>,
  now: number,
  answer: Answer<I, X>
): Effect.Effect<X, E | FetchTimeout, R> => {
  const { input, job } = read
  if (job.earlyRefresh !== undefined) {
    // `Random.next` is in [0, 1); XFetch takes a draw in (0, 1].
    return Effect.flatMap(Random.next, (draw) => {
      const decision = Policy.decide(entry, now, job, input, 1 - draw)
      const performed = perform(read, decision, answer)
      return decision._tag === "Hit" && decision.refreshEarly === true && entry._tag === "Some" && entry.value._tag === "Value"
        ? Effect.zipRight(refreshEarly(read, entry.value.fetchedAt), performed)
        : performed
    })
  }
  return perform(read, Policy.decide(entry, now, job, input), answer)
}

/**
 * A tagged entry one of whose tags was invalidated since its fetch: expired now, and without
 * its tags, so that its write-back is served for a refresh timeout like any stale value's.
 */
const expired = <A>(entry: Entry.Value<A>, now: number): Entry.Value<A> =>
  Entry.with_(entry, { expiresAt: Math.min(entry.expiresAt, now - 1), tags: undefined })

/**
 * Whether every tag of the entry still has the token it recorded. A store that cannot tell
 * (it has no tags, or fails to answer) makes it stale: served per the job's policy and
 * refreshed, never served as fresh past an invalidation.
 */
const tagsHold = <I, A, E, R>(target: Target<I, A, E, R>, entry: Entry.Value<A>): Effect.Effect<boolean> => {
  const recorded = entry.tags!
  const names = Object.keys(recorded)
  const tags = target.store.tags
  if (tags === undefined) return Effect.succeed(false)
  return degrade(
    target.job.name,
    Effect.map(tags.tokens(names, false), (tokens) => holds(recorded, () => tokens)),
    false
  )
}

/**
 * The entry if the job wrote it: one of another fingerprint (another version of the job,
 * another value schema) is a miss, counted. A pending marker says only that a refresh is
 * queued, and is anyone's.
 */
export const current = <A>(
  job: { readonly name: string; readonly fingerprint: string | undefined },
  entry: Option.Option<Entry.Entry<A>>
): Option.Option<Entry.Entry<A>> => {
  if (entry._tag === "None") return entry
  const found = entry.value
  if (found._tag === "Pending" || found.fingerprint === job.fingerprint) return entry
  Metrics.bump(Metrics.forJob(job.name).fingerprintMisses)
  return Option.none()
}

/** Carries out a decision of `Policy.decide` for `read`. */
export const perform = <I, A, E, R, X>(
  read: Read<I, A, E, R>,
  decision: Policy.Decision<A>,
  answer: Answer<I, X>
): Effect.Effect<X, E | FetchTimeout, R> => {
  const { input, job } = read
  if (decision._tag === "Hit") return Effect.succeed(hit(job, input, decision, answer))
  const counters = Metrics.forJob(job.name)
  const status = Policy.status(decision)
  const syncFetch = Policy.syncFetch(decision)
  switch (decision._tag) {
    case "Fetch": {
      Metrics.bump(status === "miss" ? counters.misses : counters.staleHits)
      const fetched = Effect.map(syncRefresh(read), (value) => answer(job, input, value, status, syncFetch))
      const fallback = decision.fallback
      return fallback === undefined ? fetched : Effect.catchAll(fetched, (error) => staleIfError(read, fallback, error, answer))
    }
    case "ServeEmpty": {
      Metrics.bump(counters.misses)
      const empty = job.empty(input)
      if (decision.marker === undefined) return Effect.succeed(answer(job, input, empty, status, syncFetch))
      return serveThenRefresh(read, decision.marker, empty, status, answer)
    }
    case "ServeStale": {
      Metrics.bump(counters.staleHits)
      return serveThenRefresh(read, decision.entry, decision.value, status, answer)
    }
    case "ServeGrace": {
      Metrics.bump(counters.staleHits)
      return Effect.succeed(answer(job, input, decision.value, status, syncFetch))
    }
  }
}

/**
 * The synchronous fetch of a stale value failed: stale-if-error serves the value instead,
 * when `Policy.recover` allows it, written back to be served without fetching for a
 * refresh timeout, and a refresh is enqueued; otherwise the error goes to the caller.
 */
const staleIfError = <I, A, E, R, X>(
  read: Read<I, A, E, R>,
  fallback: Entry.Value<A>,
  error: E | FetchTimeout,
  answer: Answer<I, X>
): Effect.Effect<X, E | FetchTimeout> =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => {
    const recovered = Policy.recover(fallback, error, now, read.job, read.input)
    if (recovered === undefined || recovered._tag !== "ServeStale") return Effect.fail(error)
    Metrics.bump(Metrics.forJob(read.job.name).staleIfError)
    return Effect.as(
      // A write-back: a value a refresh stored meanwhile is newer than the one recovered.
      inBackground(read, Effect.zipRight(writeBack(read, recovered.entry), enqueueElseRefreshLater(read))),
      answer(read.job, read.input, recovered.value, "stale", false, error)
    )
  })

/**
 * An early refresh of a hit (XFetch): enqueued in the background, once per fetched value in
 * this process (after that a refresh of it is waiting or running), then collapsed by the
 * queue across processes.
 */
const refreshEarly = <I, A, E, R>(read: Read<I, A, E, R>, fetchedAt: number): Effect.Effect<void> =>
  Effect.suspend(() => {
    let asked = earlyRequests.get(read.store)
    if (asked === undefined) {
      asked = new Map()
      earlyRequests.set(read.store, asked)
    }
    if (asked.get(read.key) === fetchedAt) return Effect.void
    // A bound, not an eviction policy: forgetting only lets a key be asked once more.
    if (asked.size >= maxEarlyRequests) asked.clear()
    asked.set(read.key, fetchedAt)
    Metrics.bump(Metrics.forJob(read.job.name).earlyRefreshes)
    return inBackground(read, enqueueElseRefreshLater(read))
  })

const earlyRequests = new WeakMap<StoreService, Map<string, number>>()
const maxEarlyRequests = 10_000

/** Answers a hit (counted): also what `getMany` does with each hit, with no effect. */
export const hit = <I, A, X>(
  job: Answerable<I> & { readonly name: string },
  input: I,
  decision: Policy.Decision<A> & { readonly _tag: "Hit" },
  answer: Answer<I, X>
): X => {
  Metrics.bump(Metrics.forJob(job.name).hits)
  return answer(job, input, decision.value, "hit", undefined)
}

/**
 * Answers `served` at once, and leaves the rest to the background (SPEC §7): store the
 * marker or the written-back stale entry, then enqueue a refresh; when the queue refuses,
 * the refresh runs in the background too (one per key in this process, shared with reads
 * that fetch it).
 */
const serveThenRefresh = <I, A, E, R, X>(
  read: Read<I, A, E, R>,
  entry: Entry.Entry<A>,
  served: unknown,
  status: Policy.Status,
  answer: Answer<I, X>
): Effect.Effect<X> =>
  Effect.as(
    inBackground(read, Effect.zipRight(writeBack(read, entry), enqueueElseRefreshLater(read))),
    answer(read.job, read.input, served, status, false)
  )

// -----------------------------------------------------------------------------
// Work after a decision, in the background
// -----------------------------------------------------------------------------

/**
 * The most writes and enqueues after a read's decision that run at once in a process;
 * beyond, they are skipped and counted (`cacheback_background_skipped`): under an outage of
 * a slow store they would otherwise pile up without bound.
 */
export const maxBackground = 1_000

let backgroundRunning = 0
const backgroundKeys = new WeakMap<StoreService, Set<string>>()

/**
 * Runs `work` for the target's key in a fiber of its own, so that the caller never waits
 * for the store or the queue after its decision: one at a time per key (a read that finds
 * one running for its key leaves the work to it), at most `maxBackground` in the process.
 * The read then yields once: in-process stores and queues, which answer at once, have done
 * their part before it answers (a test sees the task queued).
 */
const inBackground = <I, A, E, R>(target: Target<I, A, E, R>, work: Effect.Effect<void>): Effect.Effect<void> =>
  Effect.zipRight(
    Effect.uninterruptible(Effect.suspend(() => {
      let keys = backgroundKeys.get(target.store)
      if (keys === undefined) {
        keys = new Set()
        backgroundKeys.set(target.store, keys)
      }
      if (keys.has(target.key)) return Effect.void
      const running = keys
      return bounded(
        target.job.name,
        Effect.asVoid(Effect.forkDaemon(Effect.ensuring(work, Effect.zipRight(Effect.sync(() => running.delete(target.key)), released)))),
        () => running.add(target.key)
      )
    })),
    Effect.yieldNow()
  )

/**
 * `start` counted in the process's background work until what it starts ends, or skipped
 * (counted) when `maxBackground` already run.
 */
const bounded = (job: string, start: Effect.Effect<void>, claim: () => void = () => {}): Effect.Effect<void> => {
  if (backgroundRunning >= maxBackground) {
    Metrics.bump(Metrics.forJob(job).backgroundSkipped)
    return Effect.void
  }
  claim()
  backgroundRunning++
  return start
}

/** Ends one unit of background work. */
const released = Effect.sync(() => {
  backgroundRunning--
})

/**
 * Enqueues a refresh of the read's key; when the queue refuses it, runs the refresh in the
 * background instead (logged when it fails: nobody waits for it).
 */
const enqueueElseRefreshLater = <I, A, E, R>(read: Read<I, A, E, R>): Effect.Effect<void> =>
  Effect.flatMap(enqueue(read, "refreshing in the background"), (queued) =>
    queued === "queued" ? Effect.void : Effect.asVoid(Effect.forkDaemon(
      Effect.catchAllCause(
        Effect.provide(syncRefresh(read), read.context),
        (cause) =>
          Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logWarning(
            `cacheback: job "${read.job.name}": the background refresh of "${read.key}" failed; the entry stays as it was`,
            cause
          )
      )
    )))

// -----------------------------------------------------------------------------
// Enqueuing, fetching, storing
// -----------------------------------------------------------------------------

/**
 * Enqueues a refresh of the read's key; when the queue refuses it, refreshes now (sharing
 * a fetch of the key in flight): `Job.asyncRefresh` and `Job.invalidate` (cacheback).
 * Answers the fetched value in that case, `None` when queued; fails with the fetch's error.
 */
export const enqueueElseRefresh = <I, A, E, R>(read: Read<I, A, E, R>): Effect.Effect<Option.Option<A>, E | FetchTimeout, R> =>
  Effect.flatMap(
    enqueue(read, "refreshing synchronously"),
    (queued) => queued === "queued" ? Effect.succeedNone : Effect.asSome(syncRefresh(read))
  )

/**
 * Puts a refresh of the read's key on the queue: `queued` (or collapsed into a waiting
 * task, counted as deduplicated), or `refused` when the caller must refresh (counted in
 * `cacheback_enqueue_errors`, and logged once per job every 10 s, saying what follows).
 */
export const enqueue = <I, A, E, R>(read: Read<I, A, E, R>, fallback: string): Effect.Effect<"queued" | "refused"> => {
  const task: Task = {
    job: read.job.name,
    key: read.key,
    store: read.store.identity,
    input: read.input,
    inputSchema: read.job.inputSchema,
    options: read.job.queueOptions,
    // The span of the request that asked, for the refresh's span to link to.
    span: Option.getOrUndefined(Context.getOption(read.context, Tracer.ParentSpan)),
    // One attempt with the caller's services, in a scope of its own: the caller's scope (a
    // request's) may be long closed when it runs.
    refresh: Effect.provide(Effect.scoped(refreshAttempt(read)), read.context)
  }
  const counters = Metrics.forJob(read.job.name)
  return Effect.matchEffect(Context.get(read.context, RefreshQueue).enqueue(task), {
    onFailure: (error) => {
      Metrics.bump(counters.enqueueErrors)
      return Effect.as(
        warnThrottled("enqueue", read.job.name, `cannot enqueue a refresh of "${read.key}": ${error.reason}; ${fallback}`),
        "refused" as const
      )
    },
    onSuccess: (enqueued) => {
      Metrics.bump(enqueued === "enqueued" ? counters.enqueued : counters.deduplicated)
      return Effect.succeed("queued" as const)
    }
  })
}

/**
 * A fetch while the caller waits, shared by every concurrent caller of the key in this
 * process (single flight); counted once, by the fetch that runs. The callers are answered
 * as soon as the value is fetched; its store runs after, in the background (a failure is
 * logged), and the flight lasts until it is done.
 */
export const syncRefresh = <I, A, E, R>(target: Target<I, A, E, R>): Effect.Effect<A, E | FetchTimeout, R> =>
  SingleFlight.run(
    target.store,
    target.key,
    Effect.suspend(() => {
      // With "cluster", the flight of this process coordinates with those of the others
      // through the store (SPEC §9), when the store can.
      const claim = target.job.singleFlight === "cluster" ? target.store.claim : undefined
      return claim === undefined ? fetchHere(target, deadlineOf(target), undefined) : claimThenFetch(target, claim)
    }),
    {
      then: (fetched) => fetched.found ? Effect.void : storeThenRelease(target, fetched),
      // A flight answered but still storing (a store that hangs) is joined only while its
      // value is fresh: a write that never ends cannot serve its value forever.
      joinable: (fetched, now) => now <= fetched.entry.expiresAt
    }
  ).pipe(Effect.map((fetched) => fetched.entry.value))

/** Fetches and stores (`Job.refresh`); a failed store write is logged, and the value still answered. */
export const fetchAndStore = <I, A, E, R>(target: Target<I, A, E, R>): Effect.Effect<A, E | FetchTimeout, R> =>
  Effect.map(fetchThen(target, "sync", (entry) => Effect.as(write(target, entry), entry)), (entry) => entry.value)

/**
 * One attempt at a background refresh: fetch, store, count. It fails when the value
 * cannot be stored too, so that a lost write is retried like a failed fetch; one the store
 * refuses because a value fetched later is there is no failure.
 */
export const refreshAttempt = <I, A, E, R>(
  target: Target<I, A, E, R>
): Effect.Effect<A, E | FetchTimeout | StoreError | CodecError, R> =>
  fetchThen(target, "background", (entry) => Effect.as(storeValue(target, entry), entry)).pipe(
    Effect.map((entry) => entry.value),
    Effect.tap(() => Metrics.bump(Metrics.forJob(target.job.name).refreshed))
  )

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
): Effect.Effect<X, E | FetchTimeout | E2, R> => {
  const { input, job, key } = target
  const deadline = deadlineOf(target)
  const fetch = job.fetch(input).pipe(
    Effect.withSpan("cacheback.fetch", {
      attributes: { "cacheback.job": job.name, "cacheback.key": key },
      captureStackTrace: false
    })
  )
  const bounded: Effect.Effect<A, E | FetchTimeout, R> = Duration.isFinite(deadline)
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
        Effect.flatMap((value) => {
          const now = clock.unsafeCurrentTimeMillis()
          const base = Entry.value(value, now, now + Duration.toMillis(job.expiry(input)), job.fingerprint)
          const entry = job.earlyRefresh === undefined ? base : Entry.with_(base, { delta: now - start })
          const names = tags === undefined || job.tags === undefined ? [] : job.tags(input, value)
          return tags === undefined || names.length === 0
            ? then(entry)
            : Effect.flatMap(tokensOf(target, tags, names, before), (recorded) => then(Entry.with_(entry, { tags: recorded })))
        })
      )
    }))
}

/** The store's tag generation, or none when it cannot tell (its entry is then stale at once). */
const generationOf = <I, A, E, R>(target: Target<I, A, E, R>, tags: Tags): Effect.Effect<string | undefined> =>
  degrade(target.job.name, tags.generation, undefined)

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
    target.job.name,
    Effect.zipWith(
      tags.tokens(names, true),
      tags.generation,
      (tokens, after) => before === undefined || after !== before ? recorded(names) : recorded(names, tokens)
    ),
    recorded(names)
  )

/** The record of an entry's tags: each tag's token, or "" (which no tag holds) where there is none. */
export const recorded = (
  names: ReadonlyArray<string>,
  tokens?: ReadonlyArray<string | undefined>
): Record<string, string> => Object.fromEntries(names.map((name, i) => [name, tokens?.[i] ?? ""]))

/** The deadline of a fetch of the target: `withFetchTimeout`, else the refresh timeout. */
const deadlineOf = <I, A, E, R>({ input, job }: Target<I, A, E, R>): Duration.Duration =>
  job.fetchTimeout === undefined ? job.refreshTimeout(input) : job.fetchTimeout(input)

/**
 * A write a read makes: a failure (or a store that dies) is logged and counted; the read goes
 * on. A value is compare-and-set where the store can: it lands after its callers were
 * answered, and never replaces a value fetched later (another process's, or `Job.set`'s).
 */
export const write = <I, A, E, R>(target: Target<I, A, E, R>, entry: Entry.Entry<A>): Effect.Effect<void> =>
  degrade(target.job.name, Effect.asVoid(storeValue(target, entry)), undefined)

/**
 * A write-back of a stale value or a pending marker: compare-and-set where the store can, so
 * that it never replaces a value a refresh stored since the read (SPEC §9); a refused one is
 * no fault.
 */
export const writeBack = <I, A, E, R>(target: Target<I, A, E, R>, entry: Entry.Entry<A>): Effect.Effect<void> => {
  const { input, job, key, store } = target
  return store.compareAndSet === undefined
    ? write(target, entry)
    : degrade(job.name, Effect.asVoid(store.compareAndSet(key, entry, job.cacheTtl(input), job.valueSchema, "unchanged")), undefined)
}

// -----------------------------------------------------------------------------
// One fetch across processes (SPEC §9)
// -----------------------------------------------------------------------------

/**
 * What a flight of `syncRefresh` answers: the entry, fetched here (`release` then frees the
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
 * How long before a flight began a value may have been fetched and still answer it: a value
 * stored by another process between this read's lookup and its claim was fetched a moment
 * before the flight began (its fetch ended before its write), and is the value it wanted.
 */
const sharedFetchWindow = 1_000

/**
 * Asks the store who fetches, then answers what another process stored or fetches here. The
 * flight keeps one deadline, its fetch's: the claim, the wait for another process and a fetch
 * after it all fit in it, so that a read still answers within one store timeout plus its fetch
 * (SPEC §7). A fetch here that fails, or is given up, releases the claim without a value.
 */
const claimThenFetch = <I, A, E, R>(
  target: Target<I, A, E, R>,
  claim: NonNullable<StoreService["claim"]>
): Effect.Effect<Fetched<A>, E | FetchTimeout, R> =>
  Effect.clockWith((clock) => {
    const { job } = target
    const start = clock.unsafeCurrentTimeMillis()
    const deadline = Duration.toMillis(deadlineOf(target))
    const since = start - sharedFetchWindow
    const accept = (entry: Entry.Entry<A>): entry is Entry.Value<A> =>
      entry._tag === "Value" && entry.fingerprint === job.fingerprint && entry.fetchedAt >= since
    return Effect.flatMap(claim<A>(target.key, job.valueSchema, { accept, until: start + deadline }), (claimed) => {
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
): Effect.Effect<Fetched<A>, E | FetchTimeout, R> => {
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
 * Stores a fetched value after its callers are answered; a claimed fetch then releases its
 * claim, saying whether the value was stored (the processes waiting for it read it, or fetch
 * themselves).
 */
const storeThenRelease = <I, A, E, R>(target: Target<I, A, E, R>, fetched: Fetched<A>): Effect.Effect<void> => {
  const { entry, release } = fetched
  if (release === undefined) return bounded(target.job.name, Effect.ensuring(write(target, entry), released))
  let stored = false
  // A value fetched later, found in its place, is one the waiting processes read too.
  const store = degrade(target.job.name, Effect.as(storeValue(target, entry), true), false)
  return Effect.zipRight(
    bounded(target.job.name, Effect.ensuring(Effect.map(store, (ok) => (stored = ok)), released)),
    Effect.suspend(() => release(stored))
  )
}

/** Stores `entry`, unless the store can tell that a value fetched later is there. */
const storeValue = <I, A, E, R>(
  { input, job, key, store }: Target<I, A, E, R>,
  entry: Entry.Entry<A>
): Effect.Effect<unknown, StoreError | CodecError> =>
  store.compareAndSet === undefined || entry._tag === "Pending"
    ? store.set(key, entry, job.cacheTtl(input), job.valueSchema)
    : store.compareAndSet(key, entry, job.cacheTtl(input), job.valueSchema, "older")
