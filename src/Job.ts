/**
 * A job is a plain record of functions: how to fetch a value, how to key it, how long it
 * stays fresh. `Job.make` builds one, combinators return refined copies, and the operations
 * read it. This file holds the types, the signatures and their docs, top to bottom like
 * cacheback's `base.py`: the record, the combinators, the operations (`get` first). The
 * machinery is in `internal/`: the record in `job.ts`, the engine of a read in `read.ts`.
 *
 * @since 0.1.0
 */
import type * as Context_ from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type { Pipeable } from "effect/Pipeable"
import type * as Types from "effect/Types"
import type { CacheStore, Service as StoreService } from "./CacheStore.js"
import type * as Entry from "./Entry.js"
import type { CodecError, FetchTimeout, KeyError, StoreError } from "./Errors.js"
import type { SchemaOf } from "./internal/codec.js"
import * as internal from "./internal/job.js"
import type * as Metrics from "./internal/metrics.js"
import * as operations from "./internal/operations.js"
import * as read from "./internal/read.js"
import type * as Policy from "./Policy.js"
import type { Policy as TaskPolicy, QueueOptions, RefreshQueue } from "./RefreshQueue.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = internal.TypeId

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * A cached read.
 *
 * - `I` the input, `A` the fetched value, `E` and `R` the error and requirements of `fetch`.
 * - `Out` what `get` returns: `A` for a job that fetches on every miss, `A | Z` for one that
 *   may answer a miss with its empty value, or whatever `withProcessResult` makes of it.
 * - `Z` the empty value's type, `Async` whether a miss may be answered with it.
 * - `S` the cache store service the job reads and writes (`CacheStore` unless `withStore`).
 *
 * The extractors `Job.Input<J>`, `Job.Value<J>`, `Job.Out<J>`, `Job.Error<J>`,
 * `Job.Context<J>` and `Job.Store<J>` name each of them for a job type.
 *
 * @since 0.1.0
 * @category models
 */
export interface Job<I, A, E = never, R = never, Out = A, Z = undefined, Async extends boolean = false, S = CacheStore>
  extends Pipeable, Policy.Rules<I>
{
  readonly [TypeId]: {
    readonly _Out: Types.Covariant<Out>
    readonly _Async: Types.Covariant<Async>
  }
  /** Stable identity: the key prefix, and how workers find the job. */
  readonly name: string
  readonly fetch: (input: I) => Effect.Effect<A, E, R>
  readonly key: (input: I) => Either.Either<string, KeyError>
  /** How long a stored value stays fresh (cacheback's `lifetime`, `expiry()`). */
  readonly expiry: (input: I) => Duration.Duration
  /** After this the backend forgets the entry (cacheback's `cache_ttl`). */
  readonly cacheTtl: (input: I) => Duration.Duration
  /** The deadline of a fetch (`withFetchTimeout`); `undefined`: the refresh timeout. */
  readonly fetchTimeout: ((input: I) => Duration.Duration) | undefined
  readonly empty: (input: I) => Z
  readonly processResult: ((value: unknown, context: ResultContext<I>) => Out) | undefined
  readonly inputSchema: SchemaOf<I> | undefined
  readonly valueSchema: SchemaOf<A> | undefined
  /** `withStaleIfError`: when a failed synchronous fetch of a stale value serves it instead. */
  readonly staleIfError: Policy.StaleIfError<I> | undefined
  /** `withEarlyRefresh`: XFetch's `beta`, when hits refresh early. */
  readonly earlyRefresh: Policy.EarlyRefresh | undefined
  /** `withTags`: the tags of a fetched value, for `invalidateTags`. */
  readonly tags: ((input: I, value: A) => ReadonlyArray<string>) | undefined
  /** `withVersion`: bumped when the value's shape changes in a way its schema cannot tell. */
  readonly version: number
  /**
   * What its entries carry, of its value schema's encoded structure and its version; an
   * entry of another is a miss. `undefined` for a job with no value schema at version 0.
   */
  readonly fingerprint: string | undefined
  readonly store: Tag<S>
  readonly queueOptions: QueueOptions
  /** A span around every operation of this job (`cacheback.get`), off by default. */
  readonly spans: boolean
  /** `withSingleFlight`: whether concurrent synchronous fetches of a key share one fetch across processes. */
  readonly singleFlight: "process" | "cluster"
}

/**
 * @since 0.1.0
 * @category models
 */
export declare namespace Job {
  /**
   * Any job whose fetch can succeed: what functions over jobs of every kind take (a
   * worker's `jobs`). Its parameters are `any` because a job is contravariant in its
   * input and invariant in its schemas and store tag, so no other type admits them all.
   *
   * @since 0.1.0
   * @category models
   */
  export type Any = Job<any, any, any, any, any, any, any, any>
  /**
   * Any job at all, those whose fetch never succeeds (`A = never`) included, whose value
   * schema `Any` cannot admit: what the combinators and operations take.
   *
   * @since 0.1.0
   * @category models
   */
  export interface All {
    readonly [TypeId]: { readonly _Out: Types.Covariant<unknown>; readonly _Async: Types.Covariant<boolean> }
  }
  /**
   * What `get` returns before `withProcessResult`: `A`, or `A | Z` for a job that may
   * answer a miss with its empty value.
   *
   * @since 0.1.0
   * @category models
   */
  export type Raw<A, Z, Async extends boolean> = Async extends true ? A | Z : A
  /**
   * Whether a miss may be answered with the empty value after `withSyncOnMiss(sync)`: never
   * after `true`, always after `false` or a predicate, maybe after a `boolean`.
   *
   * @since 0.3.0
   * @category models
   */
  export type MissAsync<Sync> = Sync extends true ? false : Sync extends false ? true : Sync extends boolean ? boolean : true
  /**
   * A job that takes inputs of type `I`: what the data-last operations (`Job.get(input)`)
   * accept.
   *
   * @since 0.1.0
   * @category models
   */
  export interface Taking<in I> {
    readonly fetch: (input: I) => Effect.Effect<unknown, unknown, unknown>
  }
}

type Parts<J> = J extends Job<infer I, infer A, infer E, infer R, infer Out, infer Z, infer Async, infer S>
  ? { I: I; A: A; E: E; R: R; Out: Out; Z: Z; Async: Async; S: S }
  : never

/**
 * The input of a job type.
 *
 * @since 0.1.0
 * @category type extractors
 */
export type Input<J extends Job.All> = Parts<J>["I"]

/**
 * The value a job type fetches and stores.
 *
 * @since 0.1.0
 * @category type extractors
 */
export type Value<J extends Job.All> = Parts<J>["A"]

/**
 * What `get` answers for a job type.
 *
 * @since 0.1.0
 * @category type extractors
 */
export type Out<J extends Job.All> = Parts<J>["Out"]

/**
 * The error of a job type's `fetch`.
 *
 * @since 0.1.0
 * @category type extractors
 */
export type Error<J extends Job.All> = Parts<J>["E"]

/**
 * The requirements of a job type's `fetch`.
 *
 * @since 0.1.0
 * @category type extractors
 */
export type Context<J extends Job.All> = Parts<J>["R"]

/**
 * The cache store service a job type reads and writes.
 *
 * @since 0.1.0
 * @category type extractors
 */
export type Store<J extends Job.All> = Parts<J>["S"]

/**
 * What a read of a job type requires: its fetch's requirements, its store and a queue.
 *
 * @since 0.1.0
 * @category type extractors
 */
export type Requirements<J extends Job.All> = Context<J> | Store<J> | RefreshQueue

/**
 * The tag of a cache store service.
 *
 * @since 0.1.0
 * @category models
 */
export type Tag<S> = Context_.Tag<S, StoreService>

/**
 * What `withProcessResult` (cacheback's `process_result`) is told about a read.
 *
 * @since 0.1.0
 * @category models
 */
export interface ResultContext<I> {
  readonly input: I
  readonly status: Policy.Status
  /** `true` fetched while the caller waited, `false` left to the queue, `undefined` a hit. */
  readonly syncFetch: boolean | undefined
}

/**
 * What `lookup` returns.
 *
 * @since 0.1.0
 * @category models
 */
export interface Lookup<V, E = unknown> {
  readonly value: V
  readonly status: Policy.Status
  readonly syncFetch: boolean | undefined
  /**
   * The error of a synchronous fetch whose stale value was served instead
   * (`withStaleIfError`). @since 0.2.0
   */
  readonly error?: E
}

/**
 * @since 0.1.0
 * @category guards
 */
export const isJob: (u: unknown) => u is Job.Any = internal.isJob

/**
 * A job with cacheback's defaults: lifetime 10 minutes, refresh timeout 60 seconds, cache
 * TTL 30 days, fetch on miss, serve stale values while refreshing, empty value `undefined`.
 * Throws at once when `name` is empty.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Job } from "effect-cacheback"
 *
 * // A user's profile: fresh for 5 minutes, never served older than 15, its input
 * // encodable for tasks that leave the process.
 * const profile = Job.make({
 *   name: "profile",
 *   fetch: (id: number) => Effect.succeed({ id, name: `user ${id}` })
 * }).pipe(
 *   Job.withLifetime("5 minutes"),
 *   Job.withStaleRefresh({ syncAfter: "15 minutes" }),
 *   Job.withSchema({ input: Schema.Number })
 * )
 *
 * assert.ok(Job.isJob(profile))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: <I = void, A = never, E = never, R = never>(options: {
  readonly name: string
  readonly fetch: (input: I) => Effect.Effect<A, E, R>
}) => Job<I, A, E, R> = internal.make

// -----------------------------------------------------------------------------
// Combinators. Each is dual and returns a new record.
// -----------------------------------------------------------------------------

/**
 * The key of an input: `name:` followed by what `f` returns (cacheback's `key()`). The
 * prefix keeps two jobs from sharing an entry.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withKey: {
  <I>(f: (input: I) => string): Refine<I>
  <J extends Job.All>(self: J, f: (input: Input<J>) => string): J
} = dual(2, internal.withKey)

/**
 * The entry goes stale `lifetime` after it is stored (cacheback's `lifetime`; default 10
 * minutes). Throws at once for a negative or non-finite duration.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withLifetime: {
  (lifetime: Duration.DurationInput): <J extends Job.All>(self: J) => J
  <J extends Job.All>(self: J, lifetime: Duration.DurationInput): J
} = dual(2, internal.withLifetime)

/**
 * A lifetime per input (cacheback's `expiry()`).
 *
 * @since 0.1.0
 * @category combinators
 */
export const withExpiry: {
  <I>(f: (input: I) => Duration.DurationInput): Refine<I>
  <J extends Job.All>(self: J, f: (input: Input<J>) => Duration.DurationInput): J
} = dual(2, internal.withExpiry)

/**
 * The window in which no new refresh is enqueued for a key (cacheback's `refresh_timeout`
 * and `timeout()`; default 60 seconds): a stale value is written back for this long, and a
 * pending marker lasts this long.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withRefreshTimeout: {
  <I>(
    timeout: Duration.DurationInput | ((input: I) => Duration.DurationInput)
  ): Refine<I>
  <J extends Job.All>(self: J, timeout: Duration.DurationInput | ((input: Input<J>) => Duration.DurationInput)): J
} = dual(2, internal.withRefreshTimeout)

/**
 * After `ttl` the backend forgets the entry, and the next read is a real miss (cacheback's
 * `cache_ttl`; default 30 days).
 *
 * @since 0.1.0
 * @category combinators
 */
export const withCacheTtl: {
  <I>(
    ttl: Duration.DurationInput | ((input: I) => Duration.DurationInput)
  ): Refine<I>
  <J extends Job.All>(self: J, ttl: Duration.DurationInput | ((input: Input<J>) => Duration.DurationInput)): J
} = dual(2, internal.withCacheTtl)

/**
 * The deadline of every fetch of this job (DESIGN.md §3.1); by default its refresh timeout. A
 * fetch past it is interrupted and its key is free again: a synchronous one fails its
 * callers with a typed `FetchTimeout` (logged, counted in `cacheback_fetch_timeouts`), a
 * background one is retried per the queue options. `Duration.infinity` turns it off.
 * Throws at once for a negative duration.
 *
 * New in 0.2.0, and a change: a fetch that takes longer than the refresh timeout (60 s
 * unless set) used to complete; it now fails with `FetchTimeout`.
 *
 * @since 0.2.0
 * @category combinators
 */
export const withFetchTimeout: {
  <I>(timeout: Duration.DurationInput | ((input: I) => Duration.DurationInput)): Refine<I>
  <J extends Job.All>(self: J, timeout: Duration.DurationInput | ((input: Input<J>) => Duration.DurationInput)): J
} = dual(2, internal.withFetchTimeout)

/**
 * Whether a miss is fetched while the caller waits (cacheback's `fetch_on_miss` and
 * `should_missing_item_be_fetched_synchronously()`; default `true`). With `false`, or a
 * predicate that says no, a miss answers the empty value at once and a refresh is
 * enqueued; the result type becomes `A | Z`.
 *
 * Apply it before `withProcessResult`, whose function would otherwise meet values it was not
 * written for: that throws at once.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withSyncOnMiss: {
  <I, const Sync extends boolean | ((input: I) => boolean)>(sync: Sync): <A, E, R, Out extends A | Z, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>
  ) => Job<I, A, E, R, Job.Raw<A, Z, Job.MissAsync<Sync>>, Z, Job.MissAsync<Sync>, S>
  <I, A, E, R, Out extends A | Z, Z, Async extends boolean, S, const Sync extends boolean | ((input: I) => boolean)>(
    self: Job<I, A, E, R, Out, Z, Async, S>,
    sync: Sync
  ): Job<I, A, E, R, Job.Raw<A, Z, Job.MissAsync<Sync>>, Z, Job.MissAsync<Sync>, S>
} = dual(2, internal.withSyncOnMiss)

/**
 * The value a miss answers when it is not fetched synchronously (cacheback's `empty()`;
 * default `undefined`). Its type joins the result type of a job that may answer it.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withEmpty: {
  <I, Z2>(empty: (input: I) => Z2): <A, E, R, Out extends A | Z, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>
  ) => Job<I, A, E, R, Job.Raw<A, Z2, Async>, Z2, Async, S>
  <I, A, E, R, Out extends A | Z, Z, Async extends boolean, S, Z2>(
    self: Job<I, A, E, R, Out, Z, Async, S>,
    empty: (input: NoInfer<I>) => Z2
  ): Job<I, A, E, R, Job.Raw<A, Z2, Async>, Z2, Async, S>
} = dual(2, internal.withEmpty)

/**
 * When a stale value is fetched synchronously instead of served (cacheback's
 * `fetch_on_stale_threshold` and `should_stale_item_be_fetched_synchronously()`).
 *
 * - `{ syncAfter }`: when it is older than `syncAfter` since it was fetched. A value older
 *   than that is never served, even if its lifetime is longer.
 * - a predicate `({ age, staleFor }, input) => boolean`, ages in milliseconds.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withStaleRefresh: {
  <I>(
    rule: { readonly syncAfter: Duration.DurationInput } | ((ages: Policy.Ages, input: I) => boolean)
  ): Refine<I>
  <J extends Job.All>(
    self: J,
    rule: { readonly syncAfter: Duration.DurationInput } | ((ages: Policy.Ages, input: Input<J>) => boolean)
  ): J
} = dual(2, internal.withStaleRefresh)

/**
 * Turns what a read found into what `get` returns (cacheback's `process_result()`); told the
 * input, the status and whether the value was fetched synchronously. Applied twice, the
 * second runs on the result of the first.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withProcessResult: {
  <Out, I, B>(f: (value: Out, context: ResultContext<I>) => B): <A, E, R, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>
  ) => Job<I, A, E, R, B, Z, Async, S>
  <I, A, E, R, Out, Z, Async extends boolean, S, B>(
    self: Job<I, A, E, R, Out, Z, Async, S>,
    f: (value: Out, context: ResultContext<I>) => B
  ): Job<I, A, E, R, B, Z, Async, S>
} = dual(2, internal.withProcessResult)

/**
 * Codecs for entries and tasks that leave the process: `value` for the Redis and key-value
 * stores, `input` for BullMQ tasks. An input schema also keys inputs that are not plain
 * data (class instances) by their encoded form. A schema must accept every value of the
 * job's type; its type may be wider (readonly arrays for mutable ones). An input type with
 * a field its input schema lacks does not compile: the schema would drop it.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withSchema: {
  <I2 = never, V = never>(schemas: {
    readonly input?: SchemaOf<I2>
    readonly value?: SchemaOf<V>
  }): <I extends Encodable<I2>, A extends Encodable<V>, E, R, Out, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S> & InputFits<I, I2>
  ) => Job<I, A, E, R, Out, Z, Async, S>
  <I extends Encodable<I2>, A extends Encodable<V>, E, R, Out, Z, Async extends boolean, S, I2 = never, V = never>(
    self: Job<I, A, E, R, Out, Z, Async, S> & InputFits<I, I2>,
    schemas: {
      readonly input?: SchemaOf<I2>
      readonly value?: SchemaOf<V>
    }
  ): Job<I, A, E, R, Out, Z, Async, S>
} = dual(2, internal.withSchema)

/**
 * Stale-if-error (DESIGN.md §8.1; django-cacheback #74): when the synchronous fetch of a stale
 * value fails or times out, answer the stale value instead, if it is younger than
 * `maxStale` since its fetch (or when `f` says so, told the ages, the input and the error),
 * and enqueue a refresh. `Job.lookup` reports it `stale`, with the error. For a refresh
 * timeout after that, reads serve it without fetching again: no read waits on a dead origin
 * twice in a row. The one exception to the `syncAfter` ceiling; counted in
 * `cacheback_stale_if_error`. Throws at once for a negative duration.
 *
 * @since 0.2.0
 * @category combinators
 */
export const withStaleIfError: {
  <I, E>(
    rule: Duration.DurationInput | ((ages: Policy.Ages, input: I, error: E | FetchTimeout) => boolean)
  ): <A, R, Out, Z, Async extends boolean, S>(self: Job<I, A, E, R, Out, Z, Async, S>) => Job<I, A, E, R, Out, Z, Async, S>
  <I, A, E, R, Out, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>,
    rule: Duration.DurationInput | ((ages: Policy.Ages, input: I, error: E | FetchTimeout) => boolean)
  ): Job<I, A, E, R, Out, Z, Async, S>
} = dual(2, internal.withStaleIfError)

/**
 * Early refresh of hot keys (DESIGN.md §8.2): probabilistic early expiration (XFetch; Vattani,
 * Chierichetti, Lowenstein, VLDB 2015). Entries record how long their fetch took (`delta`);
 * a hit enqueues a refresh when `now - delta × beta × ln(draw) ≥ expiresAt` (the draw from
 * Effect's `Random`, so `TestRandom` drives it), never before half the lifetime, once per
 * fetched value in a process: hot keys are refreshed before anyone reads them stale. Counted
 * in `cacheback_early_refreshes`. `beta` 1 is XFetch's default; larger refreshes earlier.
 * Throws at once for a `beta` that is not a positive number.
 *
 * @since 0.2.0
 * @category combinators
 */
export const withEarlyRefresh: {
  (options: { readonly beta: number }): <J extends Job.All>(self: J) => J
  <J extends Job.All>(self: J, options: { readonly beta: number }): J
} = dual(2, internal.withEarlyRefresh)

/**
 * Tags (DESIGN.md §8.3): the tags of a fetched value, by its input and the value. An entry records
 * its tags' tokens as they were before its fetch began; `Job.invalidateTags` (or
 * `CacheStore.invalidateTags`) gives a tag a new token, and every entry that recorded the
 * old one is stale: served per the job's policy and refreshed. O(1) whatever the number of
 * tagged entries; no clock is compared across hosts.
 *
 * @since 0.2.0
 * @category combinators
 */
export const withTags: {
  <I, A>(tags: (input: I, value: A) => ReadonlyArray<string>): <E, R, Out, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>
  ) => Job<I, A, E, R, Out, Z, Async, S>
  <I, A, E, R, Out, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>,
    tags: (input: I, value: A) => ReadonlyArray<string>
  ): Job<I, A, E, R, Out, Z, Async, S>
} = dual(2, internal.withTags)

/**
 * The version of the job's values. Entries carry the job's fingerprint (its value schema's
 * encoded structure and this version), and an entry of another fingerprint is a miss
 * (counted in `cacheback_fingerprint_misses`): a deploy that changes the value's shape
 * never serves the old shape. A value schema tells shapes apart by itself; a job without
 * one has only its version, so bump it when its values change shape. Throws at once for a
 * negative or fractional version.
 *
 * @since 0.2.0
 * @category combinators
 */
export const withVersion: {
  (version: number): <J extends Job.All>(self: J) => J
  <J extends Job.All>(self: J, version: number): J
} = dual(2, internal.withVersion)

/**
 * Reads and writes through another `CacheStore` service than the default (cacheback's
 * `cache_alias`): `class Sessions extends Context.Tag("Sessions")<Sessions, CacheStore.Service>() {}`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withStore: {
  <S2>(store: Tag<S2>): <I, A, E, R, Out, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>
  ) => Job<I, A, E, R, Out, Z, Async, S2>
  <I, A, E, R, Out, Z, Async extends boolean, S, S2>(
    self: Job<I, A, E, R, Out, Z, Async, S>,
    store: Tag<S2>
  ): Job<I, A, E, R, Out, Z, Async, S2>
} = dual(2, internal.withStore)

/**
 * How refreshes are queued (cacheback's `task_options`): queue name, priority, attempts
 * (counting the first; default 3) and backoff between them (default exponential from 1 s).
 *
 * @since 0.1.0
 * @category combinators
 */
export const withQueueOptions: {
  (options: QueueOptionsInput): <J extends Job.All>(self: J) => J
  <J extends Job.All>(self: J, options: QueueOptionsInput): J
} = dual(2, internal.withQueueOptions)

/**
 * @since 0.1.0
 * @category models
 */
export interface QueueOptionsInput {
  readonly queue?: string
  readonly priority?: number
  readonly attempts?: number
  readonly backoff?: { readonly type: "fixed" | "exponential"; readonly delay: Duration.DurationInput }
}

/**
 * A span around every operation of this job (`cacheback.get` with job, key and status).
 * Off by default: a span per read costs many times a memory hit (BENCHMARKS.md).
 * `layerSpans` turns them on for every job.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withSpans: {
  (enabled?: boolean): <J extends Job.All>(self: J) => J
  <J extends Job.All>(self: J, enabled?: boolean): J
} = dual((args) => isJob(args[0]), internal.withSpans)

/**
 * Where concurrent synchronous fetches of one key share one fetch (DESIGN.md §3.1). `"cluster"`
 * (the default): across every process on a store that can coordinate them (`RedisCacheStore`
 * takes a lock per key; the others wait for its value), and in each process on any other
 * store or while the store is unreachable. `"process"`: in each process only, with no lock
 * round trip before a fetch.
 *
 * @since 0.2.0
 * @category combinators
 */
export const withSingleFlight: {
  (scope: "process" | "cluster"): <J extends Job.All>(self: J) => J
  <J extends Job.All>(self: J, scope: "process" | "cluster"): J
} = dual(2, internal.withSingleFlight)

/**
 * Spans for every job's reads in the programs this layer is provided to.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSpans = (enabled: boolean = true): Layer.Layer<never> => Layer.locallyScoped(internal.currentSpans, enabled)

/**
 * cacheback's `@cacheback` decorator: a function with `get`'s behaviour, and its `.job`.
 * Options set the combinators that take one value.
 *
 * @since 0.1.0
 * @category constructors
 */
export const cached: Cached.Constructor = ((first: unknown, fetch?: Job.Any["fetch"], options: CachedOptions = {}) => {
  // The overloads above are the types; a job built from a function is typed by them.
  if (isJob(first)) return toFunction(first)
  let job: Job.Any = make({ name: first as string, fetch: fetch! })
  if (options.lifetime !== undefined) job = withLifetime(job, options.lifetime)
  if (options.refreshTimeout !== undefined) job = withRefreshTimeout(job, options.refreshTimeout)
  if (options.cacheTtl !== undefined) job = withCacheTtl(job, options.cacheTtl)
  if (options.syncOnMiss !== undefined) job = withSyncOnMiss(job, options.syncOnMiss)
  if (options.syncAfter !== undefined) job = withStaleRefresh(job, { syncAfter: options.syncAfter })
  if (options.fetchTimeout !== undefined) job = withFetchTimeout(job, options.fetchTimeout)
  if (options.spans !== undefined) job = withSpans(job, options.spans)
  if (options.singleFlight !== undefined) job = withSingleFlight(job, options.singleFlight)
  return toFunction(job)
}) as Cached.Constructor


/**
 * @since 0.1.0
 * @category models
 */
export interface CachedOptions {
  readonly lifetime?: Duration.DurationInput
  readonly refreshTimeout?: Duration.DurationInput
  readonly cacheTtl?: Duration.DurationInput
  readonly syncOnMiss?: boolean
  readonly syncAfter?: Duration.DurationInput
  /** `Job.withFetchTimeout` (since 0.2.0). */
  readonly fetchTimeout?: Duration.DurationInput
  readonly spans?: boolean
  /** `Job.withSingleFlight` (since 0.2.0). */
  readonly singleFlight?: "process" | "cluster"
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Cached<I, A, E = never, R = never, Out = A, Z = undefined, Async extends boolean = false, S = CacheStore> {
  (...input: InputArgs<I>): Effect.Effect<Out, E | FetchTimeout | KeyError, R | S | RefreshQueue>
  readonly job: Job<I, A, E, R, Out, Z, Async, S>
}

/**
 * @since 0.1.0
 * @category models
 */
export declare namespace Cached {
  /**
   * The forms of `Job.cached`: of a job, or of a name, a fetch and options.
   *
   * @since 0.1.0
   * @category models
   */
  export type Constructor = {
    <I, A, E, R, Out, Z, Async extends boolean, S>(
      job: Job<I, A, E, R, Out, Z, Async, S>
    ): Cached<I, A, E, R, Out, Z, Async, S>
    <I, A, E, R, const O extends CachedOptions = {}>(
      name: string,
      fetch: (input: I) => Effect.Effect<A, E, R>,
      options?: O
    ): O extends { readonly syncOnMiss?: true | undefined } ? Cached<I, A, E, R>
      : O extends { readonly syncOnMiss: false } ? Cached<I, A, E, R, A | undefined, undefined, true>
      : Cached<I, A, E, R, A | undefined, undefined, boolean>
  }
}

const toFunction = <I, A, E, R, Out, Z, Async extends boolean, S>(
  job: Job<I, A, E, R, Out, Z, Async, S>
): Cached<I, A, E, R, Out, Z, Async, S> =>
  Object.assign(
    // What `get` answers is the job's `Out`, as `get`'s signature says: the engine knows it as `unknown`.
    (...input: InputArgs<I>) => read.get(job, input[0] as I) as Effect.Effect<Out, E | FetchTimeout | KeyError, R | S | RefreshQueue>,
    { job }
  )

// -----------------------------------------------------------------------------
// Operations
// -----------------------------------------------------------------------------

/**
 * The value of `input`, using the cache where possible (DESIGN.md §1; `Policy.decide` says
 * how). Faults of the store or the queue never fail it: a failed read is a miss, a failed
 * write is logged, after a failed enqueue the refresh runs in the process, in the
 * background. It fails only with the errors of a synchronous fetch, and with `KeyError` for
 * an input that cannot be keyed.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { CacheStore, Job, RefreshQueue } from "effect-cacheback"
 *
 * let fetches = 0
 * const greeting = Job.make({
 *   name: "greeting",
 *   fetch: (name: string) => Effect.sync(() => `hello, ${name} (fetch ${++fetches})`)
 * })
 *
 * const program = Effect.gen(function*() {
 *   const first = yield* Job.get(greeting, "alan") // a miss: fetched while waiting
 *   const again = yield* Job.get(greeting, "alan") // a hit: from the cache
 *   assert.deepStrictEqual([first, again], ["hello, alan (fetch 1)", "hello, alan (fetch 1)"])
 * })
 *
 * Effect.runPromise(program.pipe(Effect.provide(Layer.merge(
 *   CacheStore.layerMemory({ capacity: 1_000 }),
 *   RefreshQueue.layerMemory({ concurrency: 4 })
 * ))))
 * ```
 *
 * @since 0.1.0
 * @category operations
 */
export const get: {
  <J extends Job.All>(self: J, ...input: InputArgs<Input<J>>): Effect.Effect<Out<J>, Error<J> | FetchTimeout | KeyError, Requirements<J>>
  <I>(input: I): <J extends Job.All>(self: J & Job.Taking<I>) => Effect.Effect<Out<J>, Error<J> | FetchTimeout | KeyError, Requirements<J>>
} = dual((args) => isJob(args[0]), read.get)

/**
 * `get`, also telling how the value was found: cacheback's `process_result` arguments. The
 * value is the one before `withProcessResult`.
 *
 * @since 0.1.0
 * @category operations
 */
export const lookup: {
  <J extends Job.All>(self: J, ...input: InputArgs<Input<J>>): Effect.Effect<Lookup<Job.Raw<Value<J>, Parts<J>["Z"], Parts<J>["Async"]>, Error<J> | FetchTimeout>, Error<J> | FetchTimeout | KeyError, Requirements<J>>
  <I>(input: I): <J extends Job.All>(self: J & Job.Taking<I>) => Effect.Effect<Lookup<Job.Raw<Value<J>, Parts<J>["Z"], Parts<J>["Async"]>, Error<J> | FetchTimeout>, Error<J> | FetchTimeout | KeyError, Requirements<J>>
} = dual((args) => isJob(args[0]), read.lookup)

/**
 * Values for many inputs, in order, reading the store once (`MGET` on Redis). Misses and
 * stale entries are handled as `get` does, concurrently; inputs that share a key share a
 * fetch.
 *
 * @since 0.1.0
 * @category operations
 */
export const getMany: {
  <J extends Job.All>(self: J, inputs: Iterable<Input<J>>): Effect.Effect<Array<Out<J>>, Error<J> | FetchTimeout | KeyError, Requirements<J>>
  <I>(inputs: Iterable<I>): <J extends Job.All>(self: J & Job.Taking<I>) => Effect.Effect<Array<Out<J>>, Error<J> | FetchTimeout | KeyError, Requirements<J>>
} = dual(2, read.getMany)

/**
 * Fetches now, stores the value with the job's expiry and returns it (cacheback's
 * `refresh()`). A failed store write is logged; the value is still returned.
 *
 * @since 0.1.0
 * @category operations
 */
export const refresh: {
  <J extends Job.All>(self: J, ...input: InputArgs<Input<J>>): Effect.Effect<Value<J>, Error<J> | FetchTimeout | KeyError, Context<J> | Store<J>>
  <I>(input: I): <J extends Job.All>(self: J & Job.Taking<I>) => Effect.Effect<Value<J>, Error<J> | FetchTimeout | KeyError, Context<J> | Store<J>>
} = dual((args) => isJob(args[0]), operations.refresh)

/**
 * Enqueues a refresh (cacheback's `async_refresh()`); when the queue refuses it, refreshes
 * synchronously instead, failing with that fetch's error.
 *
 * @since 0.1.0
 * @category operations
 */
export const asyncRefresh: {
  <J extends Job.All>(self: J, ...input: InputArgs<Input<J>>): Effect.Effect<void, Error<J> | FetchTimeout | KeyError, Requirements<J>>
  <I>(input: I): <J extends Job.All>(self: J & Job.Taking<I>) => Effect.Effect<void, Error<J> | FetchTimeout | KeyError, Requirements<J>>
} = dual((args) => isJob(args[0]), operations.asyncRefresh)

/**
 * When an entry exists: keeps its value but lets it expire at now + refresh timeout, and
 * enqueues a refresh (cacheback's `invalidate()`). Does nothing on a miss.
 *
 * @since 0.1.0
 * @category operations
 */
export const invalidate: {
  <J extends Job.All>(self: J, ...input: InputArgs<Input<J>>): Effect.Effect<void, Error<J> | FetchTimeout | KeyError | StoreError | CodecError, Requirements<J>>
  <I>(input: I): <J extends Job.All>(self: J & Job.Taking<I>) => Effect.Effect<void, Error<J> | FetchTimeout | KeyError | StoreError | CodecError, Requirements<J>>
} = dual((args) => isJob(args[0]), operations.invalidate)

export {
  /**
   * Removes the entry (cacheback's `delete()`).
   *
   * @since 0.1.0
   * @category operations
   */
  delete_ as delete
}

const delete_: {
  <J extends Job.All>(self: J, ...input: InputArgs<Input<J>>): Effect.Effect<void, KeyError | StoreError, Store<J>>
  <I>(input: I): <J extends Job.All>(self: J & Job.Taking<I>) => Effect.Effect<void, KeyError | StoreError, Store<J>>
} = dual((args) => isJob(args[0]), operations.delete_)

/**
 * Stores `value` for `input` as a fetch would: fresh for the job's lifetime (cacheback's
 * `set()`), with its tags' current tokens for a job `withTags`. Fails with `CodecError` when
 * a store that leaves the process cannot encode it.
 *
 * @since 0.1.0
 * @category operations
 */
export const set: {
  <J extends Job.All>(self: J, input: Input<J>, value: Value<J>): Effect.Effect<void, KeyError | StoreError | CodecError, Store<J>>
  <I, A>(input: I, value: A): <E, R, Out, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>
  ) => Effect.Effect<void, KeyError | StoreError | CodecError, S>
} = dual(3, operations.set)

/**
 * The entry as stored, with no decision and no refresh (cacheback's `raw_get()`).
 *
 * @since 0.1.0
 * @category operations
 */
export const rawGet: {
  <J extends Job.All>(self: J, ...input: InputArgs<Input<J>>): Effect.Effect<Option.Option<Entry.Entry<Value<J>>>, KeyError | StoreError, Store<J>>
  <I>(input: I): <J extends Job.All>(self: J & Job.Taking<I>) => Effect.Effect<Option.Option<Entry.Entry<Value<J>>>, KeyError | StoreError, Store<J>>
} = dual((args) => isJob(args[0]), operations.rawGet)

/**
 * Invalidates `tags` on the job's store: every entry tagged with one of them is stale from
 * now on (served per the job's policy, and refreshed). Fails with `StoreError` when the store
 * cannot (a store without tags, or one that does not answer).
 *
 * @since 0.2.0
 * @category operations
 */
export const invalidateTags: {
  (tags: ReadonlyArray<string>): <J extends Job.All>(self: J) => Effect.Effect<void, StoreError, Store<J>>
  <J extends Job.All>(self: J, tags: ReadonlyArray<string>): Effect.Effect<void, StoreError, Store<J>>
} = dual(2, operations.invalidateTags)

/**
 * One attempt at a refresh: fetch, store, count. What a queue runs for a task (a worker, or
 * an in-process queue), retrying it per the job's queue options: it fails when the fetch
 * fails, when the value cannot be stored (so that a lost write is retried too) and with a
 * `KeyError` when the value's tags are not strings (`withTags`). With `policy` (a task's:
 * its producer's lifetime and cache TTL), the value is stored with those.
 *
 * @since 0.1.0
 * @category operations
 */
export const refreshTask: <I, A, E, R, S>(
  self: Job<I, A, E, R, unknown, unknown, boolean, S>,
  input: I,
  key: string,
  policy?: TaskPolicy
) => Effect.Effect<A, E | FetchTimeout | KeyError | StoreError | CodecError, R | S> = operations.refreshTask

/**
 * A job's metrics: its counters (`cacheback_hits`, `cacheback_misses`, …) and its fetch
 * durations (`cacheback_fetch_duration_ms`, by where the fetch ran), all tagged
 * `job=<name>`.
 *
 * @since 0.2.0
 * @category observability
 */
export type JobMetrics = Metrics.JobMetrics

/**
 * The job's counters (`cacheback_hits`, `cacheback_misses`, …, tagged `job=<name>`), for
 * `Metric.value` and exporters.
 *
 * @since 0.1.0
 * @category observability
 */
export const metrics: (self: Job.Any) => JobMetrics = operations.metrics

type InputArgs<I> = [I] extends [void] ? [input?: I] : [input: I]

/**
 * What a schema of type `T` can encode: values assignable to `T` (a job whose fetch returns
 * `string[]` takes a schema of `ReadonlyArray<string>`); anything when no schema is given.
 */
type Encodable<T> = [T] extends [never] ? unknown : T

type Leaf = string | number | boolean | bigint | symbol | null | undefined | Date | Function

/**
 * The fields of `T`, at any depth, that the schema type `S` does not have: an input schema
 * drops them (a `KeyError` at run time), so an input type with any does not compile.
 */
type ExcessOf<T, S> = T extends Leaf ? never
  : T extends ReadonlyArray<infer Item> ? ExcessOf<Item, S extends ReadonlyArray<infer Kept> ? Kept : never>
  : T extends object ? ExcessFields<T, S extends unknown ? (T extends S ? S : never) : never>
  : never

type ExcessFields<T, S> = [S] extends [never] ? never : {
  [K in keyof T]-?: K extends keyof S ? ExcessOf<T[K], S[K]> : K
}[keyof T]

/** `unknown` when the input type has no field its schema lacks; else a type naming them, which no job is. */
type InputFits<I, I2> = [I2] extends [never] ? unknown
  : (<T>() => T extends I ? 1 : 2) extends (<T>() => T extends I2 ? 1 : 2) ? unknown
  : Fits<I, I2>

type Fits<I, I2> = [ExcessOf<I, I2>] extends [never] ? unknown
  : { readonly "the input type has fields its input schema lacks": ExcessOf<I, I2> }

/** A combinator that keeps every type of the job it refines. */
type Refine<I> = <A, E, R, Out, Z, Async extends boolean, S>(
  self: Job<I, A, E, R, Out, Z, Async, S>
) => Job<I, A, E, R, Out, Z, Async, S>
