/**
 * Keeps the near cache (`near.ts`) coherent with Redis by server-assisted client-side
 * caching (DESIGN.md §7): a tracking connection has `CLIENT TRACKING ON REDIRECT <id> BCAST PREFIX
 * <prefix>: PREFIX <prefix>|` (entries, and locks where they live), so that Redis sends every
 * change of a key under them, by any client, to a subscriber connection on
 * `__redis__:invalidate`. No bus of our own, and nothing to configure on the writers.
 *
 * Tracking lives in each Redis server, so there is one link (a tracking connection and a
 * subscriber) per server that holds keys: on one Redis, the store's own connection tracks;
 * on a cluster, each master gets two connections of its own (Redis redirects invalidations
 * only to a client of the same server), and the links follow the masters: a master that
 * appears (a promoted replica) gets one, a master that is gone loses its own. Any move of a
 * slot empties the near cache. The near cache answers only while every link is `up`.
 *
 * Each link is a state machine written by hand, because it is driven by the events of two
 * ioredis connections and a liveness timer rather than by one effect:
 *
 * - `down`: the near cache is empty and bypassed. Both connections `ready` → `establishing`.
 * - `establishing`: read the subscriber's `CLIENT ID` (refused once it subscribes, so first),
 *   `SUBSCRIBE`, `TRACKING OFF` then `ON` (a second `ON` with the same prefix is refused),
 *   then write a sentinel key under the tracked prefix, on this server, and wait for its
 *   invalidation: that proves the whole path. → `up`, unless a connection dropped meanwhile
 *   (then again).
 * - `up`: a `PING` on the subscriber every `pingInterval`; a PONG proves every invalidation
 *   sent before it was read (same socket).
 * - `suspended`: a PING still unanswered at the next tick; empty and bypassed (staleness is
 *   bounded by about two intervals). Its late PONG → `up` again; none for `pingGiveUp` →
 *   the subscriber reconnects.
 * - Either connection closing (its invalidations are lost, or tracking with it) → `down`.
 *   A flush (a null payload) empties the cache and stays `up`.
 */
import calculateSlot from "cluster-key-slot"
import * as Deferred from "effect/Deferred"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type { Cluster, Redis } from "ioredis"
import { describe } from "../../internal/describe.js"
import type { Layout } from "./keys.js"
import type { Near } from "./near.js"
import * as Token from "../../internal/token.js"

export interface Tracking {
  /**
   * Calls `wake` once, at the next change of the key's entry or lock seen through tracking
   * (or a flush, a lost connection, a move of slots); answers how to stop waiting.
   */
  readonly onChange: (key: string, wake: () => void) => () => void
}

export interface TrackingOptions {
  readonly near: Near
  readonly layout: Layout
  readonly pingInterval: number
  readonly pingGiveUp: number
  readonly on: OneRedis | OnCluster
}

/** One Redis: the store's connection tracks, and a subscriber of its own. */
export interface OneRedis {
  readonly _tag: "Redis"
  readonly client: Redis
  /** Closed with the scope. */
  readonly subscriber: Redis
  /** Whether the client is the caller's: tracking is turned off on it at the end. */
  readonly callersClient: boolean
}

/** A cluster: a tracker and a subscriber per master, from `connect`, closed by tracking. */
export interface OnCluster {
  readonly _tag: "Cluster"
  readonly cluster: Cluster
  readonly connect: (host: string, port: number) => Redis
}

const channel = "__redis__:invalidate"

type Phase = "down" | "establishing" | "up" | "suspended"

/** Tracking on one server. */
interface Link {
  /** `host:port` on a cluster (ioredis's name of the node), `Redis` on one Redis. */
  readonly node: string
  readonly tracker: Redis
  readonly subscriber: Redis
  phase: Phase
  /** The subscriber's id while it is subscribed. */
  subscriberId: number | undefined
  /** Bumped by every lost connection: an establishment that saw it move starts again. */
  drops: number
  establishing: boolean
  again: boolean
  pingSentAt: number | undefined
  /** Attempts failed in a row: each waits twice the one before (from 200 ms, at most 30 s). */
  failures: number
  /** When a warning last said this link cannot come up (`Clock` ms). */
  warnedAt: number
  /** Removed (its master is gone, or the store closed): its events are ignored. */
  gone: boolean
  readonly detach: () => void
}

export const start = (options: TrackingOptions): Effect.Effect<Tracking, never, Scope.Scope> =>
  Effect.flatMap(Effect.runtime<never>(), (runtime) => {
    const { layout, near, on } = options
    const fork = Runtime.runFork(runtime)
    // Establishment attempts, which may wait up to 30 s between two: interrupted on close.
    const attempts = new Set<Fiber.RuntimeFiber<unknown, unknown>>()
    const links = new Map<string, Link>()
    let closed = false
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
    const allUp = () => {
      if (closed || links.size === 0) return false
      for (const link of links.values()) if (link.phase !== "up") return false
      return true
    }
    const down = (link: Link, why: string) => {
      link.drops++
      link.pingSentAt = undefined
      if (link.phase === "up" || link.phase === "suspended") fork(Effect.logDebug(`cacheback: near cache bypassed: ${why}`))
      if (link.phase !== "establishing") link.phase = "down"
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
        const entry = layout.ofEntry(key)
        if (entry !== undefined) {
          near.invalidate(entry)
          wake(entry)
          continue
        }
        const locked = layout.ofLock(key)
        if (locked !== undefined) wake(locked)
        else sentinels.get(key)?.()
      }
    }

    // Failures keep Redis's reply (NOPERM, unknown command…): the warning names it.
    const attempt = <A>(run: () => Promise<A>) => Effect.tryPromise({ try: run, catch: (cause) => cause })
    const call = (connection: Redis, ...args: Array<string | number>) => attempt(() => connection.call("CLIENT", ...args))

    const establish = (link: Link) =>
      Effect.gen(function*() {
        const seen = link.drops
        const { subscriber, tracker } = link
        if (link.subscriberId === undefined) {
          const id = Number(yield* call(subscriber, "ID"))
          yield* attempt(() => subscriber.subscribe(channel))
          link.subscriberId = id
        }
        yield* call(tracker, "TRACKING", "OFF")
        yield* call(tracker, "TRACKING", "ON", "REDIRECT", link.subscriberId, "BCAST", "PREFIX", layout.entryAt, "PREFIX", layout.metaAt)
        // A write under the tracked prefix, on this server, must come back as an invalidation.
        const sentinel = sentinelOn(link, yield* Token.make)
        if (sentinel === undefined) return yield* Effect.fail(new Error(`${link.node} serves no slot`))
        const echoed = yield* Deferred.make<void>()
        sentinels.set(sentinel, () => Deferred.unsafeDone(echoed, Effect.void))
        yield* attempt(() => tracker.set(sentinel, "1", "PX", 5_000)).pipe(
          Effect.zipRight(Deferred.await(echoed).pipe(
            Effect.timeoutFail({ duration: Duration.seconds(1), onTimeout: () => new Error("the sentinel's invalidation did not come within 1 s") })
          )),
          Effect.ensuring(Effect.sync(() => sentinels.delete(sentinel)))
        )
        if (seen !== link.drops || closed || link.gone) return yield* Effect.fail(new Error("a connection dropped meanwhile"))
        link.phase = "up"
        link.failures = 0
        if (allUp()) near.open()
        yield* Effect.logDebug(`cacheback: near cache tracks ${link.node} (invalidations to client ${link.subscriberId})`)
      })

    /**
     * A failed attempt: the next one waits twice as long as this one did (200 ms, doubling
     * to 30 s), so that a server that never confirms tracking gets a sentinel write at most
     * every 30 s. From the third failure in a row, a warning says why and what to do, at most
     * once a minute per link: the near tier is off, and reads go to Redis.
     */
    const failed = (link: Link, error: unknown) =>
      Effect.clockWith((clock) => {
        link.failures++
        const now = clock.unsafeCurrentTimeMillis()
        const pause = Math.min(200 * 2 ** (link.failures - 1), 30_000)
        const warn = link.failures >= 3 && now - link.warnedAt >= 60_000
        if (warn) link.warnedAt = now
        const why = `cacheback: the near cache of ${link.node} is off (reads go to Redis): tracking could not be confirmed ` +
          `after ${link.failures} attempts (${describe(error)}). The server must support CLIENT TRACKING with REDIRECT ` +
          `(Redis 6+, not refused by an ACL), and nothing between it and this process may drop pub/sub messages; ` +
          `trying again in ${pause} ms, then at most every 30 s`
        return Effect.zipRight(
          warn ? Effect.logWarning(why) : Effect.logDebug(`cacheback: near cache not on yet: ${describe(error)}; trying again in ${pause} ms`),
          Effect.zipRight(Effect.sleep(Duration.millis(pause)), Effect.sync(() => (link.again = true)))
        )
      })

    const bothReady = (link: Link) =>
      !closed && !link.gone && link.tracker.status === "ready" && link.subscriber.status === "ready"

    /** Establishes a link when both its connections are ready, one attempt at a time; retries a failed one. */
    const ensure = (link: Link) => {
      if (link.establishing) {
        link.again = true
        return
      }
      if (!bothReady(link)) return
      link.establishing = true
      link.phase = "establishing"
      near.close()
      const attempt = fork(
        establish(link).pipe(
          Effect.catchAll((error) => failed(link, error)),
          Effect.ensuring(Effect.sync(() => {
            link.establishing = false
            if (link.phase === "establishing") link.phase = "down"
            if (link.again && !closed) {
              link.again = false
              ensure(link)
            }
          }))
        )
      )
      attempts.add(attempt)
      attempt.addObserver(() => attempts.delete(attempt))
    }

    /** Interrupts the attempts running or waiting out their back-off: they end with the store. */
    const stopAttempts = () => {
      for (const attempt of attempts) attempt.unsafeInterruptAsFork(FiberId.none)
    }

    const tick = (link: Link, now: number) => {
      if (link.phase !== "up" && link.phase !== "suspended") return
      const { subscriber } = link
      if (link.pingSentAt !== undefined) {
        if (link.phase === "up") {
          link.phase = "suspended"
          near.close()
          fork(Effect.logDebug("cacheback: near cache bypassed: the invalidation subscriber is late to answer PING"))
        }
        if (now - link.pingSentAt > options.pingGiveUp) {
          link.pingSentAt = undefined
          subscriber.disconnect(true)
        }
        return
      }
      const sent = now
      link.pingSentAt = sent
      subscriber.ping((error) => {
        if (link.pingSentAt !== sent) return
        link.pingSentAt = undefined
        if (error == null && link.phase === "suspended") {
          link.phase = "up"
          if (allUp()) near.open()
        }
      })
    }

    /** A link over two connections to one server, listening to them until removed. */
    const link = (node: string, tracker: Redis, subscriber: Redis, trackerIs: string): Link => {
      const self: Link = {
        node,
        tracker,
        subscriber,
        phase: "down",
        subscriberId: undefined,
        drops: 0,
        establishing: false,
        again: false,
        pingSentAt: undefined,
        failures: 0,
        warnedAt: -Infinity,
        gone: false,
        detach: () => {
          subscriber.off("messageBuffer", onMessage)
          subscriber.off("close", onSubscriberClose)
          tracker.off("close", onTrackerClose)
          subscriber.off("ready", onReady)
          tracker.off("ready", onReady)
        }
      }
      const onSubscriberClose = () => {
        self.subscriberId = undefined
        down(self, "the invalidation subscriber's connection closed")
      }
      const onTrackerClose = () => down(self, `${trackerIs} closed, and tracking with it`)
      const onReady = () => ensure(self)
      subscriber.on("messageBuffer", onMessage)
      subscriber.on("close", onSubscriberClose)
      tracker.on("close", onTrackerClose)
      subscriber.on("ready", onReady)
      tracker.on("ready", onReady)
      links.set(node, self)
      return self
    }

    /** The master of each slot of the cluster, as last seen. */
    let owners: ReadonlyArray<string | undefined> = []
    const sentinelOn = (link: Link, token: string): string | undefined => {
      if (on._tag === "Redis") return `${layout.metaAt}near:${token}`
      const slot = owners.indexOf(link.node)
      return slot < 0 ? undefined : `${layout.metaAt}near:{${tagOf(slot)}}:${token}`
    }

    const ticks = Effect.repeat(
      Effect.clockWith((clock) =>
        Effect.sync(() => {
          const now = clock.unsafeCurrentTimeMillis()
          for (const each of links.values()) tick(each, now)
        })
      ),
      Schedule.spaced(Duration.millis(options.pingInterval))
    )

    if (on._tag === "Redis") {
      const { client, subscriber } = on
      return Effect.acquireRelease(
        Effect.sync(() => ensure(link("Redis", client, subscriber, "the store's connection"))),
        () =>
          Effect.sync(() => {
            closed = true
            stopAttempts()
            near.close()
            wakeAll()
            for (const each of links.values()) each.detach()
            subscriber.disconnect()
            // A client of the caller's goes on without our tracking.
            if (on.callersClient && client.status === "ready") client.call("CLIENT", "TRACKING", "OFF").catch(() => {})
          })
      ).pipe(Effect.zipRight(Effect.forkScoped(ticks)), Effect.as(tracking(waiting)))
    }

    const { cluster } = on
    const remove = (each: Link) => {
      each.gone = true
      each.detach()
      links.delete(each.node)
      each.tracker.disconnect()
      each.subscriber.disconnect()
    }
    /**
     * Follows the cluster's slot map, which ioredis refreshes when it meets a redirection, a
     * node it cannot reach, and periodically when told to: a link per master that serves
     * slots, and the near cache emptied when any slot changed hands.
     */
    const follow = () => {
      if (closed || cluster.status !== "ready") return
      const next: Array<string | undefined> = new Array(16384)
      for (let slot = 0; slot < 16384; slot++) next[slot] = cluster.slots[slot]?.[0]
      const moved = owners.length > 0 && next.some((node, slot) => node !== owners[slot])
      owners = next
      if (moved) {
        near.empty()
        wakeAll()
        fork(Effect.logDebug("cacheback: near cache emptied: slots of the cluster moved"))
      }
      const masters = new Set<string>()
      for (const node of next) if (node !== undefined) masters.add(node)
      for (const each of Array.from(links.values())) {
        if (!masters.has(each.node)) remove(each)
      }
      for (const node of masters) {
        if (links.has(node)) continue
        const colon = node.lastIndexOf(":")
        const host = node.slice(0, colon)
        const port = Number(node.slice(colon + 1))
        near.close()
        ensure(link(node, on.connect(host, port), on.connect(host, port), `the tracking connection to ${node}`))
      }
    }
    return Effect.acquireRelease(
      Effect.sync(() => {
        cluster.on("refresh", follow)
        cluster.on("ready", follow)
        follow()
      }),
      () =>
        Effect.sync(() => {
          closed = true
          stopAttempts()
          near.close()
          wakeAll()
          cluster.off("refresh", follow)
          cluster.off("ready", follow)
          for (const each of Array.from(links.values())) remove(each)
        })
    ).pipe(Effect.zipRight(Effect.forkScoped(ticks)), Effect.as(tracking(waiting)))
  })

const tracking = (waiting: Map<string, Set<() => void>>): Tracking => ({
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

/** A hash tag of slot `slot`: the first decimal number that hashes to it (each slot has one below 110,000). */
/** A link writes its sentinel in the first slot its master serves. */
const tagOf = (slot: number): string => {
  let tag = tags.get(slot)
  if (tag === undefined) {
    for (let i = 0; tag === undefined; i++) if (calculateSlot(String(i)) === slot) tag = String(i)
    tags.set(slot, tag)
  }
  return tag
}
const tags = new Map<number, string>()
