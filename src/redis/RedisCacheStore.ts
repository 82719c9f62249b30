/**
 * A `CacheStore` on Redis, shared by every process that reads a job: entries
 * are JSON text at `<prefix>:<key>` behind a small header (`internal/wire.ts`), values
 * encoded by the job's value schema, forgotten by Redis after the job's cache TTL. With
 * `nearCache`, recently read entries are also kept in process memory, coherent through
 * Redis's own client-side caching (DESIGN.md §7). Synchronous fetches of a key share one fetch
 * across processes through a lock per key (DESIGN.md §3.1), and write-backs are compare-and-set.
 *
 * On a Redis Cluster (DESIGN.md §5.3) each entry carries its key as a hash tag, so that entries
 * spread over the masters and a key's entry and lock share a slot; many keys are read with
 * one `MGET` per slot, pipelined per master; the near cache tracks every master.
 *
 * Faults degrade: while Redis is unreachable every read fails at once (no offline queue)
 * and `Job.get` counts it as a miss and fetches; when Redis is back the client reconnects
 * on its own and reads are hits again. On a cluster the same holds for the keys of a master
 * that is down or failing over.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { Cluster, type ClusterNode, type ClusterOptions, Redis, type RedisOptions } from "ioredis"
import * as CacheStore from "../CacheStore.js"
import type * as Entry from "../Entry.js"
import { CodecError, StoreError } from "../Errors.js"
import * as Codec from "../internal/codec.js"
import * as Engine from "../internal/engine.js"
import type { SchemaOf } from "../internal/codec.js"
import { integer, nonEmpty, positiveMillis } from "../internal/options.js"
import { isClusterConnection } from "./internal/bullConnection.js"
import * as Claims from "./internal/claims.js"
import { firstClusterConnection, firstConnection, neverThrow, retryStrategy, watch } from "./internal/connection.js"
import * as IORedis from "./internal/ioredis.js"
import { nearOn } from "../internal/metrics.js"
import * as Keys from "./internal/keys.js"
import { Near, type Ticket } from "./internal/near.js"
import * as Reads from "./internal/reads.js"
import * as Scripts from "./internal/scripts.js"
import * as Tags from "./internal/tags.js"
import * as Tracking from "./internal/tracking.js"
import * as Wire from "./internal/wire.js"

/**
 * Where the store finds Redis: a `url` or a `cluster` (the layer creates the client and
 * closes it with its scope), or a `client` of yours, a `Redis` or a `Cluster` (left open).
 *
 * A client of yours should fail a command at once rather than queue it: a `Redis` with
 * `enableOfflineQueue: false`, a `Cluster` with that and `retryDelayOnFailover: 0`,
 * `retryDelayOnClusterDown: 0`, as the ones the layer creates. Otherwise reads wait out the
 * `commandTimeout` while Redis is unreachable or a master fails over.
 *
 * @since 0.1.0
 * @category models
 */
export type Options =
  & (
    | { readonly url: string; readonly client?: undefined; readonly cluster?: undefined }
    | { readonly client: Redis | Cluster; readonly url?: undefined; readonly cluster?: undefined }
    | { readonly cluster: ClusterConnection; readonly url?: undefined; readonly client?: undefined }
  )
  & {
    /**
     * Namespace of the entries: a job's key `k` is stored at `<prefix>:k` (on a cluster
     * `<prefix>:{k}`). On a cluster it may not contain `{` or `}`.
     */
    readonly prefix: string
    /**
     * A store command that takes longer fails (a read becomes a miss, a write is logged).
     * Default 1 second. Applies to a client of yours too.
     */
    readonly commandTimeout?: Duration.DurationInput
    /**
     * For a client made from `url` or `cluster`: the longest wait between reconnection
     * attempts while Redis is unreachable. Default 500 milliseconds.
     */
    readonly reconnectDelay?: Duration.DurationInput
    /**
     * For a client made from `url`: more ioredis options (TLS, credentials, …). For a
     * cluster they go in `cluster.options.redisOptions`.
     */
    readonly redisOptions?: RedisOptions
    /**
     * Keeps recently read entries in process memory in front of Redis (DESIGN.md §7): at most
     * `capacity` entries and `maxBytes` (default 64 MiB) counted as the length of their
     * stored text. Costs a second connection (the subscriber of Redis's invalidations). A
     * near hit is synchronous, like a memory-store hit; any write of a key, by any client,
     * evicts it in every process.
     */
    readonly nearCache?: NearCacheOptions
    /**
     * The TTL of the lock that elects one fetcher of a key across processes (DESIGN.md §3.1),
     * renewed while it fetches: what a fetcher that dies costs the others. Default 3 seconds.
     */
    readonly lockTtl?: Duration.DurationInput
  }
  & CacheStore.EngineOptions

/**
 * A Redis Cluster for the store: its seed nodes and ioredis `Cluster` options. The store's
 * `Cluster` fails a command at once while its master is down or failing over (no offline
 * queue, no retry delays, 3 redirections; MOVED and ASK are followed), so that reads of its
 * keys fetch rather than wait; `options` may override that.
 *
 * @since 0.2.0
 * @category models
 */
export interface ClusterConnection {
  /** Seed nodes, as `new Cluster(nodes)` takes them: `[{ host, port }]` or `["host:port"]`. */
  readonly nodes: ReadonlyArray<ClusterNode>
  /** ioredis `Cluster` options (credentials and TLS go in `redisOptions`). */
  readonly options?: ClusterOptions
}

/**
 * @since 0.2.0
 * @category models
 */
export interface NearCacheOptions {
  readonly capacity: number
  readonly maxBytes?: number
}

/**
 * The store as a service value, for a layer of your own tag (`Job.withStore`):
 * `Layer.scoped(Sessions, RedisCacheStore.make({ url, prefix: "sessions" }))`.
 *
 * Throws at once for an empty prefix, other than exactly one of `url`, `client` and
 * `cluster`, a brace in the prefix of a store on a cluster, a non-positive duration, or a
 * `nearCache` capacity or `maxBytes` that is not a positive integer.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<CacheStore.Service, never, Scope.Scope> => over(options, undefined)

/**
 * The store over a client that is not ioredis's but answers the commands this store sends,
 * as ioredis does: the simulated Redis of `effect-cacheback/testing`, with `url` naming it.
 *
 * @since 0.4.0
 * @internal
 */
export const makeOver = (
  client: Redis,
  options: Omit<Options, "url" | "client" | "cluster">
): Effect.Effect<CacheStore.Service, never, Scope.Scope> => over({ ...options, url: "redis://simulated" }, client)

const over = (options: Options, given: Redis | undefined): Effect.Effect<CacheStore.Service, never, Scope.Scope> => {
  const settings = validate(options)
  const client = given !== undefined
    ? Effect.succeed(given)
    : options.client !== undefined
    ? checkedClient(options.client)
    : options.cluster !== undefined
    ? connectCluster(options.cluster, settings)
    : connect(options.url, settings)
  // A cluster's nodes are connected now, its own or the caller's (firstClusterConnection says why).
  const ready = Effect.tap(client, (client) => client instanceof Cluster ? firstClusterConnection(client) : Effect.void)
  return Effect.flatMap(Effect.all([ready, Effect.clock, FiberRef.get(FiberRef.currentScheduler)]), ([client, clock, scheduler]) => {
    const layout = client instanceof Cluster ? Keys.cluster(settings.prefix) : Keys.oneRedis(settings.prefix)
    const near = settings.nearCache === undefined ? undefined : new Near(
      settings.nearCache.capacity,
      settings.nearCache.maxBytes,
      nearOn(settings.prefix)
    )
    const tracking = near === undefined ? Effect.succeed(undefined) : Tracking.start({
      near,
      layout,
      pingInterval: 250,
      pingGiveUp: 3_000,
      on: client instanceof Cluster
        ? { _tag: "Cluster", cluster: client, connect: nodeConnection(client, settings) }
        : {
          _tag: "Redis",
          client,
          // RESP2 whatever the client speaks: Redis pushes invalidations to RESP3 (ioredis.ts).
          subscriber: neverThrow(client.duplicate({ autoResubscribe: false, enableOfflineQueue: false, maxRetriesPerRequest: 0, ...IORedis.resp2 })),
          callersClient: options.client !== undefined
        }
    })
    return Effect.flatMap(Effect.zip(tracking, Effect.scope), ([tracking, scope]) => {
      const store = fromClient(client, layout, settings, {
        near,
        tracking,
        scope,
        now: () => clock.unsafeCurrentTimeMillis(),
        defer: (f) => scheduler.scheduleTask(f, 0)
      })
      return watch(client, `the Redis cache store "${settings.prefix}"`, "reads fetch until it is back").pipe(
        // Looks for an overdue read round trip eight times per timeout: a read fails within
        // an eighth of a timeout of its deadline, which leaves room for a busy event loop.
        Effect.zipRight(Effect.forkScoped(
          Effect.repeat(Effect.sync(store.failOverdueReads), Schedule.spaced(Math.max(1, settings.commandTimeout / 8)))
        )),
        Effect.zipRight(Engine.attach(store.backend, settings.engine))
      )
    })
  })
}

/**
 * The Redis store as the default `CacheStore`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<CacheStore.CacheStore> => Layer.scoped(CacheStore.CacheStore, make(options))

// -----------------------------------------------------------------------------
// The store. A hit is one GET and no Effect.gen; many keys are one MGET (per slot).
// -----------------------------------------------------------------------------

/** What the store's backend runs with, besides the client. */
interface Parts {
  readonly near: Near | undefined
  readonly tracking: Tracking.Tracking | undefined
  /** The layer's: a claim's renewal runs in it. */
  readonly scope: Scope.Scope
  readonly now: () => number
  /** Runs a function after the fibers resumed so far (`reads.ts`). */
  readonly defer: (f: () => void) => void
}

const fromClient = (client: Redis | Cluster, layout: Keys.Layout, settings: Settings, parts: Parts) => {
  const { defer, near, now, scope, tracking } = parts
  const { commandTimeout: timeout, prefix } = settings
  const at = layout.entry
  const reads = client instanceof Cluster ? Reads.makeCluster(client, { timeout, now, defer }) : Reads.make(client, { timeout, now, defer })
  // Whether Redis answered the last read: a claim does not wait for one that does not.
  let answering = true
  const overdue = (operation: StoreError["operation"], key: string) => ({
    duration: timeout,
    onTimeout: () =>
      new StoreError({ operation, key, cause: new Error(`Redis did not answer within ${timeout} ms`) })
  })
  const fromRedis = <A>(key: string, schema: SchemaOf<A> | undefined) =>
    // No canceler: a reader that is interrupted leaves its key in the batch, and Effect
    // drops the answer; registering one per read costs a measurable share of concurrent
    // hits (BENCHMARKS.md).
    Effect.async<Option.Option<Entry.Entry<A>>, StoreError>((resume) => {
      const ticket = near?.begin(key)
      reads.get(at(key), (cause, text) => {
        answering = cause === undefined
        if (cause !== undefined) {
          if (ticket !== undefined) near!.end(ticket, undefined, 0)
          return resume(Effect.fail(new StoreError({ operation: "get", key, cause })))
        }
        if (text === null) {
          if (ticket !== undefined) near!.end(ticket, undefined, 0)
          return resume(Effect.succeedNone)
        }
        const entry = Wire.parse(schema, text)
        if (ticket !== undefined) near!.end(ticket, Either.isRight(entry) ? entry.right : undefined, text.length)
        resume(
          Either.isRight(entry)
            ? Effect.succeed(Option.some(entry.right))
            : Effect.as(Codec.reportCorrupt("redis", key, entry.left), Wire.undecoded<A>(text))
        )
      })
    })
  const get = near === undefined ? fromRedis : <A>(key: string, schema: SchemaOf<A> | undefined) => {
    const known = near.get<A>(key)
    return known !== undefined ? Effect.succeed(known) : fromRedis(key, schema)
  }
  const mget = <A>(keys: ReadonlyArray<string>, schema: SchemaOf<A> | undefined) =>
    Effect.async<ReadonlyArray<Option.Option<Entry.Entry<A>>>, StoreError>(
      (resume) => {
        const tickets = near === undefined ? undefined : keys.map((key) => near.begin(key))
        reads.many(keys.map(at), (cause, texts) => {
          answering = cause == null
          if (cause == null) return resume(decodeMany(schema, keys, texts, near, tickets))
          if (tickets !== undefined) for (const ticket of tickets) near!.end(ticket, undefined, 0)
          resume(Effect.fail(new StoreError({ operation: "getMany", key: describeKeys(keys), cause })))
        })
      }
    )
  const getMany = <A>(keys: ReadonlyArray<string>, schema: SchemaOf<A> | undefined) => {
    if (keys.length === 0) return Effect.succeed([])
    if (near === undefined) return mget(keys, schema)
    // Near hits are answered here; one MGET reads the rest.
    const entries: Array<Option.Option<Entry.Entry<A>>> = new Array(keys.length)
    const missing: Array<number> = []
    for (let i = 0; i < keys.length; i++) {
      const known = near.get<A>(keys[i]!)
      if (known === undefined) missing.push(i)
      else entries[i] = known
    }
    if (missing.length === 0) return Effect.succeed(entries)
    return Effect.map(mget(missing.map((i) => keys[i]!), schema), (read) => {
      for (let j = 0; j < missing.length; j++) entries[missing[j]!] = read[j]!
      return entries
    })
  }
  /** The text of an entry, or why it cannot be written. */
  const encode = <A>(key: string, entry: Entry.Entry<A>, schema: SchemaOf<A> | undefined) => {
    const encoded = Codec.forSchema(schema).encode(entry)
    return Either.isLeft(encoded)
      ? Either.left(new CodecError({ key, direction: "encode", reason: encoded.left }))
      : Either.right(Wire.text(entry, encoded.right))
  }
  // A write of this process evicts its near entry before it is sent: a read sent earlier and
  // answered later is not cached, and Redis's invalidation of the write evicts what a read
  // cached meanwhile.
  const set = <A>(
    key: string,
    entry: Entry.Entry<A>,
    ttl: Duration.Duration,
    schema: SchemaOf<A> | undefined
  ) =>
    Effect.suspend((): Effect.Effect<void, StoreError | CodecError> => {
      const text = encode(key, entry, schema)
      if (Either.isLeft(text)) return Effect.fail(text.left)
      const millis = Duration.toMillis(ttl)
      near?.invalidate(key)
      return command("set", key, () =>
        Number.isFinite(millis)
          ? client.set(at(key), text.right, "PX", Math.max(1, Math.ceil(millis)))
          : client.set(at(key), text.right)).pipe(Effect.timeoutFail(overdue("set", key)))
    })
  const compareAndSet = <A>(
    key: string,
    entry: Entry.Entry<A>,
    ttl: Duration.Duration,
    schema: SchemaOf<A> | undefined,
    expected: string
  ) =>
    Effect.suspend((): Effect.Effect<boolean, StoreError | CodecError> => {
      const text = encode(key, entry, schema)
      if (Either.isLeft(text)) return Effect.fail(text.left)
      const millis = Duration.toMillis(ttl)
      near?.invalidate(key)
      return Effect.async<boolean, StoreError>((resume) => {
        Scripts.run(client, Scripts.compareAndSet, [
          at(key),
          expected,
          text.right,
          Number.isFinite(millis) ? Math.max(1, Math.ceil(millis)) : ""
        ]).then(
          (written) => resume(Effect.succeed(written === 1)),
          (cause) => resume(Effect.fail(new StoreError({ operation: "set", key, cause })))
        )
      }).pipe(Effect.timeoutFail(overdue("set", key)))
    })
  const claim = Claims.make({
    client,
    scope,
    layout,
    ttl: settings.lockTtl,
    timeout,
    tracking,
    answering: () => answering && client.status === "ready"
  })
  const common = {
    identity: `redis:${prefix}`,
    get,
    getMany,
    set,
    compareAndSet,
    claim,
    tags: Tags.make(client, reads, layout, timeout),
    delete: (key: string) => {
      near?.invalidate(key)
      return command("delete", key, () => client.del(at(key))).pipe(Effect.timeoutFail(overdue("delete", key)))
    }
  }
  return {
    // A near hit is answered without an effect; a key it does not hold goes through `get`.
    backend: near === undefined ? common : { ...common, unsafeGet: <A>(key: string) => near.get<A>(key) },
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

const decodeMany = <A>(
  schema: SchemaOf<A> | undefined,
  keys: ReadonlyArray<string>,
  texts: ReadonlyArray<string | null>,
  near: Near | undefined,
  tickets: ReadonlyArray<Ticket> | undefined
): Effect.Effect<ReadonlyArray<Option.Option<Entry.Entry<A>>>> => {
  const entries: Array<Option.Option<Entry.Entry<A>>> = []
  let corrupt: Array<Effect.Effect<void>> | undefined
  for (let i = 0; i < keys.length; i++) {
    const text = texts[i]
    if (text === null || text === undefined) {
      if (tickets !== undefined) near!.end(tickets[i]!, undefined, 0)
      entries.push(Option.none())
      continue
    }
    const entry = Wire.parse(schema, text)
    if (tickets !== undefined) near!.end(tickets[i]!, Either.isRight(entry) ? entry.right : undefined, text.length)
    if (Either.isRight(entry)) {
      entries.push(Option.some(entry.right))
    } else {
      entries.push(Wire.undecoded(text))
      ;(corrupt ??= []).push(Codec.reportCorrupt("redis", keys[i]!, entry.left))
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
  readonly nearCache: { readonly capacity: number; readonly maxBytes: number } | undefined
  readonly lockTtl: number
  readonly engine: Engine.Sizes
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
        neverThrow(IORedis.redis({
          ...IORedis.ownDefaults,
          enableOfflineQueue: false,
          maxRetriesPerRequest: 0,
          connectTimeout: Math.max(settings.commandTimeout, 1000),
          retryStrategy: retryStrategy(settings.reconnectDelay),
          ...settings.redisOptions
        }, url))
      ),
      (client) => Effect.sync(() => client.disconnect())
    ),
    firstConnection
  )

/**
 * A cluster client that never makes a read wait, as `connect`'s: no offline queue, and a
 * command to a master that is down or failing over fails at once instead of being retried
 * after a delay (`retryDelayOnFailover`, `retryDelayOnClusterDown`: measured, they held
 * single commands for up to 4.7 s, and retried writes landed out of order); MOVED and ASK
 * are still followed, at most 3 times. ioredis refreshes its slot map when it meets a
 * redirection or a node it cannot reach, which is all a failover needs.
 */
const connectCluster = (cluster: ClusterConnection, settings: Settings): Effect.Effect<Cluster, never, Scope.Scope> => {
  const options = cluster.options ?? {}
  return Effect.acquireRelease(
    Effect.sync(() =>
      neverThrow(IORedis.cluster(cluster.nodes, {
        enableOfflineQueue: false,
        retryDelayOnFailover: 0,
        retryDelayOnClusterDown: 0,
        maxRedirections: 3,
        clusterRetryStrategy: retryStrategy(settings.reconnectDelay),
        ...options,
        redisOptions: {
          ...IORedis.ownDefaults,
          maxRetriesPerRequest: 0,
          connectTimeout: Math.max(settings.commandTimeout, 1000),
          ...options.redisOptions
        }
      }))
    ),
    (client) => Effect.sync(() => client.disconnect())
  )
}

/** A connection of the near cache's to one master of `cluster`, with the cluster's node options. */
const nodeConnection = (cluster: Cluster, settings: Settings) => (host: string, port: number): Redis =>
  neverThrow(IORedis.redis({
    ...IORedis.ownDefaults,
    ...cluster.options.redisOptions,
    host,
    port,
    lazyConnect: false,
    autoResubscribe: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: Math.max(settings.commandTimeout, 1000),
    retryStrategy: retryStrategy(settings.reconnectDelay),
    // Its tracker and subscriber: the subscriber must speak RESP2 (ioredis.ts).
    ...IORedis.resp2
  }))

/** A client of the caller's: used as it is, with a word when reads could wait on it. */
const checkedClient = <C extends Redis | Cluster>(client: C): Effect.Effect<C> => {
  const waits = client instanceof Cluster
    ? (["enableOfflineQueue", "retryDelayOnFailover", "retryDelayOnClusterDown"] as const).filter((option) =>
      client.options[option] !== (option === "enableOfflineQueue" ? false : 0)
    )
    : client.options.enableOfflineQueue !== false
    ? ["enableOfflineQueue"]
    : []
  if (waits.length === 0) return Effect.succeed(client)
  const fix = client instanceof Cluster
    ? "create it with { enableOfflineQueue: false, retryDelayOnFailover: 0, retryDelayOnClusterDown: 0 }"
    : "create it with { enableOfflineQueue: false }"
  return Effect.as(
    Effect.logWarning(
      `cacheback: the Redis ${client instanceof Cluster ? "Cluster" : "client"} given to RedisCacheStore queues or ` +
        `delays commands while Redis is unreachable (${waits.join(", ")}), so reads would wait for the store's ` +
        `commandTimeout before fetching; ${fix}`
    ),
    client
  )
}

const validate = (options: Options): Settings => {
  const where = "RedisCacheStore.layer"
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`${where}: expected options { url | client | cluster, prefix }`)
  }
  const { client, cluster, url } = options
  const prefix = nonEmpty(where, "prefix",
    options.prefix,
    "entries are stored at \"<prefix>:<key>\", so give each application or environment its own prefix"
  )
  if ([url, client, cluster].filter((given) => given !== undefined).length !== 1) {
    throw new TypeError(
      `${where}: expected exactly one of url (a redis:// URL), client (an ioredis Redis or Cluster) or cluster ({ nodes, options? })`
    )
  }
  if (url !== undefined && (typeof url !== "string" || !/^rediss?:\/\//.test(url))) {
    throw new TypeError(`${where}: expected url to be a redis:// or rediss:// URL, got ${JSON.stringify(url)}`)
  }
  if (client !== undefined && !(client instanceof Redis) && !(client instanceof Cluster)) {
    throw new TypeError(`${where}: expected client to be an ioredis Redis or Cluster client`)
  }
  if (cluster !== undefined && (!isClusterConnection(cluster) || cluster.nodes.length === 0)) {
    throw new TypeError(
      `${where}: expected cluster to be { nodes, options? } with at least one seed node, e.g. { nodes: [{ host: "127.0.0.1", port: 7000 }] }`
    )
  }
  if (options.redisOptions !== undefined && cluster !== undefined) {
    throw new TypeError(`${where}: redisOptions apply to a client made from url; for a cluster give them as cluster.options.redisOptions`)
  }
  const problem = cluster !== undefined || client instanceof Cluster ? Keys.clusterPrefixProblem(prefix) : undefined
  if (problem !== undefined) throw new TypeError(`${where}: ${problem}`)
  return {
    prefix,
    commandTimeout: positiveMillis(`${where} commandTimeout`, options.commandTimeout ?? "1 second"),
    reconnectDelay: positiveMillis(`${where} reconnectDelay`, options.reconnectDelay ?? "500 millis"),
    redisOptions: options.redisOptions,
    nearCache: nearCacheOf(where, options.nearCache),
    lockTtl: positiveMillis(`${where} lockTtl`, options.lockTtl ?? "3 seconds"),
    engine: Engine.sizes(where, options)
  }
}

const nearCacheOf = (where: string, near: NearCacheOptions | undefined): Settings["nearCache"] => {
  if (near === undefined) return undefined
  if (typeof near !== "object" || near === null) throw new TypeError(`${where}: expected nearCache to be { capacity, maxBytes? }`)
  return {
    capacity: integer(`${where} nearCache`, "capacity", near.capacity, 1),
    maxBytes: near.maxBytes === undefined ? 64 * 1024 * 1024 : integer(`${where} nearCache`, "maxBytes", near.maxBytes, 1)
  }
}
