/**
 * A read, in the order it happens (DESIGN.md §2), one function per step:
 *
 * 1. `resolve`: the key of the input, the job's store and the caller's services, read
 *    from the fiber;
 * 2. `lookUp`: the entry, synchronously where the store can; a store that fails is a miss;
 * 3. `decide`: the entry checked (fingerprint, tags), then `Policy.decide`;
 * 4. `act`: serve, serve and refresh in the background (`background.ts`), or fetch
 *    (`fetch.ts`);
 * 5. `answer`: `withProcessResult` applied once (`get`), or how the value was found
 *    (`lookup`).
 *
 * `get`, `lookup` and `Job.cached` run them through `run`, `getMany` over a batch. Each step
 * returns its result: a value where it can answer at once (a memory hit takes no effect
 * step), an effect where it needs I/O or a random draw. No `Effect.gen` on this path (several
 * times a `flatMap` chain), and counters are updated with `unsafeUpdate` (BENCHMARKS.md).
 */
import type * as Clock from "effect/Clock"
import * as ClockTag from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Entry from "../Entry.js"
import { type FetchTimeout, KeyError } from "../Errors.js"
import type * as Job from "../Job.js"
import * as Policy from "../Policy.js"
import type { RefreshQueue } from "../RefreshQueue.js"
import { type Asked, refreshEarly, writeBackThenRefresh } from "./background.js"
import { current, expired, holds, tagsHold } from "./entries.js"
import { degrade } from "./faults.js"
import { fetchShared } from "./fetch.js"
import { currentSpans, type Definition, type Stored } from "./job.js"
import * as Metrics from "./metrics.js"

/**
 * One read: its key, store and the caller's services (a refresh it enqueues runs with
 * them), the clock it reads time from, and what it answers.
 */
export class Read<I, A, E, R> implements Asked<I, A, E, R> {
  constructor(
    readonly job: Definition<I, A, E, R>,
    readonly input: I,
    readonly key: string,
    readonly store: Asked<I, A, E, R>["store"],
    readonly context: Context.Context<R | RefreshQueue>,
    readonly clock: Clock.Clock,
    /** `lookup`'s answer (how the value was found) rather than `get`'s. */
    readonly lookup: boolean,
    /** In a span of the operation, which records the status found. */
    readonly traced: boolean
  ) {}
  /** When its lookup began: its store commands share one timeout from then (DESIGN.md §6). */
  since = 0
}

/** What a read found: `lookup`'s answer (a `Job.Lookup`), and what `get`'s is made from. */
export class Found<V, E> {
  constructor(
    readonly value: V,
    readonly status: Policy.Status,
    readonly syncFetch: boolean | undefined,
    readonly error?: E
  ) {}
}

// -----------------------------------------------------------------------------
// The operations that read
// -----------------------------------------------------------------------------

/** `Job.get`: what `get` answers is the job's `Out`; the engine knows it as `unknown` (see `Job.get`). */
export const get = <I, A, E, R, S>(job: Stored<I, A, E, R, S>, input: I): Effect.Effect<unknown, E | FetchTimeout | KeyError, R | S | RefreshQueue> =>
  Effect.withFiberRuntime((fiber) => {
    const read = resolve(job, input, fiber, "value")
    return unkeyed(read) ? Effect.fail(read) : traced(read, "get", run(read))
  })

/** `Job.lookup`. */
export const lookup = <I, A, E, R, S>(
  job: Stored<I, A, E, R, S>,
  input: I
): Effect.Effect<Job.Lookup<unknown, unknown>, E | FetchTimeout | KeyError, R | S | RefreshQueue> =>
  Effect.withFiberRuntime((fiber) => {
    const read = resolve(job, input, fiber, "lookup")
    return unkeyed(read) ? Effect.fail(read) : traced(read, "get", run(read) as Effect.Effect<Found<unknown, unknown>, E | FetchTimeout | KeyError, R>)
  })

/**
 * `Job.getMany`: the same steps over a batch. Every input is resolved first (one that cannot
 * be keyed fails the call before any I/O), the entries are looked up in one store read, and
 * each is decided, acted on and answered; hits with no effect, the rest concurrently.
 */
export const getMany = <I, A, E, R, S>(
  job: Stored<I, A, E, R, S>,
  inputs: Iterable<I>
): Effect.Effect<Array<unknown>, E | FetchTimeout | KeyError, R | S | RefreshQueue> =>
  Effect.withFiberRuntime((fiber) => {
    const reads: Array<Read<I, A, E, R>> = []
    for (const input of inputs) {
      const read = resolve(job, input, fiber, "batched")
      if (unkeyed(read)) return Effect.fail(read)
      reads.push(read)
    }
    const batch = runMany(job, reads)
    return spansOn(job, fiber)
      ? Effect.withSpan(batch, "cacheback.getMany", {
        attributes: { "cacheback.job": job.name, "cacheback.keys": reads.length },
        captureStackTrace: false
      })
      : batch
  })

// -----------------------------------------------------------------------------
// 1. Resolve
// -----------------------------------------------------------------------------

/**
 * The read of `input`: its key (`job.key`, memoized in `Key.ts`), the job's store and the
 * caller's services, all from the fiber with no effect step; or why it cannot be keyed.
 */
export const resolve = <I, A, E, R, S>(
  job: Stored<I, A, E, R, S>,
  input: I,
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  answers: Answers
): Read<I, A, E, R> | KeyError => {
  const key = job.key(input)
  if (key._tag === "Left") return key.left
  // The effect that resolves requires `R | S | RefreshQueue` in its type, so the fiber's
  // context holds them: the one place where that is asserted rather than checked.
  const context = fiber.currentContext as Context.Context<R | S | RefreshQueue>
  return new Read<I, A, E, R>(
    job,
    input,
    key.right,
    Context.get(context, job.store),
    context,
    Context.get(fiber.currentDefaultServices, ClockTag.Clock),
    answers === "lookup",
    answers !== "batched" && spansOn(job, fiber)
  )
}

/**
 * What a read answers: `get`'s value, `lookup`'s record, or a value of a batch (`getMany`),
 * which has one span for all its reads rather than one each.
 */
export type Answers = "value" | "lookup" | "batched"

/** Whether a job's operations run in spans in this fiber (`Job.withSpans`, `Job.layerSpans`). */
export const spansOn = (job: { readonly spans: boolean }, fiber: Fiber.RuntimeFiber<unknown, unknown>): boolean =>
  job.spans || fiber.getFiberRef(currentSpans)

/** `effect` in a `cacheback.<operation>` span when the target's operations are traced. */
export const traced = <X, E, R>(
  target: { readonly traced: boolean; readonly job: { readonly name: string }; readonly key: string },
  operation: string,
  effect: Effect.Effect<X, E, R>
): Effect.Effect<X, E, R> =>
  target.traced
    ? Effect.withSpan(effect, `cacheback.${operation}`, {
      attributes: { "cacheback.job": target.job.name, "cacheback.key": target.key },
      captureStackTrace: false
    })
    : effect

// -----------------------------------------------------------------------------
// Steps 2 to 5, one read and a batch
// -----------------------------------------------------------------------------

/**
 * A step's result that needs an effect (I/O, a random draw): the rare case, wrapped so that
 * the common one, a plain value, is told apart by its `_tag` (`later`). `Effect.isEffect` and
 * `Option.isOption` are property checks that every shape meets, and `instanceof` a class
 * whose `name` was redefined (as esbuild's `keepNames` does, under tsx and vitest) costs ~20 ns:
 * each several times the check of a tag (BENCHMARKS.md).
 */
export class Later<X, E = never, R = never> {
  readonly _tag = "Later"
  constructor(readonly effect: Effect.Effect<X, E, R>) {}
}

/** Whether a step's result needs its effect. */
const later = <X, E, R>(step: X | Later<X, E, R>): step is Later<X, E, R> => (step as { readonly _tag?: unknown })._tag === "Later"

/** Whether `resolve` answered why the input has no key (a `Read` has no `_tag`). */
export const unkeyed = <I, A, E, R>(read: Read<I, A, E, R> | KeyError): read is KeyError => (read as { readonly _tag?: unknown })._tag === "KeyError"

/** `step`'s value, at once or through its effect. */
const atOnce = <X, E, R>(step: X | Later<X, E, R>): Effect.Effect<X, E, R> => later(step) ? step.effect : Effect.succeed(step)

/**
 * Looks up, decides, acts and answers. The continuations of a step that needs an effect are
 * functions of their own (`afterLookUp`, …): a closure in these functions would make V8
 * allocate a context for their variables on every call, hits included (BENCHMARKS.md).
 */
const run = <I, A, E, R>(read: Read<I, A, E, R>): Effect.Effect<unknown, E | FetchTimeout | KeyError, R> => {
  const at = read.clock.unsafeCurrentTimeMillis()
  read.since = at
  const entry = lookUp(read, at)
  return later(entry) ? afterLookUp(read, entry) : fromEntry(read, entry, at)
}

/** Steps 3 to 5, on the entry looked up. */
const fromEntry = <I, A, E, R>(
  read: Read<I, A, E, R>,
  entry: Option.Option<Entry.Entry<A>>,
  at: number
): Effect.Effect<unknown, E | FetchTimeout | KeyError, R> => {
  const decision = decide(read, entry, at)
  if (later(decision)) return afterDecision(read, decision, entry)
  const found = act(read, decision, entry)
  return later(found) ? afterAct(read, found) : answered(read, found)
}

const afterLookUp = <I, A, E, R>(read: Read<I, A, E, R>, entry: Later<Option.Option<Entry.Entry<A>>>) =>
  Effect.flatMap(entry.effect, (entry) => fromEntry(read, entry, read.clock.unsafeCurrentTimeMillis()))

const afterDecision = <I, A, E, R>(
  read: Read<I, A, E, R>,
  decision: Later<Policy.Decision<A>>,
  entry: Option.Option<Entry.Entry<A>>
): Effect.Effect<unknown, E | FetchTimeout | KeyError, R> =>
  Effect.flatMap(decision.effect, (decision) => {
    const found = act(read, decision, entry)
    return later(found) ? afterAct(read, found) : answered(read, found)
  })

const afterAct = <I, A, E, R>(read: Read<I, A, E, R>, found: Later<Found<unknown, unknown>, E | FetchTimeout | KeyError, R>) =>
  Effect.flatMap(found.effect, (found) => answered(read, found))

/** The answer, the status recorded on the read's span when it has one. */
const answered = <I, A, E, R>(read: Read<I, A, E, R>, found: Found<unknown, unknown>): Effect.Effect<unknown> =>
  read.traced
    ? Effect.as(Effect.annotateCurrentSpan("cacheback.status", found.status), answer(read, found))
    : Effect.succeed(answer(read, found))

/** Steps 2 to 5 over a batch: one store read, then each entry as `run` takes one. */
const runMany = <I, A, E, R, S>(
  job: Stored<I, A, E, R, S>,
  reads: ReadonlyArray<Read<I, A, E, R>>
): Effect.Effect<Array<unknown>, E | FetchTimeout | KeyError, R> => {
  if (reads.length === 0) return Effect.succeed([])
  const { clock, store } = reads[0]!
  const none = reads.map(() => Option.none<Entry.Entry<A>>())
  const keys = reads.map((read) => read.key)
  const since = clock.unsafeCurrentTimeMillis()
  for (const read of reads) read.since = since
  return Effect.flatMap(degrade(store.engine.throttle, job.name, store.getMany(keys, job.valueSchema), none), (entries) => {
    const at = clock.unsafeCurrentTimeMillis()
    const values: Array<unknown> = new Array(reads.length)
    // What cannot be answered at once (a fetch, a background write, a tag check, a draw).
    const rest: Array<Effect.Effect<void, E | FetchTimeout | KeyError, R>> = []
    for (let i = 0; i < reads.length; i++) {
      const read = reads[i]!
      const entry = entries[i]!
      const decision = decide(read, entry, at)
      const found = later(decision)
        ? new Later(Effect.flatMap(decision.effect, (decision) => atOnce(act(read, decision, entry))))
        : act(read, decision, entry)
      if (later(found)) rest.push(Effect.map(found.effect, (found) => void (values[i] = answer(read, found))))
      else values[i] = answer(read, found)
    }
    return rest.length === 0 ? Effect.succeed(values) : Effect.as(Effect.all(rest, { concurrency: "unbounded", discard: true }), values)
  })
}

// -----------------------------------------------------------------------------
// 2. Look up
// -----------------------------------------------------------------------------

/**
 * The entry: at once from a store that can answer without I/O (`unsafeGet`), else an
 * effect that reads it. A store read that fails is a miss (logged and counted), never a
 * failed read.
 */
export const lookUp = <I, A, E, R>(
  read: Read<I, A, E, R>,
  now: number
): Option.Option<Entry.Entry<A>> | Later<Option.Option<Entry.Entry<A>>> => {
  const { job, key, store } = read
  const known = store.unsafeGet?.<A>(key, now)
  return known !== undefined ? known : new Later(degrade(store.engine.throttle, job.name, store.get(key, job.valueSchema), Option.none()))
}

// -----------------------------------------------------------------------------
// 3. Decide
// -----------------------------------------------------------------------------

/**
 * The decision of `Policy.decide` on the entry, once checked: an entry of another
 * fingerprint is a miss, and a tagged entry one of whose tags was invalidated is stale. A
 * job with an early refresh draws from Effect's `Random` for it. An untagged entry of a job
 * without one is decided with no effect step.
 */
export const decide = <I, A, E, R>(
  read: Read<I, A, E, R>,
  found: Option.Option<Entry.Entry<A>>,
  now: number
): Policy.Decision<A> | Later<Policy.Decision<A>> => {
  const entry = current(read.job, found)
  if (entry._tag === "None" || entry.value._tag !== "Value" || entry.value.tags === undefined) return decideNow(read, entry, now)
  const tagged = entry.value
  const recorded = tagged.tags!
  const known = read.store.tags?.unsafeTokens
  if (known !== undefined) return decideNow(read, holds(recorded, known(Object.keys(recorded))) ? entry : Option.some(expired(tagged, now)), now)
  return new Later(decideTagged(read, entry as Option.Some<Entry.Value<A>>, now))
}

// The effectful cases are functions of their own, for the reason `run` gives.

/** A tagged entry whose tokens are read from the store, then decided. */
const decideTagged = <I, A, E, R>(read: Read<I, A, E, R>, entry: Option.Some<Entry.Value<A>>, now: number) =>
  Effect.flatMap(
    tagsHold(read.store, read.job.name, entry.value.tags!),
    (hold) => atOnce(decideNow(read, hold ? entry : Option.some(expired(entry.value, now)), now))
  )

const decideNow = <I, A, E, R>(
  read: Read<I, A, E, R>,
  entry: Option.Option<Entry.Entry<A>>,
  now: number
): Policy.Decision<A> | Later<Policy.Decision<A>> =>
  read.job.earlyRefresh === undefined ? Policy.decide(entry, now, read.job, read.input) : new Later(decideWithDraw(read, entry, now))

/** `Random.next` is in [0, 1); XFetch takes a draw in (0, 1]. */
const decideWithDraw = <I, A, E, R>(read: Read<I, A, E, R>, entry: Option.Option<Entry.Entry<A>>, now: number) =>
  Effect.map(Random.next, (draw) => Policy.decide(entry, now, read.job, read.input, 1 - draw))

// -----------------------------------------------------------------------------
// 4. Act
// -----------------------------------------------------------------------------

/**
 * Carries the decision out, counted: a hit is found at once; a fetch waits for the shared
 * fetch of the key; a stale value or the empty value is found at once, its write-back (or
 * pending marker) and refresh left to the background. `entry` is the one looked up: its
 * token is the one every write that follows is made over (DESIGN.md §3.2), and an early
 * refresh is asked once per fetched value.
 */
export const act = <I, A, E, R>(
  read: Read<I, A, E, R>,
  decision: Policy.Decision<A>,
  entry: Option.Option<Entry.Entry<A>>
): Found<unknown, unknown> | Later<Found<unknown, unknown>, E | FetchTimeout | KeyError, R> => {
  const counters = Metrics.forJob(read.job.name)
  switch (decision._tag) {
    case "Hit": {
      Metrics.bump(counters.hits)
      const found = new Found(decision.value, "hit", undefined)
      return decision.refreshEarly === true && entry._tag === "Some" && entry.value._tag === "Value"
        ? new Later(Effect.as(refreshEarly(read, entry.value), found))
        : found
    }
    case "Fetch": {
      Metrics.bump(decision.status === "miss" ? counters.misses : counters.staleHits)
      return new Later(fetchNow(read, decision, Entry.tokenOf(entry)))
    }
    case "ServeEmpty": {
      Metrics.bump(counters.misses)
      const found = new Found(read.job.empty(read.input), "miss", false)
      if (decision.marker === undefined) return found
      // A marker keeps the token of what it replaces (a tombstone's, or none); it never
      // replaces a value, even another version's (which that version still serves).
      const token = Entry.tokenOf(entry)
      const marker = entry._tag === "Some" && entry.value._tag === "Value"
        ? undefined
        : Entry.pending(decision.marker.expiresAt, token || undefined)
      return new Later(Effect.as(writeBackThenRefresh(read, marker, token), found))
    }
    case "ServeStale": {
      Metrics.bump(counters.staleHits)
      return new Later(
        Effect.as(writeBackThenRefresh(read, decision.entry, Entry.tokenOf(entry)), new Found(decision.value, "stale", false))
      )
    }
    case "ServeGrace": {
      Metrics.bump(counters.staleHits)
      return new Found(decision.value, "stale", false)
    }
  }
}

/** A fetch while the caller waits, shared with the other readers of the key (`fetch.ts`). */
const fetchNow = <I, A, E, R>(
  read: Read<I, A, E, R>,
  decision: Policy.Decision<A> & { readonly _tag: "Fetch" },
  token: string
): Effect.Effect<Found<unknown, unknown>, E | FetchTimeout | KeyError, R> => {
  const { fallback, status } = decision
  const fetched = Effect.map(fetchShared(read, token, read.since), (value): Found<unknown, unknown> => new Found(value, status, true))
  return fallback === undefined ? fetched : Effect.catchAll(fetched, (error) => staleIfError(read, fallback, error))
}

/**
 * The synchronous fetch of a stale value failed: stale-if-error serves the value instead,
 * when `Policy.recover` allows it, written back to be served without fetching for a
 * refresh timeout, and a refresh is enqueued; otherwise the error goes to the caller.
 */
const staleIfError = <I, A, E, R>(
  read: Read<I, A, E, R>,
  fallback: Entry.Value<A>,
  error: E | FetchTimeout
): Effect.Effect<Found<unknown, unknown>, E | FetchTimeout> => {
  const recovered = Policy.recover(fallback, error, read.clock.unsafeCurrentTimeMillis(), read.job, read.input)
  if (recovered === undefined || recovered._tag !== "ServeStale") return Effect.fail(error)
  Metrics.bump(Metrics.forJob(read.job.name).staleIfError)
  // A write-back, over the fallback's token: a value a refresh stored meanwhile stays.
  return Effect.as(writeBackThenRefresh(read, recovered.entry, fallback.token ?? ""), new Found(recovered.value, "stale", false, error))
}

// -----------------------------------------------------------------------------
// 5. Answer
// -----------------------------------------------------------------------------

/** `lookup`'s answer, or `get`'s: the value, through `withProcessResult` when the job has one. */
export const answer = <I, A, E, R>(read: Read<I, A, E, R>, found: Found<unknown, unknown>): unknown => {
  if (read.lookup) return found
  const process = read.job.processResult
  return process === undefined
    ? found.value
    : process(found.value, { input: read.input, status: found.status, syncFetch: found.syncFetch })
}
