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
import type { Service as StoreService } from "../CacheStore.js"
import * as Entry from "../Entry.js"
import type { CodecError, KeyError, StoreError } from "../Errors.js"
import type * as Job from "../Job.js"
import * as Policy from "../Policy.js"
import { RefreshQueue, type Task } from "../RefreshQueue.js"
import { degrade } from "./faults.js"
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
  Effect.withSpan(effect, `cacheback.${operation}`, { attributes: { "cacheback.job": job, "cacheback.key": key } })

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
export const lookup = <I, A, E, R, X>(read: Read<I, A, E, R>, clock: Clock.Clock, answer: Answer<I, X>): Effect.Effect<X, E, R> => {
  const { input, job, key, store } = read
  if (store.unsafeGet !== undefined) {
    const now = clock.unsafeCurrentTimeMillis()
    return perform(read, Policy.decide(store.unsafeGet<A>(key, now), now, job, input), answer)
  }
  return Effect.flatMap(
    readEntry(read),
    (entry) => perform(read, Policy.decide(entry, clock.unsafeCurrentTimeMillis(), job, input), answer)
  )
}

/** A store read that fails is a miss (logged and counted), never a failed read. */
export const readEntry = <I, A, E, R>(target: Target<I, A, E, R>): Effect.Effect<Option.Option<Entry.Entry<A>>> =>
  degrade(target.job.name, target.store.get(target.key, target.job.valueSchema), Option.none())

/** Carries out a decision of `Policy.decide` for `read`. */
export const perform = <I, A, E, R, X>(
  read: Read<I, A, E, R>,
  decision: Policy.Decision<A>,
  answer: Answer<I, X>
): Effect.Effect<X, E, R> => {
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
 * Stores the marker or the written-back stale entry, enqueues a refresh and answers
 * `served`. When the queue refuses, the refresh runs now, as cacheback does, and its value
 * is the answer; if that fails too, the caller gets `served` (logged).
 */
const serveThenRefresh = <I, A, E, R, X>(
  read: Read<I, A, E, R>,
  entry: Entry.Entry<A>,
  served: unknown,
  status: Policy.Status,
  answer: Answer<I, X>
): Effect.Effect<X, never, R> =>
  write(read, entry).pipe(
    Effect.zipRight(enqueueElseRefresh(read)),
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause) ? Effect.failCause(cause as Cause.Cause<never>) : Effect.as(
        Effect.logWarning(`cacheback: job "${read.job.name}": the synchronous refresh of "${read.key}" failed`, cause),
        Option.none()
      )
    ),
    Effect.map((refreshed) =>
      Option.isSome(refreshed)
        ? answer(read.job, read.input, refreshed.value, status, true)
        : answer(read.job, read.input, served, status, false)
    )
  )

// -----------------------------------------------------------------------------
// Enqueuing, fetching, storing
// -----------------------------------------------------------------------------

/**
 * Enqueues a refresh of the read's key; when the queue refuses it, refreshes now (sharing
 * a fetch of the key in flight). Answers the fetched value in that case, `None` when
 * queued; fails with the fetch's error.
 */
export const enqueueElseRefresh = <I, A, E, R>(read: Read<I, A, E, R>): Effect.Effect<Option.Option<A>, E, R> =>
  Effect.flatMap(enqueue(read), (queued) => queued === "queued" ? Effect.succeedNone : Effect.asSome(syncRefresh(read)))

/**
 * Puts a refresh of the read's key on the queue: `queued` (or collapsed into a waiting
 * task, counted as deduplicated), or `refused` (logged) when the caller must refresh.
 */
export const enqueue = <I, A, E, R>(read: Read<I, A, E, R>): Effect.Effect<"queued" | "refused"> => {
  const task: Task = {
    job: read.job.name,
    key: read.key,
    store: read.store.identity,
    input: read.input,
    inputSchema: read.job.inputSchema,
    options: read.job.queueOptions,
    // One attempt with the caller's services, in a scope of its own: the caller's scope (a
    // request's) may be long closed when it runs.
    refresh: Effect.provide(Effect.scoped(refreshAttempt(read)), read.context)
  }
  return Effect.matchEffect(Context.get(read.context, RefreshQueue).enqueue(task), {
    onFailure: (error) => Effect.as(Effect.logWarning(`cacheback: ${error.message}; refreshing synchronously`), "refused" as const),
    onSuccess: (enqueued) => {
      const counters = Metrics.forJob(read.job.name)
      Metrics.bump(enqueued === "enqueued" ? counters.enqueued : counters.deduplicated)
      return Effect.succeed("queued" as const)
    }
  })
}

/**
 * A fetch while the caller waits, shared by every concurrent caller of the key in this
 * process (single flight); counted once, by the fetch that runs. A failed store write is
 * logged: the caller still gets the value.
 */
export const syncRefresh = <I, A, E, R>(target: Target<I, A, E, R>): Effect.Effect<A, E, R> =>
  SingleFlight.run(
    target.store,
    target.key,
    Effect.suspend(() => {
      Metrics.bump(Metrics.forJob(target.job.name).syncFetches)
      return fetchAndStore(target)
    })
  )

/** Fetches and stores; a failed store write is logged, and the value still answered. */
export const fetchAndStore = <I, A, E, R>(target: Target<I, A, E, R>): Effect.Effect<A, E, R> =>
  fetchThen(target, (entry) => write(target, entry))

/**
 * One attempt at a background refresh: fetch, store, count. It fails when the value
 * cannot be stored too, so that a lost write is retried like a failed fetch.
 */
export const refreshAttempt = <I, A, E, R>(target: Target<I, A, E, R>): Effect.Effect<A, E | StoreError | CodecError, R> =>
  Effect.tap(
    fetchThen(target, (entry) => target.store.set(target.key, entry, target.job.cacheTtl(target.input), target.job.valueSchema)),
    () => Metrics.bump(Metrics.forJob(target.job.name).refreshed)
  )

/** Fetches (in a `cacheback.fetch` span), saves the entry with the job's expiry, answers the value. */
const fetchThen = <I, A, E, R, E2>(
  target: Target<I, A, E, R>,
  save: (entry: Entry.Value<A>) => Effect.Effect<void, E2>
): Effect.Effect<A, E | E2, R> =>
  target.job.fetch(target.input).pipe(
    Effect.withSpan("cacheback.fetch", { attributes: { "cacheback.job": target.job.name, "cacheback.key": target.key } }),
    Effect.flatMap((value) =>
      Effect.flatMap(
        Clock.currentTimeMillis,
        (now) => Effect.as(save(Entry.value(value, now, now + Duration.toMillis(target.job.expiry(target.input)))), value)
      )
    )
  )

/** A write a read makes: a failure (or a store that dies) is logged and counted; the read goes on. */
export const write = <I, A, E, R>(target: Target<I, A, E, R>, entry: Entry.Entry<A>): Effect.Effect<void> =>
  degrade(
    target.job.name,
    target.store.set(target.key, entry, target.job.cacheTtl(target.input), target.job.valueSchema),
    undefined
  )
