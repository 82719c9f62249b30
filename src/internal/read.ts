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
import type * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import type { Service as StoreService } from "../CacheStore.js"
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
  syncFetch: boolean | undefined
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
  syncFetch: boolean | undefined
): Job.Lookup<unknown> => ({ value, status, syncFetch })

/** Reads the entry (synchronously where the store can), decides, and carries it out. */
export const lookup = <I, A, E, R, X>(
  read: Read<I, A, E, R>,
  clock: Clock.Clock,
  answer: Answer<I, X>
): Effect.Effect<X, E | FetchTimeout, R> => {
  const { input, job, key, store } = read
  if (store.unsafeGet !== undefined) {
    const now = clock.unsafeCurrentTimeMillis()
    const known = store.unsafeGet<A>(key, now)
    if (known !== undefined) return perform(read, Policy.decide(current(job, known), now, job, input), answer)
  }
  return Effect.flatMap(
    readEntry(read),
    (entry) => perform(read, Policy.decide(entry, clock.unsafeCurrentTimeMillis(), job, input), answer)
  )
}

/** A store read that fails is a miss (logged and counted), never a failed read. */
const readEntry = <I, A, E, R>(target: Target<I, A, E, R>): Effect.Effect<Option.Option<Entry.Entry<A>>> =>
  Effect.map(
    degrade(target.job.name, target.store.get(target.key, target.job.valueSchema), Option.none()),
    (entry) => current(target.job, entry)
  )

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
      return Effect.map(syncRefresh(read), (value) => answer(job, input, value, status, syncFetch))
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
  }
}

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
    inBackground(read, Effect.zipRight(write(read, entry), enqueueElseRefreshLater(read))),
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
      Metrics.bump(Metrics.forJob(target.job.name).syncFetches)
      return fetchThen(target, "sync", Effect.succeed)
    }),
    {
      then: (entry) => bounded(target.job.name, Effect.ensuring(write(target, entry), released)),
      // A flight answered but still storing (a store that hangs) is joined only while its
      // value is fresh: a write that never ends cannot serve its value forever.
      joinable: (entry, now) => now <= entry.expiresAt
    }
  ).pipe(Effect.map((entry) => entry.value))

/** Fetches and stores (`Job.refresh`); a failed store write is logged, and the value still answered. */
export const fetchAndStore = <I, A, E, R>(target: Target<I, A, E, R>): Effect.Effect<A, E | FetchTimeout, R> =>
  Effect.map(fetchThen(target, "sync", (entry) => Effect.as(write(target, entry), entry)), (entry) => entry.value)

/**
 * One attempt at a background refresh: fetch, store, count. It fails when the value
 * cannot be stored too, so that a lost write is retried like a failed fetch.
 */
export const refreshAttempt = <I, A, E, R>(
  target: Target<I, A, E, R>
): Effect.Effect<A, E | FetchTimeout | StoreError | CodecError, R> =>
  fetchThen(
    target,
    "background",
    (entry) => Effect.as(target.store.set(target.key, entry, target.job.cacheTtl(target.input), target.job.valueSchema), entry)
  ).pipe(
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
  const fetch = timed(job.fetch(input), Metrics.fetchDuration(job.name, where)).pipe(
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
  return Effect.flatMap(
    bounded,
    (value) =>
      Effect.flatMap(
        Clock.currentTimeMillis,
        (now) => then(Entry.value(value, now, now + Duration.toMillis(job.expiry(input)), job.fingerprint))
      )
  )
}

/** `effect`, its duration (by the `Clock`, success or failure) recorded in `histogram`. */
const timed = <A, E, R>(effect: Effect.Effect<A, E, R>, histogram: Metric.Metric.Histogram<number>): Effect.Effect<A, E, R> =>
  Effect.clockWith((clock) => {
    const start = clock.unsafeCurrentTimeMillis()
    return Effect.ensuring(effect, Effect.sync(() => histogram.unsafeUpdate(clock.unsafeCurrentTimeMillis() - start, [])))
  })

/** The deadline of a fetch of the target: `withFetchTimeout`, else the refresh timeout. */
const deadlineOf = <I, A, E, R>({ input, job }: Target<I, A, E, R>): Duration.Duration =>
  job.fetchTimeout === undefined ? job.refreshTimeout(input) : job.fetchTimeout(input)

/** A write a read makes: a failure (or a store that dies) is logged and counted; the read goes on. */
export const write = <I, A, E, R>(target: Target<I, A, E, R>, entry: Entry.Entry<A>): Effect.Effect<void> =>
  degrade(
    target.job.name,
    target.store.set(target.key, entry, target.job.cacheTtl(target.input), target.job.valueSchema),
    undefined
  )
