/**
 * Where entries live (SPEC §5). A service, so that a program chooses its backend with a
 * layer: in-process LRU (the default), `@effect/platform`'s `KeyValueStore` (on disk with
 * its file-system layer), or Redis (`effect-cacheback/redis`).
 *
 * @since 0.1.0
 */
import { randomUUID } from "node:crypto"
import * as KeyValueStore from "@effect/platform/KeyValueStore"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as Entry from "./Entry.js"
import { CodecError, StoreError } from "./Errors.js"
import * as Codec from "./internal/codec.js"
import type { SchemaOf } from "./internal/codec.js"
import { decodeErrorsFor } from "./internal/metrics.js"
import { integer } from "./internal/options.js"

/**
 * The shape of a cache backend. `schema` is the job's value schema (or `undefined`): a
 * backend that keeps entries outside the process encodes values through it, an in-process
 * one ignores it.
 *
 * A read never fails for an entry that does not decode: that is a miss, logged and counted.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
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
   * A write that never replaces a newer entry (SPEC §9): writes that land after the read that
   * made them answered can land after a newer value was stored. `over` says what `entry` may
   * replace. `"unchanged"`, for the write-back of a stale value and a pending marker: a value
   * only the stored value with its `fetchedAt` (a write-back keeps it), a marker only where
   * no value is stored. `"older"`, for a fetched value: anything but a value fetched later.
   * Answers whether it wrote. Without it the engine uses `set`.
   *
   * @since 0.2.0
   */
  readonly compareAndSet?: <A>(
    key: string,
    entry: Entry.Entry<A>,
    ttl: Duration.Duration,
    schema: SchemaOf<A> | undefined,
    over: "unchanged" | "older"
  ) => Effect.Effect<boolean, StoreError | CodecError>
  /**
   * One fetch of a key across the processes that share the store (SPEC §9): the engine asks
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
   * Tags (SPEC §10), for jobs with `Job.withTags`: each tag is one key of the store holding
   * a random token, replaced at every invalidation. A store without them cannot invalidate
   * by tag: its tagged entries read as stale, and `invalidateTags` fails.
   */
  readonly tags?: Tags
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

interface Slot {
  readonly entry: Option.Option<Entry.Entry<unknown>>
  readonly deadline: number
  used: boolean
}

/**
 * An in-process store holding at most `capacity` entries, each forgotten after its TTL by
 * the caller's `Clock` (so `TestClock` drives it).
 *
 * Eviction approximates LRU with CLOCK (second chance): a read only marks its entry used,
 * and eviction passes over used entries once, clearing the mark, before taking the oldest
 * unused one. Moving an entry to the back of the map on every read, as exact LRU does,
 * costs a large share of a hit (BENCHMARKS.md).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory = (options: { readonly capacity: number }): Effect.Effect<Service> => {
  const capacity = integer("CacheStore.layerMemory", "capacity", options.capacity, 1)
  return Effect.sync(() => {
    // A Map iterates in insertion order: the front holds the entries written longest ago.
    const slots = new Map<string, Slot>()
    // An entry comes back as the job whose key it is stored it: the store does not check it.
    const read = <A>(key: string, now: number): Option.Option<Entry.Entry<A>> => {
      const slot = slots.get(key)
      if (slot === undefined) return Option.none()
      if (now >= slot.deadline) {
        slots.delete(key)
        return Option.none()
      }
      slot.used = true
      return slot.entry as Option.Option<Entry.Entry<A>>
    }
    const evict = () => {
      for (const [key, slot] of slots) {
        slots.delete(key)
        if (!slot.used) return
        slot.used = false
        slots.set(key, slot)
      }
    }
    const withNow = <A>(f: (now: number) => A) =>
      Effect.clockWith((clock) => Effect.sync(() => f(clock.unsafeCurrentTimeMillis())))
    // Tags live apart from the entries, at most `capacity` of them: a tag forgotten only
    // makes its entries stale. In one process a counter is as good as a random token.
    const tags = new Map<string, string>()
    let tokens = 0
    let invalidations = 0
    const give = (name: string) => {
      if (!tags.delete(name) && tags.size >= capacity) tags.delete(tags.keys().next().value!)
      const token = String(++tokens)
      tags.set(name, token)
      return token
    }
    return CacheStore.of({
      tags: {
        tokens: (names, create) => Effect.sync(() => names.map((name) => tags.get(name) ?? (create ? give(name) : undefined))),
        unsafeTokens: (names) => names.map((name) => tags.get(name)),
        generation: Effect.sync(() => String(invalidations)),
        invalidate: (names) =>
          Effect.sync(() => {
            names.forEach(give)
            invalidations++
          })
      },
      unsafeGet: read,
      get: (key) => withNow((now) => read(key, now)),
      getMany: (keys) => withNow((now) => keys.map((key) => read(key, now))),
      set: (key, entry, ttl) =>
        withNow((now) => {
          // Evict before inserting, so that the new entry is not the one evicted.
          if (!slots.delete(key) && slots.size >= capacity) evict()
          slots.set(key, { entry: Option.some(entry), deadline: now + Duration.toMillis(ttl), used: false })
        }),
      // The race is in-process here: a stale read's write-back runs in the background and can
      // land after a refresh stored a newer value.
      compareAndSet: (key, entry, ttl, _, over) =>
        withNow((now) => {
          const stored = read(key, now)
          if (!replaces(entry, stored, over)) return false
          if (!slots.delete(key) && slots.size >= capacity) evict()
          slots.set(key, { entry: Option.some(entry), deadline: now + Duration.toMillis(ttl), used: false })
          return true
        }),
      delete: (key) => Effect.sync(() => void slots.delete(key))
    })
  })
}

/** Whether `entry` may replace what is stored (see `Service.compareAndSet`). */
const replaces = (
  entry: Entry.Entry<unknown>,
  stored: Option.Option<Entry.Entry<unknown>>,
  over: "unchanged" | "older"
): boolean => {
  if (stored._tag === "None" || stored.value._tag === "Pending") return entry._tag === "Pending" || over === "older"
  if (entry._tag === "Pending") return false
  return over === "older" ? stored.value.fetchedAt <= entry.fetchedAt : stored.value.fetchedAt === entry.fetchedAt
}

/**
 * The in-process store as a layer: the default backend.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (options: { readonly capacity: number }): Layer.Layer<CacheStore> =>
  Layer.effect(CacheStore, makeMemory(options))

/**
 * A store over `@effect/platform`'s `KeyValueStore` in context: with its `layerFileSystem`
 * the cache survives restarts with no server. Each record holds the encoded entry and the
 * time the backend forgets it; a record past that time reads as a miss and is removed.
 * There is no bound on the number of records.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeKeyValueStore: Effect.Effect<Service, never, KeyValueStore.KeyValueStore> = Effect.map(
  KeyValueStore.KeyValueStore,
  (kv) => {
    const read = <A>(key: string, schema: SchemaOf<A> | undefined) =>
      Effect.flatMap(
        Effect.zip(
          Effect.mapError(kv.get(key), (cause) => new StoreError({ operation: "get", key, cause })),
          Clock.currentTimeMillis
        ),
        ([text, now]): Effect.Effect<Option.Option<Entry.Entry<A>>, StoreError> => {
          if (Option.isNone(text)) return Effect.succeedNone
          const record = parseRecord(text.value)
          if (record === undefined) return Effect.as(Codec.reportCorrupt("keyValueStore", key, "it is not a record"), Option.none())
          if (now >= record.deadline) {
            return Effect.as(Effect.ignore(kv.remove(key)), Option.none())
          }
          return Either.match(Codec.forSchema(schema).decode(record.entry), {
            onLeft: (reason) => Effect.as(Codec.reportCorrupt("keyValueStore", key, reason), Option.none()),
            onRight: (entry) => Effect.succeed(Option.some(entry))
          })
        }
      )
    const fail = (operation: StoreError["operation"], key: string) => (cause: unknown) => new StoreError({ operation, key, cause })
    // Tag keys start with "%", which job keys never do (job names escape it).
    const tagKey = (name: string) => `%tag:${name}`
    const newToken = Effect.sync(() => randomUUID())
    return CacheStore.of({
      tags: {
        tokens: (names, create) =>
          Effect.forEach(names, (name) =>
            Effect.flatMap(Effect.mapError(kv.get(tagKey(name)), fail("get", tagKey(name))), (token) =>
              Option.isSome(token) || !create
                ? Effect.succeed(Option.getOrUndefined(token))
                : Effect.tap(newToken, (fresh) => Effect.mapError(kv.set(tagKey(name), fresh), fail("set", tagKey(name)))))),
        generation: Effect.map(Effect.mapError(kv.get("%tags"), fail("get", "%tags")), Option.getOrElse(() => "")),
        invalidate: (names) =>
          Effect.zipRight(
            Effect.forEach(names, (name) => Effect.flatMap(newToken, (fresh) => Effect.mapError(kv.set(tagKey(name), fresh), fail("set", tagKey(name)))), { discard: true }),
            Effect.flatMap(newToken, (fresh) => Effect.mapError(kv.set("%tags", fresh), fail("set", "%tags")))
          )
      },
      get: read,
      getMany: (keys, schema) => Effect.forEach(keys, (key) => read(key, schema), { concurrency: "unbounded" }),
      set: (key, entry, ttl, schema) =>
        Either.match(Codec.forSchema(schema).encode(entry), {
          onLeft: (reason) => Effect.fail(new CodecError({ key, direction: "encode", reason })),
          onRight: (json) =>
            Effect.flatMap(Clock.currentTimeMillis, (now) =>
              Effect.mapError(
                kv.set(key, JSON.stringify({ deadline: now + Duration.toMillis(ttl), entry: json })),
                (cause) => new StoreError({ operation: "set", key, cause })
              ))
        }),
      delete: (key) => Effect.mapError(kv.remove(key), (cause) => new StoreError({ operation: "delete", key, cause }))
    })
  }
)

const parseRecord = (text: string): { readonly deadline: number; readonly entry: unknown } | undefined => {
  try {
    const record = JSON.parse(text)
    return typeof record === "object" && record !== null && typeof record.deadline === "number" && "entry" in record
      ? record
      : undefined
  } catch {
    return undefined
  }
}

/**
 * `makeKeyValueStore` as a layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerKeyValueStore: Layer.Layer<CacheStore, never, KeyValueStore.KeyValueStore> = Layer.effect(
  CacheStore,
  makeKeyValueStore
)

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
export const invalidateTagsOf = (store: Service, tags: ReadonlyArray<string>): Effect.Effect<void, StoreError> =>
  store.tags === undefined
    ? Effect.fail(
      new StoreError({
        operation: "invalidateTags",
        key: tags.join(", "),
        cause: new Error("this cache store keeps no tags; use one that does (memory, key-value, Redis) for tagged jobs")
      })
    )
    : store.tags.invalidate(tags)
