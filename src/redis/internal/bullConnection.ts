import { EventEmitter } from "node:events"
import type { ConnectionOptions } from "bullmq"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { Redis, type RedisOptions } from "ioredis"
import { firstConnection, neverThrow, retryStrategy, watch } from "./connection.js"

/**
 * The Redis client of a BullMQ queue or worker. From options, the layer creates it (and
 * closes it with its scope) rather than letting BullMQ do so, to choose how it behaves
 * while Redis is unreachable and to know whether it is connected:
 *
 * - a producer's client has no offline queue and does not retry a command: an enqueue
 *   fails at once instead of waiting for Redis;
 * - a worker's client waits for Redis (`maxRetriesPerRequest: null`, as BullMQ requires
 *   of a worker: its blocking connection is a duplicate of it).
 *
 * Both reconnect at most a second after Redis is back, and an outage is logged once. A
 * client given to the layer is used as it is and left open.
 */
export const connect = (
  connection: ConnectionOptions,
  role: "producer" | "worker",
  what: string,
  meanwhile: string
): Effect.Effect<ConnectionOptions, never, Scope.Scope> => {
  if (isClient(connection)) {
    return connection instanceof EventEmitter
      ? Effect.as(watch(connection, what, meanwhile), connection)
      : Effect.succeed(connection)
  }
  const { url, ...options } = connection as RedisOptions & { readonly url?: string }
  const settings: RedisOptions = {
    retryStrategy: retryStrategy(1000),
    ...(role === "producer" ? { enableOfflineQueue: false, maxRetriesPerRequest: 0 } : {}),
    ...options,
    ...(role === "worker" ? { maxRetriesPerRequest: null } : {})
  }
  return Effect.tap(
    Effect.acquireRelease(
      Effect.sync(() => neverThrow(url === undefined ? new Redis(settings) : new Redis(url, settings))),
      (client) => Effect.sync(() => client.disconnect())
    ),
    (client) => Effect.zipRight(watch(client, what, meanwhile), firstConnection(client))
  )
}

export const isClient = (connection: ConnectionOptions): boolean =>
  ["connect", "disconnect", "duplicate"].every((name) => typeof (connection as unknown as Record<string, unknown>)[name] === "function")

/**
 * Whether a client is connected, as far as it tells (ioredis does; other clients BullMQ
 * accepts count as connected and rely on the enqueue timeout).
 */
export const isConnected = (client: ConnectionOptions): boolean => {
  const status = (client as { readonly status?: unknown }).status
  return typeof status !== "string" || status === "ready"
}
