import type { EventEmitter } from "node:events"
import * as Effect from "effect/Effect"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import { describe } from "../../internal/describe.js"

/**
 * Listens to the `error` and `ready` events of a Redis client, a BullMQ queue or a worker
 * for as long as the scope lives. Without an `error` listener an `EventEmitter` throws,
 * which would crash the process on the first lost connection. An outage is logged once
 * when it starts and once when it ends, not on every reconnection attempt.
 */
export const watch = (
  emitter: EventEmitter,
  what: string,
  meanwhile: string
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.flatMap(Effect.runtime<never>(), (runtime) => {
    const log = Runtime.runFork(runtime)
    let down = false
    const onError = (error: unknown) => {
      if (down) return
      down = true
      log(Effect.logWarning(`cacheback: ${what} cannot reach Redis (${describe(error)}); ${meanwhile}`))
    }
    const onReady = () => {
      if (!down) return
      down = false
      log(Effect.logInfo(`cacheback: ${what} is connected to Redis again`))
    }
    return Effect.acquireRelease(
      Effect.sync(() => {
        emitter.on("error", onError)
        emitter.on("ready", onReady)
      }),
      () =>
        Effect.sync(() => {
          emitter.off("error", onError)
          emitter.off("ready", onReady)
        })
    )
  })

/**
 * For the emitters a layer creates: an `error` listener that stays until the end, because
 * they may still emit while they close, after `watch` has stopped listening.
 */
export const neverThrow = <E extends EventEmitter>(emitter: E): E => emitter.on("error", ignore)

const ignore = () => {}

/**
 * Waits for a client's first connection, or its first failure, for at most 2 seconds: so
 * that the first reads after start-up are not misses while it connects, and that start-up
 * does not wait for a Redis that is down.
 */
export const firstConnection = (client: EventEmitter & { readonly status: string }): Effect.Effect<void> =>
  Effect.timeoutOption(
    Effect.async<void>((resume) => {
      if (client.status === "ready") return resume(Effect.void)
      const done = () => {
        stop()
        resume(Effect.void)
      }
      const stop = () => {
        client.off("ready", done)
        client.off("error", done)
        client.off("end", done)
      }
      client.once("ready", done)
      client.once("error", done)
      client.once("end", done)
      return Effect.sync(stop)
    }),
    "2 seconds"
  )

/**
 * For a Cluster with no offline queue, whose layer waits for its first connection: connects
 * each node as soon as ioredis adds one (ioredis connects a node lazily, on its first
 * command, and while that connection is being made it fails every other command to the
 * node with "Connection is closed", so the first concurrent reads and writes after start-up
 * or after a failover failed), and waits within the same 2 seconds for the masters too.
 */
export const firstClusterConnection = (
  cluster: EventEmitter & { readonly status: string; nodes(role: "all" | "master"): ReadonlyArray<Node> }
): Effect.Effect<void, never, Scope.Scope> => {
  const connectNode = (node: Node) => {
    if (node.status === "wait") node.connect().catch(ignore)
  }
  return Effect.zipRight(
    Effect.acquireRelease(
      Effect.sync(() => {
        cluster.on("+node", connectNode)
        cluster.nodes("all").forEach(connectNode)
      }),
      () => Effect.sync(() => cluster.off("+node", connectNode))
    ),
    Effect.timeoutOption(
      Effect.zipRight(
        firstConnection(cluster),
        Effect.suspend(() => Effect.forEach(cluster.nodes("master"), firstConnection, { concurrency: "unbounded", discard: true }))
      ),
      "2 seconds"
    )
  )
}

type Node = EventEmitter & { readonly status: string; connect(): Promise<void> }

/**
 * Redis reconnection delays: quick at first, then every `max` ms, so that a cache is back
 * within about `max` of Redis coming back. ioredis's default waits up to 2 s, BullMQ's up to
 * 20 s.
 */
export const retryStrategy = (max: number) => (times: number): number => Math.min(times * 50, max)
