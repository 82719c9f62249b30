/**
 * A job is a plain record of functions: how to fetch a value, how to key it, how long it
 * stays fresh. `Job.make` builds one, combinators return refined copies, and the operations
 * read it. This file reads top to bottom like cacheback's `base.py`: the record, the
 * combinators, the operations (`get` first), then the helpers they share.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import { dual } from "effect/Function"
import { globalValue } from "effect/GlobalValue"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { type Pipeable, pipeArguments } from "effect/Pipeable"
import type * as Schema from "effect/Schema"
import type * as Types from "effect/Types"
import { CacheStore, type Service as StoreService } from "./CacheStore.js"
import * as Entry from "./Entry.js"
import { type CodecError, KeyError, type StoreError } from "./Errors.js"
import * as Durations from "./internal/duration.js"
import * as Metrics from "./internal/metrics.js"
import * as SingleFlight from "./internal/singleFlight.js"
import * as Key from "./Key.js"
import * as Policy from "./Policy.js"
import { type QueueOptions, RefreshQueue, type Task } from "./RefreshQueue.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("effect-cacheback/Job")

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
  readonly empty: (input: I) => Z
  readonly processResult: ((value: unknown, context: ResultContext<I>) => Out) | undefined
  readonly inputSchema: Schema.Schema<I, any, never> | undefined
  readonly valueSchema: Schema.Schema<A, any, never> | undefined
  readonly store: Context.Tag<S, StoreService>
  readonly queueOptions: QueueOptions
  /** A span around every operation of this job (`cacheback.get`), off by default. */
  readonly spans: boolean
}

/**
 * @since 0.1.0
 */
export declare namespace Job {
  /**
   * @since 0.1.0
   */
  export type Any = Job<any, any, any, any, any, any, any, any>
  /**
   * What `get` returns before `withProcessResult`: `A`, or `A | Z` for a job that may
   * answer a miss with its empty value.
   *
   * @since 0.1.0
   */
  export type Raw<A, Z, Async extends boolean> = Async extends true ? A | Z : A
}

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
export interface Lookup<V> {
  readonly value: V
  readonly status: Policy.Status
  readonly syncFetch: boolean | undefined
}

/**
 * @since 0.1.0
 * @category guards
 */
export const isJob = (u: unknown): u is Job.Any => typeof u === "object" && u !== null && TypeId in u

const JobProto = {
  [TypeId]: { _Out: (_: never) => _, _Async: (_: never) => _ },
  pipe() {
    return pipeArguments(this, arguments)
  }
}

const copy = <J extends Job.Any>(self: Job.Any, patch: Partial<Job.Any>): J =>
  Object.assign(Object.create(JobProto), self, patch)

/**
 * A job with cacheback's defaults: lifetime 10 minutes, refresh timeout 60 seconds, cache
 * TTL 30 days, fetch on miss, serve stale values while refreshing, empty value `undefined`.
 * Throws at once when `name` is empty.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <I = void, A = never, E = never, R = never>(options: {
  readonly name: string
  readonly fetch: (input: I) => Effect.Effect<A, E, R>
}): Job<I, A, E, R> => {
  const name = options.name
  if (typeof name !== "string" || name.trim() === "") {
    throw new TypeError(`Job.make: expected a non-empty name, got ${JSON.stringify(name)}`)
  }
  if (typeof options.fetch !== "function") {
    throw new TypeError(`Job.make: expected fetch to be a function (input) => Effect for job "${name}"`)
  }
  const job: Omit<Job<I, A, E, R>, TypeId | "pipe"> = {
    name,
    fetch: options.fetch,
    key: defaultKey(name),
    expiry: constant(defaultLifetime),
    refreshTimeout: constant(defaultRefreshTimeout),
    cacheTtl: constant(defaultCacheTtl),
    fetchOnMiss: () => true,
    fetchOnStale: serveStale,
    empty: () => undefined,
    processResult: undefined,
    inputSchema: undefined,
    valueSchema: undefined,
    store: CacheStore,
    queueOptions: {},
    spans: false
  }
  return Object.assign(Object.create(JobProto), job)
}

const defaultLifetime = Duration.minutes(10)
const defaultRefreshTimeout = Duration.seconds(60)
const defaultCacheTtl = Duration.days(30)
const serveStale: Policy.StaleRule<unknown> = { _tag: "Serve" }
const constant = <A>(a: A) => () => a

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
  <I = any>(f: (input: I) => string): Refine<I>
  <J extends Job.Any>(self: J, f: (input: JobInput<J>) => string): J
} = dual(2, (self: Job.Any, f: (input: unknown) => string) => {
  assertFunction("Job.withKey", f)
  const start = Key.prefix(self.name)
  return copy(self, {
    key: (input) => {
      const key = f(input)
      return typeof key === "string"
        ? Either.right(`${start}:${key}`)
        : Either.left(
          new KeyError({ job: self.name, path: "$", reason: `the withKey function returned ${typeof key}, not a string` })
        )
    }
  })
})

/**
 * The entry goes stale `lifetime` after it is stored (cacheback's `lifetime`; default 10
 * minutes). Throws at once for a negative or non-finite duration.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withLifetime: {
  (lifetime: Duration.DurationInput): <J extends Job.Any>(self: J) => J
  <J extends Job.Any>(self: J, lifetime: Duration.DurationInput): J
} = dual(2, (self: Job.Any, lifetime: Duration.DurationInput) =>
  copy(self, { expiry: constant(Durations.decode("Job.withLifetime", lifetime)) }))

/**
 * A lifetime per input (cacheback's `expiry()`).
 *
 * @since 0.1.0
 * @category combinators
 */
export const withExpiry: {
  <I = any>(f: (input: I) => Duration.DurationInput): Refine<I>
  <J extends Job.Any>(self: J, f: (input: JobInput<J>) => Duration.DurationInput): J
} = dual(2, (self: Job.Any, f: (input: unknown) => Duration.DurationInput) => {
  assertFunction("Job.withExpiry", f)
  return copy(self, { expiry: Durations.decodeWith("Job.withExpiry", f) })
})

/**
 * The window in which no new refresh is enqueued for a key (cacheback's `refresh_timeout`
 * and `timeout()`; default 60 seconds): a stale value is written back for this long, and a
 * pending marker lasts this long.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withRefreshTimeout: {
  <I = any>(
    timeout: Duration.DurationInput | ((input: I) => Duration.DurationInput)
  ): Refine<I>
  <J extends Job.Any>(self: J, timeout: Duration.DurationInput | ((input: JobInput<J>) => Duration.DurationInput)): J
} = dual(2, (self: Job.Any, timeout: Duration.DurationInput | ((input: unknown) => Duration.DurationInput)) =>
  copy(self, { refreshTimeout: durationOrFunction("Job.withRefreshTimeout", timeout) }))

/**
 * After `ttl` the backend forgets the entry, and the next read is a real miss (cacheback's
 * `cache_ttl`; default 30 days).
 *
 * @since 0.1.0
 * @category combinators
 */
export const withCacheTtl: {
  <I = any>(
    ttl: Duration.DurationInput | ((input: I) => Duration.DurationInput)
  ): Refine<I>
  <J extends Job.Any>(self: J, ttl: Duration.DurationInput | ((input: JobInput<J>) => Duration.DurationInput)): J
} = dual(2, (self: Job.Any, ttl: Duration.DurationInput | ((input: unknown) => Duration.DurationInput)) =>
  copy(self, { cacheTtl: durationOrFunction("Job.withCacheTtl", ttl) }))

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
  (sync: true): <I, A, E, R, Out extends A | Z, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>
  ) => Job<I, A, E, R, A, Z, false, S>
  <I>(sync: false | ((input: I) => boolean)): <A, E, R, Out extends A | Z, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>
  ) => Job<I, A, E, R, A | Z, Z, true, S>
  <I>(sync: boolean): <A, E, R, Out extends A | Z, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>
  ) => Job<I, A, E, R, A | Z, Z, boolean, S>
  <I, A, E, R, Out extends A | Z, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>,
    sync: true
  ): Job<I, A, E, R, A, Z, false, S>
  <I, A, E, R, Out extends A | Z, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>,
    sync: false | ((input: NoInfer<I>) => boolean)
  ): Job<I, A, E, R, A | Z, Z, true, S>
  <I, A, E, R, Out extends A | Z, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>,
    sync: boolean
  ): Job<I, A, E, R, A | Z, Z, boolean, S>
} = dual(2, (self: Job.Any, sync: boolean | ((input: unknown) => boolean)) => {
  assertUnprocessed("Job.withSyncOnMiss", self)
  if (typeof sync !== "boolean") assertFunction("Job.withSyncOnMiss", sync)
  return copy(self, { fetchOnMiss: typeof sync === "boolean" ? constant(sync) : sync })
})

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
} = dual(2, (self: Job.Any, empty: (input: unknown) => unknown) => {
  assertUnprocessed("Job.withEmpty", self)
  assertFunction("Job.withEmpty", empty)
  return copy(self, { empty })
})

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
  <I = any>(
    rule: { readonly syncAfter: Duration.DurationInput } | ((ages: Policy.Ages, input: I) => boolean)
  ): Refine<I>
  <J extends Job.Any>(
    self: J,
    rule: { readonly syncAfter: Duration.DurationInput } | ((ages: Policy.Ages, input: JobInput<J>) => boolean)
  ): J
} = dual(
  2,
  (self: Job.Any, rule: { readonly syncAfter: Duration.DurationInput } | ((ages: Policy.Ages, input: unknown) => boolean)) => {
    if (typeof rule === "function") return copy(self, { fetchOnStale: { _tag: "When", predicate: rule } })
    if (typeof rule !== "object" || rule === null || !("syncAfter" in rule)) {
      throw new TypeError("Job.withStaleRefresh: expected { syncAfter: duration } or a predicate ({ age, staleFor }, input) => boolean")
    }
    return copy(self, {
      fetchOnStale: { _tag: "SyncAfter", syncAfter: Durations.decode("Job.withStaleRefresh syncAfter", rule.syncAfter) }
    })
  }
)

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
} = dual(2, (self: Job.Any, f: (value: unknown, context: ResultContext<unknown>) => unknown) => {
  assertFunction("Job.withProcessResult", f)
  const previous = self.processResult
  return copy(self, {
    processResult: previous === undefined ? f : (value, context) => f(previous(value, context), context)
  })
})

/**
 * Codecs for entries and tasks that leave the process: `value` for the Redis and key-value
 * stores, `input` for BullMQ tasks. An input schema also keys inputs that are not plain
 * data (class instances) by their encoded form. A schema must accept every value of the
 * job's type; its type may be wider (readonly arrays for mutable ones).
 *
 * @since 0.1.0
 * @category combinators
 */
export const withSchema: {
  <I2 = never, V = never>(schemas: {
    readonly input?: Schema.Schema<I2, any, never>
    readonly value?: Schema.Schema<V, any, never>
  }): <I extends Encodable<I2>, A extends Encodable<V>, E, R, Out, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>
  ) => Job<I, A, E, R, Out, Z, Async, S>
  <I extends Encodable<I2>, A extends Encodable<V>, E, R, Out, Z, Async extends boolean, S, I2 = never, V = never>(
    self: Job<I, A, E, R, Out, Z, Async, S>,
    schemas: {
      readonly input?: Schema.Schema<I2, any, never>
      readonly value?: Schema.Schema<V, any, never>
    }
  ): Job<I, A, E, R, Out, Z, Async, S>
} = dual(
  2,
  (self: Job.Any, schemas: {
    readonly input?: Schema.Schema<any, any, never>
    readonly value?: Schema.Schema<any, any, never>
  }) => {
    const input = schemas.input ?? self.inputSchema
    return copy(self, {
      inputSchema: input,
      valueSchema: schemas.value ?? self.valueSchema,
      // A custom key function stays; the default one learns the input schema.
      key: schemas.input !== undefined && isDefaultKey(self) ? defaultKey(self.name, input) : self.key
    })
  }
)

/**
 * Reads and writes through another `CacheStore` service than the default (cacheback's
 * `cache_alias`): `class Sessions extends Context.Tag("Sessions")<Sessions, CacheStore.Service>() {}`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withStore: {
  <S2>(store: Context.Tag<S2, StoreService>): <I, A, E, R, Out, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>
  ) => Job<I, A, E, R, Out, Z, Async, S2>
  <I, A, E, R, Out, Z, Async extends boolean, S, S2>(
    self: Job<I, A, E, R, Out, Z, Async, S>,
    store: Context.Tag<S2, StoreService>
  ): Job<I, A, E, R, Out, Z, Async, S2>
} = dual(2, (self: Job.Any, store: Context.Tag<any, StoreService>) => {
  if (!Context.isTag(store)) throw new TypeError("Job.withStore: expected a Context.Tag of a CacheStore service")
  return copy(self, { store })
})

/**
 * How refreshes are queued (cacheback's `task_options`): queue name, priority, attempts
 * (counting the first; default 3) and backoff between them (default exponential from 1 s).
 *
 * @since 0.1.0
 * @category combinators
 */
export const withQueueOptions: {
  (options: QueueOptionsInput): <J extends Job.Any>(self: J) => J
  <J extends Job.Any>(self: J, options: QueueOptionsInput): J
} = dual(2, (self: Job.Any, options: QueueOptionsInput) => copy(self, { queueOptions: queueOptions(options) }))

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
 * Off by default: a span per read costs ~12× a memory hit. `layerSpans` turns them on for
 * every job.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withSpans: {
  (enabled?: boolean): <J extends Job.Any>(self: J) => J
  <J extends Job.Any>(self: J, enabled?: boolean): J
} = dual((args) => isJob(args[0]), (self: Job.Any, enabled: boolean = true) => copy(self, { spans: enabled }))

/**
 * Spans for every job's reads in the programs this layer is provided to.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSpans = (enabled: boolean = true): Layer.Layer<never> => Layer.locallyScoped(currentSpans, enabled)

const currentSpans = globalValue(Symbol.for("effect-cacheback/currentSpans"), () => FiberRef.unsafeMake(false))

/**
 * cacheback's `@cacheback` decorator: a function with `get`'s behaviour, and its `.job`.
 * Options set the combinators that take one value.
 *
 * @since 0.1.0
 * @category constructors
 */
export const cached: {
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
} = (...args: ReadonlyArray<any>): any => {
  if (isJob(args[0])) return toFunction(args[0])
  const [name, fetch, options = {}] = args as [string, (input: unknown) => Effect.Effect<unknown>, CachedOptions]
  let job: Job.Any = make({ name, fetch })
  if (options.lifetime !== undefined) job = withLifetime(job, options.lifetime)
  if (options.refreshTimeout !== undefined) job = withRefreshTimeout(job, options.refreshTimeout)
  if (options.cacheTtl !== undefined) job = withCacheTtl(job, options.cacheTtl)
  if (options.syncOnMiss !== undefined) job = withSyncOnMiss(job, options.syncOnMiss)
  if (options.syncAfter !== undefined) job = withStaleRefresh(job, { syncAfter: options.syncAfter })
  if (options.spans !== undefined) job = withSpans(job, options.spans)
  return toFunction(job)
}

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
  readonly spans?: boolean
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Cached<I, A, E = never, R = never, Out = A, Z = undefined, Async extends boolean = false, S = CacheStore> {
  (...input: InputArgs<I>): Effect.Effect<Out, E | KeyError, R | S | RefreshQueue>
  readonly job: Job<I, A, E, R, Out, Z, Async, S>
}

const toFunction = (job: Job.Any): Cached<any, any, any, any, any, any, any, any> =>
  Object.assign((input: unknown) => get(job, input), { job })

// -----------------------------------------------------------------------------
// Operations
// -----------------------------------------------------------------------------

/**
 * The value of `input`, using the cache where possible (SPEC §3; `Policy.decide` says
 * how). Faults of the store or the queue never fail it: a failed read is a miss, a failed
 * write is logged, a failed enqueue refreshes synchronously. It fails only with the
 * errors of a synchronous fetch, and with `KeyError` for an input that cannot be keyed.
 *
 * @since 0.1.0
 * @category operations
 */
export const get: {
  <I, A, E, R, Out, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>,
    ...input: InputArgs<I>
  ): Effect.Effect<Out, E | KeyError, R | S | RefreshQueue>
  <I>(input: I): <A, E, R, Out, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>
  ) => Effect.Effect<Out, E | KeyError, R | S | RefreshQueue>
} = dual(
  (args) => isJob(args[0]),
  (self: Job.Any, input: unknown) => read(self, input, self.processResult === undefined ? rawValue : processed)
)

const rawValue = (_job: Job.Any, _input: unknown, value: unknown) => value
const processed = (job: Job.Any, input: unknown, value: unknown, status: Policy.Status, syncFetch: boolean | undefined) =>
  job.processResult!(value, { input, status, syncFetch })

/**
 * `get`, also telling how the value was found: cacheback's `process_result` arguments. The
 * value is the one before `withProcessResult`.
 *
 * @since 0.1.0
 * @category operations
 */
export const lookup: {
  <I, A, E, R, Out, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>,
    ...input: InputArgs<I>
  ): Effect.Effect<Lookup<Job.Raw<A, Z, Async>>, E | KeyError, R | S | RefreshQueue>
  <I>(input: I): <A, E, R, Out, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>
  ) => Effect.Effect<Lookup<Job.Raw<A, Z, Async>>, E | KeyError, R | S | RefreshQueue>
} = dual(
  (args) => isJob(args[0]),
  (self: Job.Any, input: unknown) =>
    read(self, input, (_job, _input, value, status, syncFetch): Lookup<unknown> => ({ value, status, syncFetch }))
)

/**
 * Values for many inputs, in order, reading the store once (`MGET` on Redis). Misses and
 * stale entries are handled as `get` does, concurrently; inputs that share a key share a
 * fetch.
 *
 * @since 0.1.0
 * @category operations
 */
export const getMany: {
  <I, A, E, R, Out, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>,
    inputs: Iterable<I>
  ): Effect.Effect<Array<Out>, E | KeyError, R | S | RefreshQueue>
  <I>(inputs: Iterable<I>): <A, E, R, Out, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>
  ) => Effect.Effect<Array<Out>, E | KeyError, R | S | RefreshQueue>
} = dual(2, (self: Job.Any, inputs: Iterable<unknown>) =>
  Effect.suspend(() => {
    const all = Array.from(inputs)
    const keys: Array<string> = []
    for (const input of all) {
      const key = self.key(input)
      if (Either.isLeft(key)) return Effect.fail(key.left)
      keys.push(key.right)
    }
    const finish = self.processResult === undefined ? rawValue : processed
    return Effect.withFiberRuntime<Array<unknown>, unknown, unknown>((fiber) => {
      if (spansOn(self, fiber)) {
        return Effect.withSpan(getMany(withSpans(self, false), all), "cacheback.getMany", {
          attributes: { "cacheback.job": self.name, "cacheback.keys": keys.length }
        })
      }
      const context = fiber.currentContext
      const store = Context.unsafeGet(context, self.store)
      const clock = Context.unsafeGet(fiber.currentDefaultServices, Clock.Clock)
      return Effect.flatMap(
        readMany(self, store, keys),
        (entries) => {
          // Hits are answered here; only the rest need effects (a fiber each).
          const now = clock.unsafeCurrentTimeMillis()
          const counters = Metrics.forJob(self.name)
          const values: Array<unknown> = new Array(all.length)
          const rest: Array<[number, Policy.Decision<unknown>]> = []
          for (let i = 0; i < all.length; i++) {
            const decision = Policy.decide(entries[i]!, now, self, all[i])
            if (decision._tag === "Hit") {
              Metrics.bump(counters.hits)
              values[i] = finish(self, all[i], decision.value, "hit", undefined)
            } else {
              rest.push([i, decision])
            }
          }
          if (rest.length === 0) return Effect.succeed(values)
          return Effect.as(
            Effect.forEach(
              rest,
              ([i, decision]) =>
                Effect.map(carryOut(self, all[i], keys[i]!, store, context, decision, finish), (value) => {
                  values[i] = value
                }),
              { concurrency: "unbounded", discard: true }
            ),
            values
          )
        }
      )
    })
  }))

/**
 * Fetches now, stores the value with the job's expiry and returns it (cacheback's
 * `refresh()`). A failed store write is logged; the value is still returned.
 *
 * @since 0.1.0
 * @category operations
 */
export const refresh: {
  <I, A, E, R, Out, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>,
    ...input: InputArgs<I>
  ): Effect.Effect<A, E | KeyError, R | S>
  <I>(input: I): <A, E, R, Out, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>
  ) => Effect.Effect<A, E | KeyError, R | S>
} = dual(
  (args) => isJob(args[0]),
  (self: Job.Any, input: unknown) =>
    withKeyAndStore(self, input, "refresh", (key, store) => fetchAndStore(self, input, key, store, "log"))
)

/**
 * Enqueues a refresh (cacheback's `async_refresh()`); when the queue refuses it, refreshes
 * synchronously instead, failing with that fetch's error.
 *
 * @since 0.1.0
 * @category operations
 */
export const asyncRefresh: {
  <I, A, E, R, Out, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>,
    ...input: InputArgs<I>
  ): Effect.Effect<void, E | KeyError, R | S | RefreshQueue>
  <I>(input: I): <A, E, R, Out, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>
  ) => Effect.Effect<void, E | KeyError, R | S | RefreshQueue>
} = dual(
  (args) => isJob(args[0]),
  (self: Job.Any, input: unknown) =>
    withKeyAndStore(self, input, "asyncRefresh", (key, store, context) =>
      Effect.flatMap(enqueue(self, input, key, context), (refused) =>
        Option.isNone(refused) ? Effect.void : syncRefresh(self, input, key, store)))
)

/**
 * When an entry exists: keeps its value but lets it expire at now + refresh timeout, and
 * enqueues a refresh (cacheback's `invalidate()`). Does nothing on a miss.
 *
 * @since 0.1.0
 * @category operations
 */
export const invalidate: {
  <I, A, E, R, Out, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>,
    ...input: InputArgs<I>
  ): Effect.Effect<void, E | KeyError | StoreError | CodecError, R | S | RefreshQueue>
  <I>(input: I): <A, E, R, Out, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>
  ) => Effect.Effect<void, E | KeyError | StoreError | CodecError, R | S | RefreshQueue>
} = dual(
  (args) => isJob(args[0]),
  (self: Job.Any, input: unknown) =>
    withKeyAndStore(self, input, "invalidate", (key, store, context) =>
      Effect.flatMap(Effect.zip(store.get(key, self.valueSchema), Clock.currentTimeMillis), ([entry, now]) => {
        if (Option.isNone(entry)) return Effect.void
        const expiresAt = now + Duration.toMillis(self.refreshTimeout(input))
        const found = entry.value
        const pushed = found._tag === "Value"
          ? Entry.value(found.value, found.fetchedAt, expiresAt)
          : Entry.pending(expiresAt)
        return store.set(key, pushed, self.cacheTtl(input), self.valueSchema).pipe(
          Effect.zipRight(enqueue(self, input, key, context)),
          Effect.flatMap((refused) => Option.isNone(refused) ? Effect.void : syncRefresh(self, input, key, store))
        )
      }))
)

const deleteImpl = (self: Job.Any, input: unknown) =>
  withKeyAndStore(self, input, "delete", (key, store) => store.delete(key))

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
  <I, A, E, R, Out, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>,
    ...input: InputArgs<I>
  ): Effect.Effect<void, KeyError | StoreError, S>
  <I>(input: I): <A, E, R, Out, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>
  ) => Effect.Effect<void, KeyError | StoreError, S>
} = dual((args) => isJob(args[0]), deleteImpl)

/**
 * Stores `value` for `input` as a fetch would: fresh for the job's lifetime (cacheback's
 * `set()`). Fails with `CodecError` when a store that leaves the process cannot encode it.
 *
 * @since 0.1.0
 * @category operations
 */
export const set: {
  <I, A, E, R, Out, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>,
    input: I,
    value: NoInfer<A>
  ): Effect.Effect<void, KeyError | StoreError | CodecError, S>
  <I, A>(input: I, value: A): <E, R, Out, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>
  ) => Effect.Effect<void, KeyError | StoreError | CodecError, S>
} = dual(3, (self: Job.Any, input: unknown, value: unknown) =>
  withKeyAndStore(self, input, "set", (key, store) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      store.set(key, Entry.value(value, now, now + Duration.toMillis(self.expiry(input))), self.cacheTtl(input), self.valueSchema))))

/**
 * The entry as stored, with no decision and no refresh (cacheback's `raw_get()`).
 *
 * @since 0.1.0
 * @category operations
 */
export const rawGet: {
  <I, A, E, R, Out, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>,
    ...input: InputArgs<I>
  ): Effect.Effect<Option.Option<Entry.Entry<A>>, KeyError | StoreError, S>
  <I>(input: I): <A, E, R, Out, Z, Async extends boolean, S>(
    self: Job<I, A, E, R, Out, Z, Async, S>
  ) => Effect.Effect<Option.Option<Entry.Entry<A>>, KeyError | StoreError, S>
} = dual(
  (args) => isJob(args[0]),
  (self: Job.Any, input: unknown) =>
    withKeyAndStore(self, input, "rawGet", (key, store) => store.get(key, self.valueSchema))
)

/**
 * One attempt at a refresh: fetch, store, count. What a queue runs for a task (a worker, or
 * an in-process queue), retrying it per the job's queue options: it fails when the fetch
 * fails and when the value cannot be stored, so that a lost write is retried too.
 *
 * @since 0.1.0
 * @category operations
 */
export const refreshTask = <I, A, E, R, Out, Z, Async extends boolean, S>(
  self: Job<I, A, E, R, Out, Z, Async, S>,
  input: I,
  key: string
): Effect.Effect<A, E | StoreError | CodecError, R | S> =>
  Effect.flatMap(self.store, (store) =>
    Effect.tap(fetchAndStore(self, input, key, store, "fail"), () => Metrics.bump(Metrics.forJob(self.name).refreshed)))

/**
 * The job's counters (`cacheback_hits`, `cacheback_misses`, …, tagged `job=<name>`), for
 * `Metric.value` and exporters.
 *
 * @since 0.1.0
 * @category observability
 */
export const metrics = (self: Job.Any): Metrics.JobMetrics => Metrics.forJob(self.name)

// -----------------------------------------------------------------------------
// How a read runs. The hit path avoids Effect.gen and reads services once from the fiber.
// -----------------------------------------------------------------------------

type Finish = (job: Job.Any, input: unknown, value: unknown, status: Policy.Status, syncFetch: boolean | undefined) => unknown

const read = (job: Job.Any, input: unknown, finish: Finish): Effect.Effect<any, any, any> =>
  Effect.withFiberRuntime((fiber) => {
    const key = job.key(input)
    if (key._tag === "Left") return Effect.fail(key.left)
    const context = fiber.currentContext
    const store = Context.unsafeGet(context, job.store)
    const clock = Context.unsafeGet(fiber.currentDefaultServices, Clock.Clock)
    return spansOn(job, fiber)
      ? traced(job, input, key.right, store, context, clock, finish)
      : lookupIn(job, input, key.right, store, context, clock, finish)
  })

/** Reads the entry (synchronously where the store can) and carries out the decision. */
const lookupIn = (
  job: Job.Any,
  input: unknown,
  key: string,
  store: StoreService,
  context: Context.Context<never>,
  clock: Clock.Clock,
  finish: Finish
): Effect.Effect<unknown, unknown, any> => {
  if (store.unsafeGet !== undefined) {
    const now = clock.unsafeCurrentTimeMillis()
    return act(job, input, key, store, context, now, store.unsafeGet(key, now), finish)
  }
  return Effect.flatMap(
    readOne(job, store, key),
    (entry) => act(job, input, key, store, context, clock.unsafeCurrentTimeMillis(), entry, finish)
  )
}

/** `lookupIn` in a `cacheback.get` span that records the status it found. */
const traced = (
  job: Job.Any,
  input: unknown,
  key: string,
  store: StoreService,
  context: Context.Context<never>,
  clock: Clock.Clock,
  finish: Finish
) => {
  let status: Policy.Status = "miss"
  const noted: Finish = (job, input, value, found, syncFetch) => {
    status = found
    return finish(job, input, value, found, syncFetch)
  }
  return lookupIn(job, input, key, store, context, clock, noted).pipe(
    Effect.tap(() => Effect.annotateCurrentSpan("cacheback.status", status)),
    Effect.withSpan("cacheback.get", { attributes: { "cacheback.job": job.name, "cacheback.key": key } })
  )
}

/** A store read that fails is a miss (logged and counted), never a failed read. */
const readOne = (job: Job.Any, store: StoreService, key: string) =>
  degrade(job, store.get(key, job.valueSchema), Option.none())

const readMany = (job: Job.Any, store: StoreService, keys: ReadonlyArray<string>) =>
  degrade(job, store.getMany(keys, job.valueSchema), keys.map(() => Option.none()))

/** Carries out the decision of `Policy.decide`. */
const act = (
  job: Job.Any,
  input: unknown,
  key: string,
  store: StoreService,
  context: Context.Context<never>,
  now: number,
  entry: Option.Option<Entry.Entry<unknown>>,
  finish: Finish
): Effect.Effect<unknown, unknown, any> =>
  carryOut(job, input, key, store, context, Policy.decide(entry, now, job, input), finish)

const carryOut = (
  job: Job.Any,
  input: unknown,
  key: string,
  store: StoreService,
  context: Context.Context<never>,
  decision: Policy.Decision<unknown>,
  finish: Finish
): Effect.Effect<unknown, unknown, any> => {
  const counters = Metrics.forJob(job.name)
  switch (decision._tag) {
    case "Hit": {
      Metrics.bump(counters.hits)
      return Effect.succeed(finish(job, input, decision.value, "hit", undefined))
    }
    case "Fetch": {
      Metrics.bump(decision.status === "miss" ? counters.misses : counters.staleHits)
      return Effect.map(syncRefresh(job, input, key, store), (value) => finish(job, input, value, decision.status, true))
    }
    case "ServeEmpty": {
      Metrics.bump(counters.misses)
      const empty = job.empty(input)
      if (decision.marker === undefined) return Effect.succeed(finish(job, input, empty, "miss", false))
      return Effect.map(
        writeThenEnqueue(job, input, key, store, context, decision.marker),
        (refreshed) =>
          Option.isSome(refreshed)
            ? finish(job, input, refreshed.value, "miss", true)
            : finish(job, input, empty, "miss", false)
      )
    }
    case "ServeStale": {
      Metrics.bump(counters.staleHits)
      return Effect.map(
        writeThenEnqueue(job, input, key, store, context, decision.entry),
        (refreshed) =>
          Option.isSome(refreshed)
            ? finish(job, input, refreshed.value, "stale", true)
            : finish(job, input, decision.value, "stale", false)
      )
    }
  }
}

/**
 * Stores the marker or the written-back stale entry, then enqueues a refresh. When the
 * queue refuses, refreshes synchronously as cacheback does and returns the new value; if
 * that fails too, the caller gets what it would have had (logged).
 */
const writeThenEnqueue = (
  job: Job.Any,
  input: unknown,
  key: string,
  store: StoreService,
  context: Context.Context<never>,
  entry: Entry.Entry<unknown>
): Effect.Effect<Option.Option<unknown>, never, any> =>
  write(job, store, key, entry, job.cacheTtl(input)).pipe(
    Effect.zipRight(enqueue(job, input, key, context)),
    Effect.flatMap((refused) =>
      Option.isNone(refused)
        ? Effect.succeedNone
        : Effect.asSome(syncRefresh(job, input, key, store)).pipe(
          Effect.catchAllCause((cause) =>
            Cause.isInterruptedOnly(cause) ? Effect.failCause(cause as Cause.Cause<never>) : Effect.as(
              Effect.logWarning(`cacheback: job "${job.name}": the synchronous refresh of "${key}" failed`, cause),
              Option.none()
            )
          )
        )
    )
  )

/**
 * Enqueues a refresh of `key`. Succeeds with `None` when queued (or collapsed into a
 * waiting task), `Some` when the queue refused it and the caller must refresh itself.
 */
const enqueue = (
  job: Job.Any,
  input: unknown,
  key: string,
  context: Context.Context<never>
): Effect.Effect<Option.Option<void>> => {
  const counters = Metrics.forJob(job.name)
  const task: Task = {
    job: job.name,
    key,
    input,
    inputSchema: job.inputSchema,
    options: job.queueOptions,
    // One attempt with the caller's whole context (what `fetch` and the store need), in a
    // scope of its own: the caller's scope (a request's) may be long closed when it runs.
    refresh: Effect.provide(Effect.scoped(refreshTask(job, input, key)), context) as Effect.Effect<void, unknown>
  }
  return Effect.matchEffect(Context.unsafeGet(context, RefreshQueue).enqueue(task), {
    onFailure: (error) =>
      Effect.as(
        Effect.logWarning(`cacheback: ${error.message}; refreshing synchronously`),
        Option.some(undefined)
      ),
    onSuccess: (enqueued) => {
      Metrics.bump(enqueued === "enqueued" ? counters.enqueued : counters.deduplicated)
      return Effect.succeedNone
    }
  })
}

/**
 * A fetch while the caller waits, shared by every concurrent caller of the key in this
 * process (single flight); counted once, by the fetch that runs.
 */
const syncRefresh = (job: Job.Any, input: unknown, key: string, store: StoreService): Effect.Effect<any, any, any> =>
  SingleFlight.run(
    store,
    key,
    Effect.suspend(() => {
      Metrics.bump(Metrics.forJob(job.name).syncFetches)
      return fetchAndStore(job, input, key, store, "log")
    })
  )

/**
 * Fetches (with a `cacheback.fetch` span), stores with the job's expiry, returns the value.
 * A failed write is logged (a read goes on) or fails the effect (a refresh is retried).
 */
const fetchAndStore = (
  job: Job.Any,
  input: unknown,
  key: string,
  store: StoreService,
  onWriteError: "log" | "fail"
): Effect.Effect<any, any, any> =>
  job.fetch(input).pipe(
    Effect.withSpan("cacheback.fetch", { attributes: { "cacheback.job": job.name, "cacheback.key": key } }),
    Effect.flatMap((value) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const entry = Entry.value(value, now, now + Duration.toMillis(job.expiry(input)))
        const stored = onWriteError === "log"
          ? write(job, store, key, entry, job.cacheTtl(input))
          : store.set(key, entry, job.cacheTtl(input), job.valueSchema)
        return Effect.as(stored, value)
      })
    )
  )

/** A failed write (or a store that dies) is logged and counted; the read goes on. */
const write = (
  job: Job.Any,
  store: StoreService,
  key: string,
  entry: Entry.Entry<unknown>,
  ttl: Duration.Duration
): Effect.Effect<void> => degrade(job, store.set(key, entry, ttl, job.valueSchema), undefined)

/**
 * A store fault met by a read: logged and counted, and `fallback` in its place. Defects of
 * a store count too; an interruption goes on being one.
 */
const degrade = <A, B>(job: Job.Any, effect: Effect.Effect<A, StoreError | CodecError>, fallback: B) =>
  Effect.catchAllCause(effect, (cause): Effect.Effect<A | B> => {
    if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause as Cause.Cause<never>)
    const failure = Cause.failureOption(cause)
    const message = Option.isSome(failure) ? failure.value.message : `the cache store died: ${Cause.pretty(cause)}`
    Metrics.bump(Metrics.forJob(job.name).storeErrors)
    return Effect.as(warnThrottled(job.name, message), fallback)
  })

/**
 * During an outage every read meets the fault: one warning per job every 10 seconds says
 * so, with how many were not logged (`cacheback_store_errors` counts them all).
 */
const warnThrottled = (job: string, message: string): Effect.Effect<void> =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => {
    const last = storeWarnings.get(job)
    if (last !== undefined && now >= last.at && now - last.at < 10_000) {
      last.unlogged++
      return Effect.void
    }
    storeWarnings.set(job, { at: now, unlogged: 0 })
    const more = last !== undefined && last.unlogged > 0 ? ` (and ${last.unlogged} more store faults since the last warning)` : ""
    return Effect.logWarning(`cacheback: job "${job}": ${message}${more}`)
  })

const storeWarnings = globalValue(
  Symbol.for("effect-cacheback/storeWarnings"),
  () => new Map<string, { at: number; unlogged: number }>()
)

/** The key and the store of an operation, in a `cacheback.<operation>` span when asked. */
const withKeyAndStore = <A, E, R>(
  job: Job.Any,
  input: unknown,
  operation: string,
  f: (key: string, store: StoreService, context: Context.Context<never>) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | KeyError, R> =>
  Effect.withFiberRuntime((fiber) => {
    const key = job.key(input)
    if (key._tag === "Left") return Effect.fail(key.left)
    const context = fiber.currentContext
    const effect = f(key.right, Context.unsafeGet(context, job.store), context)
    return spansOn(job, fiber)
      ? Effect.withSpan(effect, `cacheback.${operation}`, {
        attributes: { "cacheback.job": job.name, "cacheback.key": key.right }
      })
      : effect
  })

const spansOn = (job: Job.Any, fiber: Fiber.RuntimeFiber<any, any>) => job.spans || fiber.getFiberRef(currentSpans)

// -----------------------------------------------------------------------------
// Helpers
// -----------------------------------------------------------------------------

/**
 * What a schema of type `T` can encode: values assignable to `T` (a job whose fetch returns
 * `string[]` takes a schema of `ReadonlyArray<string>`); anything when no schema is given.
 */
type Encodable<T> = [T] extends [never] ? unknown : T

/** A combinator that keeps every type of the job it refines. */
type Refine<I> = <A, E, R, Out, Z, Async extends boolean, S>(
  self: Job<I, A, E, R, Out, Z, Async, S>
) => Job<I, A, E, R, Out, Z, Async, S>

type InputArgs<I> = [I] extends [void] ? [input?: I] : [input: I]
type JobInput<J> = J extends Job<infer I, any, any, any, any, any, any, any> ? I : never

const durationOrFunction = (
  where: string,
  value: Duration.DurationInput | ((input: unknown) => Duration.DurationInput)
): (input: unknown) => Duration.Duration =>
  typeof value === "function" ? Durations.decodeWith(where, value) : constant(Durations.decode(where, value))

const queueOptions = (options: QueueOptionsInput): QueueOptions => {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`Job.withQueueOptions: expected { queue?, priority?, attempts?, backoff? }, got ${options}`)
  }
  const { attempts, backoff, priority, queue } = options
  if (attempts !== undefined && (!Number.isInteger(attempts) || attempts < 1)) {
    throw new RangeError(`Job.withQueueOptions: expected attempts to be a positive integer, got ${attempts}`)
  }
  if (priority !== undefined && (!Number.isInteger(priority) || priority < 0)) {
    throw new RangeError(`Job.withQueueOptions: expected priority to be a non-negative integer, got ${priority}`)
  }
  if (queue !== undefined && (typeof queue !== "string" || queue.trim() === "")) {
    throw new TypeError(`Job.withQueueOptions: expected queue to be a non-empty string, got ${JSON.stringify(queue)}`)
  }
  if (backoff !== undefined && backoff.type !== "fixed" && backoff.type !== "exponential") {
    throw new TypeError(`Job.withQueueOptions: expected backoff.type "fixed" or "exponential", got ${JSON.stringify(backoff.type)}`)
  }
  return {
    queue,
    priority,
    attempts,
    backoff: backoff === undefined
      ? undefined
      : { type: backoff.type, delay: Duration.toMillis(Durations.decode("Job.withQueueOptions backoff.delay", backoff.delay)) }
  }
}

const defaultKeys = new WeakSet<Function>()
const defaultKey = (name: string, inputSchema?: Schema.Schema<any, any, never>) => {
  const key = Key.derive(name, inputSchema)
  defaultKeys.add(key)
  return key
}
const isDefaultKey = (job: Job.Any) => defaultKeys.has(job.key)

const assertFunction = (where: string, f: unknown) => {
  if (typeof f !== "function") throw new TypeError(`${where}: expected a function, got ${typeof f}`)
}

const assertUnprocessed = (where: string, job: Job.Any) => {
  if (job.processResult !== undefined) {
    throw new TypeError(
      `${where}: job "${job.name}" already has withProcessResult, whose function would meet values it was not written for; apply ${where} first`
    )
  }
}
