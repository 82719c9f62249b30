/**
 * Where entries live. A service, so that a program chooses its backend with a
 * layer: in-process LRU (the default), `@effect/platform`'s `KeyValueStore` (on disk with
 * its file-system layer), or Redis (`effect-cacheback/redis`).
 *
 * @since 0.1.0
 */
import * as KeyValueStore from "@effect/platform/KeyValueStore"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import type * as Option from "effect/Option"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Scope from "effect/Scope"
import type * as Entry from "./Entry.js"
import { type CodecError, StoreError } from "./Errors.js"
import type { SchemaOf } from "./internal/codec.js"
import { tagList } from "./internal/describe.js"
import * as Internal from "./internal/engine.js"
import * as KeyValueBackend from "./internal/keyValueStore.js"
import * as MemoryStore from "./internal/memoryStore.js"
import { decodeErrorsFor } from "./internal/metrics.js"
import { integer, positiveMillis, wellFormed } from "./internal/options.js"

/**
 * The shape of a cache backend: what a store of yours implements, and `make` turns into a
 * `Service`. `schema` is the job's value schema (or `undefined`): a
 * backend that keeps entries outside the process encodes values through it, an in-process
 * one ignores it.
 *
 * A read never fails for an entry that does not decode: that is a miss, logged and counted.
 *
 * @since 0.1.0
 * @category models
 */
export interface Backend {
  readonly get: <A>(
    key: string,
    schema: SchemaOf<A> | undefined
  ) => Effect.Effect<Option.Option<Entry.Entry<A>>, StoreError>
  /** One round trip where the backend allows (Redis `MGET`). */
  readonly getMany: <A>(
    keys: ReadonlyArray<string>,
    schema: SchemaOf<A> | undefined
  ) => Effect.Effect<ReadonlyArray<Option.Option<Entry.Entry<A>>>, StoreError>
  /** Stores `entry`; the backend forgets it after `ttl` (the job's cache TTL). */
  readonly set: <A>(
    key: string,
    entry: Entry.Entry<A>,
    ttl: Duration.Duration,
    schema: SchemaOf<A> | undefined
  ) => Effect.Effect<void, StoreError | CodecError>
  readonly delete: (key: string) => Effect.Effect<void, StoreError>
  /**
   * A synchronous read for backends that can answer without I/O, so that a memory hit costs
   * no extra effect step. `now` is the caller's `Clock` time. `undefined` when this key
   * cannot be answered at once (a near cache in front of Redis that does not hold it): the
   * read then goes through `get`.
   */
  readonly unsafeGet?: <A>(key: string, now: number) => Option.Option<Entry.Entry<A>> | undefined
  /**
   * A write that stores `entry` only while the key's token is still `expected`
   * (DESIGN.md §3.2): the token of what is stored (`Entry.tokenOf`; `""` when nothing is, or
   * an entry without one), checked and written in one step. A fetch stores over the token it
   * read when it began, a write-back over the token of the value it read: neither lands over
   * a write made since. Answers whether it wrote. A store without it has every write made
   * with `set`, and loses that guarantee.
   *
   * @since 0.2.0
   */
  readonly compareAndSet?: <A>(
    key: string,
    entry: Entry.Entry<A>,
    ttl: Duration.Duration,
    schema: SchemaOf<A> | undefined,
    expected: string
) => Effect.Effect<boolean, StoreError | CodecError>
  /**
   * One fetch of a key across the processes that share the store (DESIGN.md §3.1): the engine asks
   * before a synchronous fetch of a job whose single flight is `"cluster"`. A store without
   * it single-flights in each process only.
   *
   * @since 0.2.0
   */
  readonly claim?: <A>(key: string, schema: SchemaOf<A> | undefined, options: ClaimOptions<A>) => Effect.Effect<Claim<A>>
  /**
   * Where the entries live, for a store that other processes share (`redis:<prefix>` for
   * the Redis store): a task carries its producer's, and a worker whose store for the job
   * has another refuses the task rather than refresh entries nobody reads.
   */
  readonly identity?: string
  /**
   * Tags (DESIGN.md §8.3), for jobs with `Job.withTags`: each tag is one key of the store holding
   * a random token, replaced at every invalidation. A store without them cannot invalidate
   * by tag: its tagged entries read as stale, and `invalidateTags` fails.
   */
  readonly tags?: Tags
}

/**
 * A cache store as the engine reads it: a backend and its engine state in one runtime.
 * The store layers build it; for a backend of yours, `make` or `layer`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service extends Backend {
  /** @since 0.3.0 */
  readonly engine: Engine
}

/**
 * The tags of a store. Tag keys are kept apart from entries and never evicted before them
 * (a tag that is forgotten only makes its entries stale).
 *
 * @since 0.2.0
 * @category models
 */
export interface Tags {
  /** The current token of each tag, in order; `create` gives a tag without one a new token. */
  readonly tokens: (tags: ReadonlyArray<string>, create: boolean) => Effect.Effect<ReadonlyArray<string | undefined>, StoreError>
  /** `tokens(tags, false)` at once, for stores that keep tags in the process: a tagged hit then takes no effect step. */
  readonly unsafeTokens?: (tags: ReadonlyArray<string>) => ReadonlyArray<string | undefined>
  /** Changes at every invalidation: a fetch that saw it change has its tags invalidated. */
  readonly generation: Effect.Effect<string, StoreError>
  /** Gives each tag a new token: every entry that recorded the old one is stale. O(1) per tag. */
  readonly invalidate: (tags: ReadonlyArray<string>) => Effect.Effect<void, StoreError>
}

/**
 * What a synchronous fetch of a key asks of `Service.claim`.
 *
 * @since 0.2.0
 * @category models
 */
export interface ClaimOptions<A> {
  /**
   * Whether a stored entry answers the caller instead of a fetch: a value of its job, fetched
   * since it asked.
   */
  readonly accept: (entry: Entry.Entry<A>) => entry is Entry.Value<A>
  /** `Clock` time (epoch ms) past which the caller waits no longer. */
  readonly until: number
  /**
   * `Clock` time (epoch ms) when the caller's read began: the claim's own store commands
   * end within one store timeout of it (the read's lookup spent part of it), so that a read
   * waits for the store at most once.
   */
  readonly since: number
}

/**
 * The answer of `Service.claim`.
 *
 * - `Found`: another process stored an accepted value (while this one waited, or a moment
 *   before it took the lock): answer it, fetch nothing.
 * - `Won`: this process fetches. `release(true)` once the value is stored, so that the
 *   processes waiting for it read it; `release(false)` when the fetch failed or its value
 *   could not be stored, which sends them to fetch themselves. Releasing twice does nothing.
 * - `Alone`: fetch without coordination: the store cannot coordinate now (unreachable), the
 *   fetch that was waited for ended without a value, or `until` passed.
 *
 * @since 0.2.0
 * @category models
 */
export type Claim<A> =
  | { readonly _tag: "Found"; readonly entry: Entry.Value<A> }
  | { readonly _tag: "Won"; readonly release: (stored: boolean) => Effect.Effect<void> }
  | { readonly _tag: "Alone" }

/**
 * The counter of entries that did not decode in the named store (`"keyValueStore"`,
 * `"redis"`) and counted as misses: `cacheback_decode_errors` tagged `store=<name>`.
 *
 * @since 0.1.0
 * @category observability
 */
export const decodeErrors = (store: string): Metric.Metric.Counter<number> => decodeErrorsFor(store)

/**
 * The default cache store of every job (`Job.withStore` picks another tag).
 *
 * @since 0.1.0
 * @category tags
 */
export class CacheStore extends Context.Tag("effect-cacheback/CacheStore")<CacheStore, Service>() {}

/**
 * What a store carries for the engine in one runtime (DESIGN.md, "State per runtime"): the
 * budget of background work, single flights, early-refresh requests and the throttle of
 * fault warnings. Opaque; built with the store by `make` (and by every store layer), in the
 * layer's scope.
 *
 * @since 0.3.0
 * @category models
 */
export type Engine = Internal.Engine

/**
 * The sizes of a store's engine state (`maxBackground`, `maxEarlyRequests`), options of
 * every store layer.
 *
 * @since 0.3.0
 * @category models
 */
export type EngineOptions = Internal.EngineOptions

/**
 * A store service from a backend of yours: the backend with its engine state, in the scope
 * of the layer that makes it (`Layer.scoped(Sessions, CacheStore.make(backend))`). Disposing
 * that scope interrupts the store's background work and shared fetches.
 *
 * @since 0.3.0
 * @category constructors
 */
export const make = (backend: Backend, options?: EngineOptions): Effect.Effect<Service, never, Scope.Scope> =>
  Internal.attach(backend, Internal.sizes("CacheStore.make", options))

/**
 * A backend of yours as the default store (`make` as a layer); the backend may be an effect
 * that builds it.
 *
 * @since 0.3.0
 * @category layers
 */
export const layer = <E = never, R = never>(
  backend: Backend | Effect.Effect<Backend, E, R>,
  options?: EngineOptions
): Layer.Layer<CacheStore, E, Exclude<R, Scope.Scope>> =>
  Layer.scoped(
    CacheStore,
    Effect.flatMap(Effect.isEffect(backend) ? backend : Effect.succeed(backend), (made) => make(made, options))
  )

/**
 * An in-process store holding at most `capacity` entries, each forgotten after its TTL by
 * the caller's `Clock` (so `TestClock` drives it). Eviction approximates LRU (CLOCK: a read
 * marks its entry, eviction gives marked entries a second chance).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory = (options: MemoryOptions): Effect.Effect<Service, never, Scope.Scope> => {
  const capacity = integer("CacheStore.layerMemory", "capacity", options.capacity, 1)
  const tagCapacity = integer("CacheStore.layerMemory", "tagCapacity", options.tagCapacity ?? 100_000, 1)
  const sizes = Internal.sizes("CacheStore.layerMemory", options)
  return Effect.suspend(() => Internal.attach(MemoryStore.make(capacity, tagCapacity), sizes))
}

/**
 * @since 0.3.0
 * @category models
 */
export interface MemoryOptions extends EngineOptions {
  readonly capacity: number
  /**
   * The most tags whose tokens the store keeps, apart from the entries (the oldest given is
   * forgotten first, which makes its entries stale). An entry with more tags than this is
   * stale at every read, and a warning says so. Default 100,000.
   */
  readonly tagCapacity?: number
}

/**
 * The in-process store as a layer: the default backend.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (options: MemoryOptions): Layer.Layer<CacheStore> => Layer.scoped(CacheStore, makeMemory(options))

/**
 * A store over `@effect/platform`'s `KeyValueStore` in context: with its `layerFileSystem`
 * the cache survives restarts with no server. Each record holds the encoded entry and the
 * time the backend forgets it; a record past that time reads as a miss and is removed.
 * There is no bound on the number of records.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeKeyValueStore = (
  options?: KeyValueStoreOptions
): Effect.Effect<Service, never, KeyValueStore.KeyValueStore | Scope.Scope> => {
  const sizes = Internal.sizes("CacheStore.layerKeyValueStore", options)
  const timeout = positiveMillis("CacheStore.layerKeyValueStore timeout", options?.timeout ?? "1 second")
  // Writes that outlive their caller's wait run in a scope closed after the engine's
  // shutdown (finalizers run last first), so that shutdown waits for them as for the rest.
  return Effect.flatMap(
    Effect.zip(KeyValueStore.KeyValueStore, Effect.flatMap(Effect.scope, (scope) => Scope.fork(scope, ExecutionStrategy.sequential))),
    ([kv, writes]) => Internal.attach(KeyValueBackend.make(kv, timeout, writes), sizes)
  )
}

/**
 * @since 0.3.0
 * @category models
 */
export interface KeyValueStoreOptions extends EngineOptions {
  /**
   * A call to the `KeyValueStore` that takes longer fails with a `StoreError` (a read
   * becomes a miss, a write is logged), as a Redis command past its `commandTimeout` does.
   * Default 1 second.
   */
  readonly timeout?: Duration.DurationInput
}

/**
 * `makeKeyValueStore` as a layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerKeyValueStore = (options?: KeyValueStoreOptions): Layer.Layer<CacheStore, never, KeyValueStore.KeyValueStore> =>
  Layer.scoped(CacheStore, makeKeyValueStore(options))

/**
 * Invalidates `tags` on the default store: every entry tagged with one of them is stale from
 * now on (served per its job's policy, and refreshed). O(1) whatever the number of tagged
 * entries. Fails with `StoreError` when the store has no tags or does not answer.
 *
 * @since 0.2.0
 * @category tags
 */
export const invalidateTags = (tags: ReadonlyArray<string>): Effect.Effect<void, StoreError, CacheStore> =>
  Effect.flatMap(CacheStore, (store) => invalidateTagsOf(store, tags))

/**
 * `invalidateTags` on a given store (of another tag: `Job.invalidateTags` reads a job's).
 *
 * @since 0.2.0
 * @category tags
 */
export const invalidateTagsOf = (store: Service, tags: ReadonlyArray<string>): Effect.Effect<void, StoreError> => {
  const refused = (reason: string) =>
    Effect.fail(new StoreError({ operation: "invalidateTags", key: tagList(tags), cause: new Error(reason) }))
  if (store.tags === undefined) {
    return refused("this cache store keeps no tags; use one that does (memory, key-value, Redis) for tagged jobs")
  }
  if (!Array.isArray(tags)) return refused(`expected an array of tag names, got ${typeof tags}`)
  const bad = tags.findIndex((tag) => typeof tag !== "string" || !wellFormed(tag))
  if (bad !== -1) {
    return refused(
      typeof tags[bad] === "string"
        ? `tag ${bad} (${JSON.stringify(tags[bad])}) has a lone surrogate, which UTF-8 cannot tell from another; nothing was invalidated`
        : `tag ${bad} is a ${typeof tags[bad]}, not a string; nothing was invalidated`
    )
  }
  return store.tags.invalidate(tags)
}
