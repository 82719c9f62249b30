import { EventEmitter } from "node:events"
import type { ConnectionOptions } from "bullmq"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { Cluster, type ClusterNode, type ClusterOptions, Redis, type RedisOptions } from "ioredis"
import * as IORedis from "./ioredis.js"
import { firstClusterConnection, firstConnection, neverThrow, retryStrategy, watch } from "./connection.js"

/**
 * The seed nodes of a Redis Cluster and ioredis's `Cluster` options, from which the layer
 * and each worker create their `Cluster` clients.
 */
export interface ClusterConnection {
  readonly nodes: ReadonlyArray<ClusterNode>
  readonly options?: ClusterOptions
}

/** A BullMQ connection as the layer was given it: one Redis (options or a client), or a cluster. */
export type Connection = ConnectionOptions | { readonly cluster: ClusterConnection }

/**
 * The Redis client of a BullMQ queue or worker. From options, the layer creates it (and
 * closes it with its scope) rather than letting BullMQ do so, to choose how it behaves
 * while Redis is unreachable and to know whether it is connected:
 *
 * - a producer's client has no offline queue and does not retry a command: an enqueue
 *   fails at once instead of waiting for Redis (on a cluster: nor for a failover);
 * - a worker's client waits for Redis (`maxRetriesPerRequest: null`, as BullMQ requires
 *   of a worker: its blocking connection is a duplicate of it; on a cluster BullMQ reads
 *   it from `redisOptions`).
 *
 * Both reconnect at most a second after Redis is back, and an outage is logged once. A
 * client given to the layer is used as it is and left open.
 */
export const connect = (
  connection: Connection,
  role: "producer" | "worker",
  what: string,
  meanwhile: string
): Effect.Effect<ConnectionOptions, never, Scope.Scope> => {
  const cluster = (connection as { readonly cluster?: unknown }).cluster
  if (isClusterConnection(cluster)) return open(() => clusterClient(cluster, role), what, meanwhile)
  if (isClient(connection)) {
    return connection instanceof EventEmitter
      ? Effect.as(watch(connection, what, meanwhile), connection)
      : Effect.succeed(connection)
  }
  const { url, ...options } = connection as RedisOptions & { readonly url?: string }
  const settings: RedisOptions = {
    ...IORedis.ownDefaults,
    retryStrategy: retryStrategy(1000),
    ...(role === "producer" ? { enableOfflineQueue: false, maxRetriesPerRequest: 0 } : {}),
    ...options,
    ...(role === "worker" ? { maxRetriesPerRequest: null } : {})
  }
  return open(() => IORedis.redis(settings, url), what, meanwhile)
}

const open = (
  create: () => Redis | Cluster,
  what: string,
  meanwhile: string
): Effect.Effect<ConnectionOptions, never, Scope.Scope> =>
  Effect.tap(
    Effect.acquireRelease(
      Effect.sync(() => neverThrow(create())),
      (client) => Effect.sync(() => client.disconnect())
    ),
    (client) =>
      Effect.zipRight(
        watch(client, what, meanwhile),
        client instanceof Cluster ? firstClusterConnection(client) : firstConnection(client)
      )
  )

/**
 * A producer's cluster fails a command at once when its node is down or the cluster is
 * failing over (no offline queue, no retry delays, few redirections), so that an enqueue
 * degrades to a refresh in the process rather than waiting out a failover; MOVED and ASK
 * are still followed. A worker's keeps ioredis's retries and waits.
 */
const clusterClient = (cluster: ClusterConnection, role: "producer" | "worker"): Cluster => {
  const options = cluster.options ?? {}
  return IORedis.cluster(cluster.nodes, {
    clusterRetryStrategy: retryStrategy(1000),
    ...(role === "producer"
      ? { enableOfflineQueue: false, retryDelayOnFailover: 0, retryDelayOnClusterDown: 0, maxRedirections: 3 }
      : {}),
    ...options,
    redisOptions: {
      ...IORedis.ownDefaults,
      ...options.redisOptions,
      maxRetriesPerRequest: role === "worker" ? null : (options.redisOptions?.maxRetriesPerRequest ?? 0)
    }
  })
}

export const isClusterConnection = (cluster: unknown): cluster is ClusterConnection =>
  typeof cluster === "object" && cluster !== null && Array.isArray((cluster as ClusterConnection).nodes)

export const isClient = (connection: Connection): boolean =>
  ["connect", "disconnect", "duplicate"].every((name) => typeof (connection as unknown as Record<string, unknown>)[name] === "function")

/** Whether BullMQ's keys go to a Redis Cluster: cluster options, or an ioredis `Cluster` client. */
export const onCluster = (connection: Connection): boolean =>
  // Not `"cluster" in connection`: an ioredis `Redis` has a `cluster` method (the command).
  isClusterConnection((connection as { readonly cluster?: unknown }).cluster) ||
  (connection as { readonly isCluster?: unknown }).isCluster === true

/**
 * The hash tag of a key that starts with `base`, as Redis Cluster computes it: the text
 * between the first `{` and the first `}` after it, when not empty. It must close within
 * `base`, or the suffixes BullMQ appends (`:wait`, `:id`, a task's key) would decide it.
 */
export const hashTag = (base: string): string | undefined => {
  const open = base.indexOf("{")
  if (open < 0) return undefined
  const close = base.indexOf("}", open + 1)
  return close > open + 1 ? base.slice(open + 1, close) : undefined
}

/**
 * On a cluster, every key of a BullMQ queue must hash to one slot, or its scripts fail
 * with CROSSSLOT: `undefined` when `<prefix>:<queue>:` carries a hash tag, else why not.
 */
export const untagged = (prefix: string | undefined, queue: string): string | undefined =>
  hashTag(`${prefix ?? "bull"}:${queue}:`) !== undefined
    ? undefined
    : `on a Redis Cluster, BullMQ needs all the keys of a queue in one hash slot, and neither the prefix ` +
      `"${prefix ?? "bull"}" nor the queue name "${queue}" has a hash tag: name the queue "{${queue}}" ` +
      `(one slot per queue, so queues spread over the cluster), or use a prefix such as "{bull}"`

/**
 * Whether a client is connected, as far as it tells (ioredis does; other clients BullMQ
 * accepts count as connected and rely on the enqueue timeout).
 */
export const isConnected = (client: ConnectionOptions): boolean => {
  const status = (client as { readonly status?: unknown }).status
  return typeof status !== "string" || status === "ready"
}
