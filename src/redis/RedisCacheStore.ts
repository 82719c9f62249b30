/**
 * A `CacheStore` on Redis (SPEC §5), shared by every process that reads a job: entries
 * are JSON text at `<prefix>:<key>`, values encoded by the job's value schema, forgotten by
 * Redis after the job's cache TTL.
 *
 * Faults degrade: while Redis is unreachable every read fails at once (no offline queue)
 * and `Job.get` counts it as a miss and fetches; when Redis is back the client reconnects
 * on its own and reads are hits again.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { Redis, type RedisOptions } from "ioredis"
import { CacheStore, type Service } from "../CacheStore.js"
import type * as Entry from "../Entry.js"
import { CodecError, StoreError } from "../Errors.js"
import * as Codec from "../internal/codec.js"
import type { SchemaOf } from "../internal/codec.js"
import { firstConnection, neverThrow, retryStrategy, watch } from "./internal/connection.js"
import { nonEmpty, positiveMillis } from "../internal/options.js"
import * as Reads from "./internal/reads.js"

/**
 * Where the store finds Redis: a `url` (the layer creates the client and closes it with its
 * scope) or a `client` of yours (left open).
 *
 * A client of yours should have `enableOfflineQueue: false`, as the one the layer creates
 * does: otherwise reads wait out the `commandTimeout` while Redis is unreachable.
 *
 * @since 0.1.0
 * @category models
 */
export type Options =
  & (
    | { readonly url: string; readonly client?: undefined }
    | { readonly client: Redis; readonly url?: undefined }
  )
  & {
    /** Namespace of the entries: a job's key `k` is stored at `<prefix>:k`. */
    readonly prefix: string
    /**
     * A store command that takes longer fails (a read becomes a miss, a write is logged).
     * Default 1 second. Applies to a client of yours too.
     */
    readonly commandTimeout?: Duration.DurationInput
    /**
     * For a client made from `url`: the longest wait between reconnection attempts while
     * Redis is unreachable. Default 500 milliseconds.
     */
    readonly reconnectDelay?: Duration.DurationInput
    /** For a client made from `url`: more ioredis options (TLS, credentials, …). */
    readonly redisOptions?: RedisOptions
  }

/**
 * The store as a service value, for a layer of your own tag (`Job.withStore`):
 * `Layer.scoped(Sessions, RedisCacheStore.make({ url, prefix: "sessions" }))`.
 *
 * Throws at once for an empty prefix, both or neither of `url` and `client`, or a
 * non-positive duration.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<Service, never, Scope.Scope> => {
  const settings = validate(options)
  const client = options.client !== undefined ? checkedClient(options.client) : connect(options.url, settings)
  return Effect.flatMap(Effect.zip(client, Effect.clock), ([client, clock]) => {
    const store = fromClient(client, settings.prefix, settings.commandTimeout, () => clock.unsafeCurrentTimeMillis())
    return watch(client, `the Redis cache store "${settings.prefix}"`, "reads fetch until it is back").pipe(
      // Looks for an overdue read round trip four times per timeout.
      Effect.zipRight(Effect.forkScoped(
        Effect.repeat(Effect.sync(store.failOverdueReads), Schedule.spaced(Math.max(1, settings.commandTimeout / 4)))
      )),
      Effect.as(store.service)
    )
  })
}

/**
 * The Redis store as the default `CacheStore`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<CacheStore> => Layer.scoped(CacheStore, make(options))

// -----------------------------------------------------------------------------
// The store. A hit is one GET and no Effect.gen; many keys are one MGET.
// -----------------------------------------------------------------------------

const fromClient = (client: Redis, prefix: string, timeout: number, now: () => number) => {
  const at = prefix + ":"
  const reads = Reads.make(client, { timeout, now })
  const overdue = (operation: StoreError["operation"], key: string) => ({
    duration: timeout,
    onTimeout: () =>
      new StoreError({ operation, key, cause: new Error(`Redis did not answer within ${timeout} ms`) })
  })
  const get = <A>(key: string, schema: SchemaOf<A> | undefined) =>
    // No canceler: a reader that is interrupted leaves its key in the batch, and Effect
    // drops the answer; registering one per read costs a measurable share of concurrent
    // hits (BENCHMARKS.md).
    Effect.async<Option.Option<Entry.Entry<A>>, StoreError>((resume) => {
      reads.get(at + key, (cause, text) =>
        resume(
          cause !== undefined
            ? Effect.fail(new StoreError({ operation: "get", key, cause }))
            : text === null
            ? Effect.succeedNone
            : decode(Codec.forSchema(schema), key, text)
        ))
    })
  const getMany = <A>(keys: ReadonlyArray<string>, schema: SchemaOf<A> | undefined) =>
    keys.length === 0 ? Effect.succeed([]) : Effect.async<ReadonlyArray<Option.Option<Entry.Entry<A>>>, StoreError>(
      (resume) => {
        client.mget(keys.map((key) => at + key)).then(
          (texts) => resume(decodeMany(Codec.forSchema(schema), keys, texts)),
          (cause) => resume(Effect.fail(new StoreError({ operation: "getMany", key: describeKeys(keys), cause })))
        )
      }
    ).pipe(Effect.timeoutFail(overdue("getMany", describeKeys(keys))))
  const set = <A>(
    key: string,
    entry: Entry.Entry<A>,
    ttl: Duration.Duration,
    schema: SchemaOf<A> | undefined
  ) =>
    Effect.suspend((): Effect.Effect<void, StoreError | CodecError> => {
      const encoded = Codec.forSchema(schema).encode(entry)
      if (Either.isLeft(encoded)) return Effect.fail(new CodecError({ key, direction: "encode", reason: encoded.left }))
      const text = JSON.stringify(encoded.right)
      const millis = Duration.toMillis(ttl)
      return command("set", key, () =>
        Number.isFinite(millis)
          ? client.set(at + key, text, "PX", Math.max(1, Math.ceil(millis)))
          : client.set(at + key, text)).pipe(Effect.timeoutFail(overdue("set", key)))
    })
  return {
    service: CacheStore.of({
      identity: `redis:${prefix}`,
      get,
      getMany,
      set,
      delete: (key) => command("delete", key, () => client.del(at + key)).pipe(Effect.timeoutFail(overdue("delete", key)))
    }),
    failOverdueReads: reads.failOverdue
  }
}

const command = (operation: "set" | "delete", key: string, run: () => Promise<unknown>) =>
  Effect.async<void, StoreError>((resume) => {
    run().then(
      () => resume(Effect.void),
      (cause) => resume(Effect.fail(new StoreError({ operation, key, cause })))
    )
  })

const decode = <A>(codec: Codec.EntryCodec<A>, key: string, text: string) => {
  const entry = Codec.parse(codec, text)
  return Either.isRight(entry)
    ? Effect.succeed(Option.some(entry.right))
    : Effect.as(Codec.reportCorrupt("redis", key, entry.left), Option.none())
}

const decodeMany = <A>(
  codec: Codec.EntryCodec<A>,
  keys: ReadonlyArray<string>,
  texts: ReadonlyArray<string | null>
): Effect.Effect<ReadonlyArray<Option.Option<Entry.Entry<A>>>> => {
  const entries: Array<Option.Option<Entry.Entry<A>>> = []
  let corrupt: Array<Effect.Effect<void>> | undefined
  for (let i = 0; i < keys.length; i++) {
    const text = texts[i]
    if (text === null || text === undefined) {
      entries.push(Option.none())
      continue
    }
    const entry = Codec.parse(codec, text)
    if (Either.isRight(entry)) {
      entries.push(Option.some(entry.right))
    } else {
      entries.push(Option.none())
      ;(corrupt ??= []).push(Codec.reportCorrupt("redis", keys[i], entry.left))
    }
  }
  return corrupt === undefined ? Effect.succeed(entries) : Effect.as(Effect.all(corrupt, { discard: true }), entries)
}

const describeKeys = (keys: ReadonlyArray<string>) =>
  keys.length <= 3 ? keys.join(", ") : `${keys.slice(0, 3).join(", ")} and ${keys.length - 3} more`

// -----------------------------------------------------------------------------
// The client the layer creates
// -----------------------------------------------------------------------------

interface Settings {
  readonly prefix: string
  readonly commandTimeout: number
  readonly reconnectDelay: number
  readonly redisOptions: RedisOptions | undefined
}

/**
 * A client that never makes a read wait for Redis: no offline queue (a command while
 * disconnected fails at once), no retry of a command cut by a lost connection, a timeout
 * for a connection that hangs. No auto-pipelining: concurrent reads share round trips
 * through `internal/reads` instead, without delaying a lone read. The layer waits for the
 * first connection (or its failure) so that the first reads are not misses.
 */
const connect = (url: string, settings: Settings): Effect.Effect<Redis, never, Scope.Scope> =>
  Effect.tap(
    Effect.acquireRelease(
      Effect.sync(() =>
        neverThrow(new Redis(url, {
          enableOfflineQueue: false,
          maxRetriesPerRequest: 0,
          connectTimeout: Math.max(settings.commandTimeout, 1000),
          retryStrategy: retryStrategy(settings.reconnectDelay),
          ...settings.redisOptions
        }))
      ),
      (client) => Effect.sync(() => client.disconnect())
    ),
    firstConnection
  )

/** A client of the caller's: used as it is, with a word when reads could wait on it. */
const checkedClient = (client: Redis): Effect.Effect<Redis> =>
  client.options.enableOfflineQueue !== false
    ? Effect.as(
      Effect.logWarning(
        "cacheback: the Redis client given to RedisCacheStore queues commands while Redis is unreachable, so reads " +
          "would wait for the store's commandTimeout before fetching; create it with { enableOfflineQueue: false }"
      ),
      client
    )
    : Effect.succeed(client)

const validate = (options: Options): Settings => {
  const where = "RedisCacheStore.layer"
  if (typeof options !== "object" || options === null) throw new TypeError(`${where}: expected options { url | client, prefix }`)
  const { client, url } = options
  const prefix = nonEmpty(where, "prefix",
    options.prefix,
    "entries are stored at \"<prefix>:<key>\", so give each application or environment its own prefix"
  )
  if ((url === undefined) === (client === undefined)) {
    throw new TypeError(`${where}: expected exactly one of url (a redis:// URL) or client (an ioredis client)`)
  }
  if (url !== undefined && (typeof url !== "string" || !/^rediss?:\/\//.test(url))) {
    throw new TypeError(`${where}: expected url to be a redis:// or rediss:// URL, got ${JSON.stringify(url)}`)
  }
  if (client !== undefined && !(client instanceof Redis)) {
    throw new TypeError(`${where}: expected client to be an ioredis Redis client; for a cluster, write a CacheStore of your own`)
  }
  return {
    prefix,
    commandTimeout: positiveMillis(`${where} commandTimeout`, options.commandTimeout ?? "1 second"),
    reconnectDelay: positiveMillis(`${where} reconnectDelay`, options.reconnectDelay ?? "500 millis"),
    redisOptions: options.redisOptions
  }
}
