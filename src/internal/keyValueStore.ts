/**
 * The machinery of `CacheStore.layerKeyValueStore`: entries in `@effect/platform`'s
 * `KeyValueStore` (on disk with its `layerFileSystem`, so the cache survives restarts with
 * no server). Each record holds the encoded entry and the time the backend forgets it; a
 * record past that time reads as a miss and is removed.
 *
 * Every call is bounded by `timeout` (a stuck file system fails it with a `StoreError`,
 * which the engine degrades as it degrades Redis's). The writes of one key are serialized
 * in this process (a lock per key written, dropped when no write waits for it), so that a
 * compare-and-set's check and write see no other write of this store between them; two
 * processes over one directory are not serialized (DESIGN.md §3.2).
 */
import type * as KeyValueStore from "@effect/platform/KeyValueStore"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type { Backend } from "../CacheStore.js"
import * as Entry from "../Entry.js"
import { CodecError, StoreError } from "../Errors.js"
import * as Codec from "./codec.js"
import type { SchemaOf } from "./codec.js"
import * as Token from "./token.js"

export const make = (kv: KeyValueStore.KeyValueStore, timeout: number): Backend => {
  const fail = (operation: StoreError["operation"], key: string) => (cause: unknown) => new StoreError({ operation, key, cause })
  const bounded = <X>(operation: StoreError["operation"], key: string, call: Effect.Effect<X, unknown>) =>
    call.pipe(
      Effect.timeoutFail({ duration: Duration.millis(timeout), onTimeout: () => new Error(`no answer within ${timeout} ms (timeout)`) }),
      Effect.mapError(fail(operation, key))
    )
  const locks = new Map<string, { readonly semaphore: Effect.Semaphore; waiting: number }>()
  /** `body` alone among the writes of `key` in this store. */
  const serialized = <X, E>(key: string, body: Effect.Effect<X, E>): Effect.Effect<X, E> =>
    Effect.suspend(() => {
      let lock = locks.get(key)
      if (lock === undefined) {
        lock = { semaphore: Effect.unsafeMakeSemaphore(1), waiting: 0 }
        locks.set(key, lock)
      }
      const held = lock
      held.waiting++
      return Effect.ensuring(
        held.semaphore.withPermits(1)(body),
        Effect.sync(() => {
          if (--held.waiting === 0) locks.delete(key)
        })
      )
    })
  const read = <A>(key: string, schema: SchemaOf<A> | undefined) =>
    Effect.flatMap(
      Effect.zip(bounded("get", key, kv.get(key)), Clock.currentTimeMillis),
      ([text, now]): Effect.Effect<Option.Option<Entry.Entry<A>>, StoreError> => {
        if (Option.isNone(text)) return Effect.succeedNone
        const record = parseRecord(text.value)
        if (record === undefined) return Effect.as(Codec.reportCorrupt("keyValueStore", key, "it is not a record"), Option.none())
        if (now >= record.deadline) {
          return Effect.as(Effect.ignore(bounded("delete", key, kv.remove(key))), Option.none())
        }
        return Either.match(Codec.forSchema(schema).decode(record.entry), {
          // Its token is kept, in a tombstone that holds no value: the fetch that follows
          // replaces it over that token.
          onLeft: (reason) => Effect.as(Codec.reportCorrupt("keyValueStore", key, reason), undecoded<A>(record.entry)),
          onRight: (entry) => Effect.succeed(Option.some(entry))
        })
      }
    )
  /**
   * The token of the record at `key` (`""` for none, one past its TTL, or one that does not
   * decode, which a read reports): read without decoding the value.
   */
  const tokenAt = (key: string) =>
    Effect.map(Effect.zip(bounded("get", key, kv.get(key)), Clock.currentTimeMillis), ([text, now]) => {
      const record = Option.isSome(text) ? parseRecord(text.value) : undefined
      if (record === undefined || now >= record.deadline) return ""
      return Entry.tokenOf(undecoded(record.entry))
    })
  // Tag keys start with "%", which job keys never do (job names escape it).
  const tagKey = (name: string) => `%tag:${name}`
  const newTag = (key: string) => Effect.tap(Token.make, (fresh) => bounded("set", key, kv.set(key, fresh)))
  const put = <A>(
    key: string,
    entry: Entry.Entry<A>,
    ttl: Duration.Duration,
    schema: SchemaOf<A> | undefined
  ): Effect.Effect<void, StoreError | CodecError> =>
    Either.match(Codec.forSchema(schema).encode(entry), {
      onLeft: (reason) => Effect.fail(new CodecError({ key, direction: "encode", reason })),
      onRight: (json) =>
        Effect.flatMap(
          Clock.currentTimeMillis,
          (now) => bounded("set", key, kv.set(key, JSON.stringify({ deadline: now + Duration.toMillis(ttl), entry: json })))
        )
    })
  return {
    tags: {
      tokens: (names, create) =>
        Effect.forEach(names, (name) =>
          Effect.flatMap(bounded("get", tagKey(name), kv.get(tagKey(name))), (token) =>
            Option.isSome(token) || !create
              ? Effect.succeed(Option.getOrUndefined(token))
              : newTag(tagKey(name)))),
      generation: Effect.map(bounded("get", "%tags", kv.get("%tags")), Option.getOrElse(() => "")),
      invalidate: (names) =>
        Effect.zipRight(
          Effect.forEach(names, (name) => newTag(tagKey(name)), { discard: true }),
          newTag("%tags")
        )
    },
    get: read,
    getMany: (keys, schema) => Effect.forEach(keys, (key) => read(key, schema), { concurrency: "unbounded" }),
    set: (key, entry, ttl, schema) => serialized(key, put(key, entry, ttl, schema)),
    compareAndSet: (key, entry, ttl, schema, expected) =>
      serialized(
        key,
        Effect.flatMap(tokenAt(key), (token) => token === expected ? Effect.as(put(key, entry, ttl, schema), true) : Effect.succeed(false))
      ),
    delete: (key) => serialized(key, bounded("delete", key, kv.remove(key)))
  }
}

const undecoded = <A>(entry: unknown): Option.Option<Entry.Entry<A>> => {
  const token = typeof entry === "object" && entry !== null ? (entry as { readonly token?: unknown }).token : undefined
  return typeof token === "string" && token !== "" ? Option.some(Entry.tombstone(0, token)) : Option.none()
}

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

