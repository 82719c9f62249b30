/**
 * Keeps the near cache (`near.ts`) coherent with Redis by server-assisted client-side
 * caching (SPEC §8): the store's connection has `CLIENT TRACKING ON REDIRECT <id> BCAST
 * PREFIX <prefix>:` (and `<prefix>|`, where locks live), so that Redis sends every change of
 * a key under them, by any client, to a subscriber connection on `__redis__:invalidate`.
 * No bus of our own, and nothing to configure on the writers.
 *
 * A state machine written by hand, because it is driven by the events of two ioredis
 * connections and a liveness timer rather than by one effect:
 *
 * - `down`: the near cache is empty and bypassed. Both connections `ready` → `establishing`.
 * - `establishing`: read the subscriber's `CLIENT ID` (refused once it subscribes, so first),
 *   `SUBSCRIBE`, `TRACKING OFF` then `ON` (a second `ON` with the same prefix is refused),
 *   then write a sentinel key under the tracked prefix and wait for its invalidation: that
 *   proves the whole path. → `up`, unless a connection dropped meanwhile (then again).
 * - `up`: the near cache answers. A `PING` on the subscriber every `pingInterval`; a PONG
 *   proves every invalidation sent before it was read (same socket).
 * - `suspended`: a PING still unanswered at the next tick; empty and bypassed (staleness is
 *   bounded by about two intervals). Its late PONG → `up` again; none for `pingGiveUp` →
 *   the subscriber reconnects.
 * - Either connection closing (its invalidations are lost, or tracking with it) → `down`.
 *   A flush (a null payload) empties the cache and stays `up`.
 */
import { randomUUID } from "node:crypto"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type { Redis } from "ioredis"
import { describe } from "../../internal/describe.js"
import type { Near } from "./near.js"

export interface Tracking {
  /**
   * Calls `wake` once, at the next change of the key's entry or lock seen through tracking
   * (or a flush, or a lost connection); answers how to stop waiting.
   */
  readonly onChange: (key: string, wake: () => void) => () => void
}

export interface TrackingOptions {
  /** The store's connection, whose key space is tracked. */
  readonly client: Redis
  /** A connection of its own for the invalidations, closed with the scope. */
  readonly subscriber: Redis
  readonly near: Near
  /** Where entries live (`<prefix>:`) and where locks and sentinels do (`<prefix>|`). */
  readonly entryAt: string
  readonly metaAt: string
  readonly lockAt: string
  readonly pingInterval: number
  readonly pingGiveUp: number
  /** Whether the client is the caller's: tracking is turned off on it at the end. */
  readonly ownClient: boolean
}

const channel = "__redis__:invalidate"

type Phase = "down" | "establishing" | "up" | "suspended"

export const start = (options: TrackingOptions): Effect.Effect<Tracking, never, Scope.Scope> =>
  Effect.flatMap(Effect.runtime<never>(), (runtime) => {
    const { client, entryAt, lockAt, metaAt, near, subscriber } = options
    const fork = Runtime.runFork(runtime)
    let phase: Phase = "down"
    let closed = false
    /** The subscriber's id while it is subscribed. */
    let subscriberId: number | undefined
    /** Bumped by every lost connection: an establishment that saw it move starts again. */
    let drops = 0
    let establishing = false
    let again = false
    let pingSentAt: number | undefined
    const sentinels = new Map<string, () => void>()
    const waiting = new Map<string, Set<() => void>>()

    const wake = (key: string) => {
      const wakes = waiting.get(key)
      if (wakes === undefined) return
      waiting.delete(key)
      for (const done of wakes) done()
    }
    const wakeAll = () => {
      for (const key of Array.from(waiting.keys())) wake(key)
    }
    const down = (why: string) => {
      drops++
      pingSentAt = undefined
      if (phase === "up" || phase === "suspended") fork(Effect.logDebug(`cacheback: near cache bypassed: ${why}`))
      if (phase !== "establishing") phase = "down"
      near.close()
      wakeAll()
    }

    const onMessage = (from: Buffer, payload: unknown) => {
      if (from.toString() !== channel) return
      if (payload === null) {
        // FLUSHALL or FLUSHDB (of any database): every key is gone.
        near.empty()
        wakeAll()
        return
      }
      if (!Array.isArray(payload)) return
      for (const raw of payload) {
        // `messageBuffer`, not `message`: the latter joins the keys with commas.
        const key = String(raw)
        if (key.startsWith(entryAt)) {
          const stored = key.slice(entryAt.length)
          near.invalidate(stored)
          wake(stored)
        } else if (key.startsWith(lockAt)) {
          wake(key.slice(lockAt.length))
        } else {
          sentinels.get(key)?.()
        }
      }
    }

    const call = (connection: Redis, ...args: Array<string | number>) =>
      Effect.tryPromise(() => connection.call("CLIENT", ...args))

    const establish = Effect.gen(function*() {
      const seen = drops
      if (subscriberId === undefined) {
        const id = Number(yield* call(subscriber, "ID"))
        yield* Effect.tryPromise(() => subscriber.subscribe(channel))
        subscriberId = id
      }
      yield* call(client, "TRACKING", "OFF")
      yield* call(client, "TRACKING", "ON", "REDIRECT", subscriberId, "BCAST", "PREFIX", entryAt, "PREFIX", metaAt)
      // A write under the tracked prefix must come back as an invalidation.
      const sentinel = `${metaAt}near:${randomUUID()}`
      const echoed = yield* Deferred.make<void>()
      sentinels.set(sentinel, () => Deferred.unsafeDone(echoed, Effect.void))
      yield* Effect.tryPromise(() => client.set(sentinel, "1", "PX", 5_000)).pipe(
        Effect.zipRight(Deferred.await(echoed).pipe(
          Effect.timeoutFail({ duration: Duration.seconds(1), onTimeout: () => new Error("the sentinel's invalidation did not come within 1 s") })
        )),
        Effect.ensuring(Effect.sync(() => sentinels.delete(sentinel)))
      )
      if (seen !== drops || closed) return yield* Effect.fail(new Error("a connection dropped meanwhile"))
      phase = "up"
      near.open()
      yield* Effect.logDebug(`cacheback: near cache on (invalidations to client ${subscriberId})`)
    })

    const bothReady = () => !closed && client.status === "ready" && subscriber.status === "ready"

    /** Establishes tracking when both connections are ready, one attempt at a time; retries a failed one. */
    const ensure = () => {
      if (establishing) {
        again = true
        return
      }
      if (!bothReady()) return
      establishing = true
      phase = "establishing"
      near.close()
      fork(
        establish.pipe(
          Effect.catchAll((error) =>
            Effect.zipRight(
              Effect.logDebug(`cacheback: near cache not on yet: ${describe(error)}; trying again`),
              Effect.zipRight(Effect.sleep(Duration.millis(200)), Effect.sync(() => (again = true)))
            )
          ),
          Effect.ensuring(Effect.sync(() => {
            establishing = false
            if (phase === "establishing") phase = "down"
            if (again) {
              again = false
              ensure()
            }
          }))
        )
      )
    }

    const onSubscriberClose = () => {
      subscriberId = undefined
      down("the invalidation subscriber's connection closed")
    }
    const onClientClose = () => down("the store's connection closed, and tracking with it")

    const tick = (now: number) => {
      if (phase !== "up" && phase !== "suspended") return
      if (pingSentAt !== undefined) {
        if (phase === "up") {
          phase = "suspended"
          near.close()
          fork(Effect.logDebug("cacheback: near cache bypassed: the invalidation subscriber is late to answer PING"))
        }
        if (now - pingSentAt > options.pingGiveUp) {
          pingSentAt = undefined
          subscriber.disconnect(true)
        }
        return
      }
      const sent = now
      pingSentAt = sent
      subscriber.ping((error) => {
        if (pingSentAt !== sent) return
        pingSentAt = undefined
        if (error == null && phase === "suspended") {
          phase = "up"
          near.open()
        }
      })
    }

    return Effect.acquireRelease(
      Effect.sync(() => {
        subscriber.on("messageBuffer", onMessage)
        subscriber.on("close", onSubscriberClose)
        client.on("close", onClientClose)
        subscriber.on("ready", ensure)
        client.on("ready", ensure)
        ensure()
      }),
      () =>
        Effect.sync(() => {
          closed = true
          near.close()
          wakeAll()
          subscriber.off("messageBuffer", onMessage)
          subscriber.off("close", onSubscriberClose)
          client.off("close", onClientClose)
          subscriber.off("ready", ensure)
          client.off("ready", ensure)
          subscriber.disconnect()
          // A client of the caller's goes on without our tracking.
          if (!options.ownClient && client.status === "ready") client.call("CLIENT", "TRACKING", "OFF").catch(() => {})
        })
    ).pipe(
      Effect.zipRight(Effect.forkScoped(Effect.repeat(
        Effect.clockWith((clock) => Effect.sync(() => tick(clock.unsafeCurrentTimeMillis()))),
        Schedule.spaced(Duration.millis(options.pingInterval))
      ))),
      Effect.as<Tracking>({
        onChange: (key, done) => {
          let wakes = waiting.get(key)
          if (wakes === undefined) {
            wakes = new Set()
            waiting.set(key, wakes)
          }
          wakes.add(done)
          const registered = wakes
          return () => {
            registered.delete(done)
            if (registered.size === 0 && waiting.get(key) === registered) waiting.delete(key)
          }
        }
      })
    )
  })
