/**
 * The machinery of `CacheStore.layerKeyValueStore`: entries in `@effect/platform`'s
 * `KeyValueStore` (on disk with its `layerFileSystem`, so the cache survives restarts with
 * no server). Each record holds the encoded entry and the time the backend forgets it; a
 * record past that time reads as a miss and is removed.
 *
 * Every call's wait is bounded by `timeout` (a stuck file system fails it with a
 * `StoreError`, which the engine degrades as it degrades Redis's); a read is interrupted
 * then, a write is not (it finishes in the background). The writes of one key are
 * serialized by this store (a lock per key written, dropped when no write waits for it), so
 * that a compare-and-set's check and write see no other write of this store between them;
 * two stores over one directory (two processes, or two layers) are not (DESIGN.md §3.2).
 */
import type * as KeyValueStore from "@effect/platform/KeyValueStore"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { Backend } from "../CacheStore.js"
import * as Entry from "../Entry.js"
import { CodecError, StoreError } from "../Errors.js"
import * as Codec from "./codec.js"
import type { SchemaOf } from "./codec.js"
import * as Token from "./token.js"

/** Writes that outlive their caller's wait run in `scope` (the store layer's): they end with it. */
export const make = (kv: KeyValueStore.KeyValueStore, timeout: number, scope: Scope.Scope): Backend => {
  const fail = (operation: StoreError["operation"], key: string) => (cause: unknown) => new StoreError({ operation, key, cause })
  const late = () => new Error(`no answer within ${timeout} ms (timeout)`)
  const bounded = <X>(operation: StoreError["operation"], key: string, call: Effect.Effect<X, unknown>) =>
    call.pipe(
      Effect.timeoutFail({ duration: Duration.millis(timeout), onTimeout: late }),
      Effect.mapError(fail(operation, key))
    )
  const locks = new Map<string, { readonly semaphore: Effect.Semaphore; waiting: number }>()
  /**
   * A write of `key`, alone among the writes of `key` in this store, whose caller waits at
   * most `timeout`: the write itself is not interrupted (a file cut halfway would read as no
   * record, losing a tombstone), it finishes in the background holding the key's lock.
   */
  const written = <X, E>(operation: StoreError["operation"], key: string, body: Effect.Effect<X, E>): Effect.Effect<X, E | StoreError> =>
    Effect.flatMap(Effect.forkIn(serialized(key, body), scope), (write) =>
      Fiber.join(write).pipe(
        Effect.timeoutFail({
          duration: Duration.millis(timeout),
          onTimeout: () => new StoreError({ operation, key, cause: late() })
        })
      ))
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
          // Removed under the key's lock, if it is still the record read (a write since
          // stays); not at all while a write of the key is under way (it replaces it anyway).
          if (locks.has(key)) return Effect.succeedNone
          const remove = Effect.flatMap(kv.get(key), (still) =>
            Option.isSome(still) && still.value === text.value ? kv.remove(key) : Effect.void)
          return Effect.as(Effect.ignore(written("delete", key, remove)), Option.none())
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
    Effect.map(Effect.zip(Effect.mapError(kv.get(key), fail("get", key)), Clock.currentTimeMillis), ([text, now]) => {
      const record = Option.isSome(text) ? parseRecord(text.value) : undefined
      if (record === undefined || now >= record.deadline) return ""
      return tokenIn(record.entry)
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
          (now) => Effect.mapError(kv.set(key, JSON.stringify({ deadline: now + Duration.toMillis(ttl), entry: json })), fail("set", key))
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
    set: (key, entry, ttl, schema) => written("set", key, put(key, entry, ttl, schema)),
    compareAndSet: (key, entry, ttl, schema, expected) =>
      written(
        "set",
        key,
        Effect.flatMap(tokenAt(key), (token) => token === expected ? Effect.as(put(key, entry, ttl, schema), true) : Effect.succeed(false))
      ),
    delete: (key) => written("delete", key, Effect.mapError(kv.remove(key), fail("delete", key)))
  }
}

/** The token of a record's entry, read without decoding it (`""` for none). */
const tokenIn = (entry: unknown): string => {
  const token = typeof entry === "object" && entry !== null ? (entry as { readonly token?: unknown }).token : undefined
  return typeof token === "string" ? token : ""
}

/** What a read answers for an entry that does not decode: its token, in a tombstone holding no value. */
const undecoded = <A>(entry: unknown): Option.Option<Entry.Entry<A>> => {
  const token = tokenIn(entry)
  return token === "" ? Option.none() : Option.some(Entry.tombstone(0, token))
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

