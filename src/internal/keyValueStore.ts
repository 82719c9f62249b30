/**
 * The machinery of `CacheStore.layerKeyValueStore`: entries in `@effect/platform`'s
 * `KeyValueStore` (on disk with its `layerFileSystem`, so the cache survives restarts with
 * no server). Each record holds the encoded entry and the time the backend forgets it; a
 * record past that time reads as a miss and is removed.
 */
import { randomUUID } from "node:crypto"
import type * as KeyValueStore from "@effect/platform/KeyValueStore"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type { Backend } from "../CacheStore.js"
import type * as Entry from "../Entry.js"
import { CodecError, StoreError } from "../Errors.js"
import * as Codec from "./codec.js"
import type { SchemaOf } from "./codec.js"

export const make = (kv: KeyValueStore.KeyValueStore): Backend => {
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
  return {
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
  }
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

