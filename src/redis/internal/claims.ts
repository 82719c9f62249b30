/**
 * One fetch of a key across processes (DESIGN.md §3.1): `CacheStore.Service.claim` on Redis.
 *
 * A lock per key at `<prefix>|lock:<key>` (on a cluster `<prefix>|lock:{<key>}`, in the
 * slot of its entry: `keys.ts`), taken with a random token and a short TTL by a script that
 * also reads the entry (the taker reads it again after taking the lock: another process may
 * have stored it a moment before), renewed while its holder fetches and stores,
 * released by a token-checked script: deleted once the value is stored, or replaced by a
 * mark `!<token>` when the fetch ended without a value. The processes that find it taken
 * wait for the value: woken by the tracking of the near cache when it is on (a change of the
 * entry or of the lock), else by polling with backoff. A mark sends them to fetch themselves;
 * a lock that vanished (released, or expired with its holder) sends them to take it.
 *
 * Every Redis fault, and a command slower than the store's timeout, answers `Alone`: each
 * process then single-flights by itself, and nothing fails.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import type * as Scope from "effect/Scope"
import type { Cluster, Redis } from "ioredis"
import type { Claim, ClaimOptions } from "../../CacheStore.js"
import type * as Entry from "../../Entry.js"
import type { SchemaOf } from "../../internal/codec.js"
import * as Token from "../../internal/token.js"
import type { Layout } from "./keys.js"
import * as Scripts from "./scripts.js"
import type { Tracking } from "./tracking.js"
import * as Wire from "./wire.js"

export interface ClaimSettings {
  readonly client: Redis | Cluster
  /** The store layer's: a holder's renewal runs in it, and ends with it. */
  readonly scope: Scope.Scope
  /** Where a key's entry and lock are. */
  readonly layout: Layout
  /** The lock's TTL: what a holder that dies costs the others. */
  readonly ttl: number
  /** The store's command timeout. */
  readonly timeout: number
  /** Wakes the waiting processes when the near cache tracks the key space. */
  readonly tracking: Tracking | undefined
  /**
   * Whether Redis answered the store's last read. When it did not (down, or a read timed
   * out), a claim answers `Alone` at once: the read already spent its store timeout on the
   * lookup, and must not spend another on the lock (DESIGN.md §6).
   */
  readonly answering: () => boolean
}

/** The first and the longest pause between two looks of a waiting process. */
const firstPoll = 10
const lastPoll = 250

const alone: Claim<never> = { _tag: "Alone" }

export const make = (settings: ClaimSettings) => {
  const { client, layout, scope, timeout, tracking, ttl } = settings
  const command = (script: Scripts.Script, args: ReadonlyArray<string | number>, within = timeout) =>
    within <= 0
      ? Effect.fail(new Error("timed out"))
      : Effect.tryPromise(() => Scripts.run(client, script, args)).pipe(
        Effect.timeoutFail({ duration: Duration.millis(within), onTimeout: () => new Error("timed out") })
      )

  // The holder's token from Effect's `Random`: a test that fixes the seed gets the same tokens.
  const claim = <A>(key: string, schema: SchemaOf<A> | undefined, options: ClaimOptions<A>, token: string): Effect.Effect<Claim<A>> => {
    const lock = layout.lock(key)
    const entryKey = layout.entry(key)
    const accepted = (text: unknown): Entry.Value<A> | undefined => {
      if (typeof text !== "string") return undefined
      const entry = Wire.parse(schema, text)
      return Either.isRight(entry) && options.accept(entry.right) ? entry.right : undefined
    }

    /** Holding the lock: renewed until released, once. */
    // Renewed three times per TTL; it stops when the lock is no longer this process's, and
    // at the caller's deadline (its fetch cannot outlive it): a holder that never releases
    // costs the others one TTL after that, never more.
    const renewing = Effect.repeat(
      Effect.zipRight(Effect.sleep(Duration.millis(ttl / 3)), command(Scripts.renew, [lock, token, ttl])),
      { while: (renewed) => renewed === 1 }
    )
    const won = Effect.map(
      Effect.forkIn(
        Effect.ignore(Effect.clockWith((clock) => {
          const left = options.until - clock.unsafeCurrentTimeMillis()
          return Number.isFinite(left) ? Effect.timeout(renewing, Duration.millis(Math.max(0, left))) : renewing
        })),
        scope
      ),
      (renewing): Claim<A> => {
        let released = false
        return {
          _tag: "Won",
          release: (stored) =>
            Effect.suspend(() => {
              if (released) return Effect.void
              released = true
              return Fiber.interrupt(renewing).pipe(
                Effect.zipRight(command(Scripts.release, [lock, token, stored ? "" : `!${token}`, ttl])),
                Effect.ignore
              )
            })
        }
      }
    )

    /** Takes the lock, or finds who holds it. */
    type Taken = Claim<A> | { readonly _tag: "Held"; readonly holder: string }
    // First a command of the read, within what is left of its store timeout; after a wait,
    // within the store timeout and the caller's deadline.
    // A lock command this process gave up on may still run on Redis and take the lock: it
    // is then released as failed (`!<token>`, only if still this token's), in the store's
    // scope, so that the others fetch at once rather than wait out its TTL.
    const giveBack = Effect.asVoid(Effect.forkIn(Effect.ignore(command(Scripts.release, [lock, token, `!${token}`, ttl])), scope))
    const take = (within: (now: number) => number): Effect.Effect<Taken, unknown> => Effect.flatMap(
      Effect.clockWith((clock) => {
        const left = within(clock.unsafeCurrentTimeMillis())
        const sent = command(Scripts.acquire, [lock, entryKey, token, ttl], left)
        return left > 0 ? Effect.tapError(sent, () => giveBack) : sent
      }),
      (reply): Effect.Effect<Taken> => {
        const [holder, text] = reply as [string, string | null]
        const found = accepted(text)
        if (holder === token) {
          if (found === undefined) return won
          return Effect.as(Effect.ignore(command(Scripts.release, [lock, token, "", ttl])), { _tag: "Found", entry: found })
        }
        return Effect.succeed(found === undefined ? { _tag: "Held", holder } : { _tag: "Found", entry: found })
      }
    )

    /** Waits for the value of `holder`'s fetch; takes the lock if it vanishes without one. */
    const wait = (holder: string, pause: number): Effect.Effect<Claim<A>, unknown> =>
      Effect.clockWith((clock) => {
        const left = options.until - clock.unsafeCurrentTimeMillis()
        if (left <= 0) return Effect.succeed(alone)
        return Effect.zipRight(
          pauseFor(key, Math.min(pause, left)),
          Effect.flatMap(command(Scripts.peek, [lock, entryKey]), (reply) => {
            const [held, text] = reply as [string | null, string | null]
            const found = accepted(text)
            if (found !== undefined) return Effect.succeed<Claim<A>>({ _tag: "Found", entry: found })
            const next = Math.min(pause * 2, lastPoll)
            if (held === holder) return wait(holder, next)
            // Its fetch ended without a value: fetch here.
            if (held !== null && held.startsWith("!")) return Effect.succeed(alone)
            return Effect.flatMap(
              take((now) => Math.min(timeout, options.until - now)),
              (taken) => taken._tag === "Held" ? wait(taken.holder, firstPoll) : Effect.succeed(taken)
            )
          })
        )
      })

    /** Sleeps `millis`, or less when tracking sees the key's entry or lock change. */
    const pauseFor = (key: string, millis: number): Effect.Effect<void> => {
      const sleep = Effect.sleep(Duration.millis(millis))
      if (tracking === undefined) return sleep
      const woken = Effect.async<void>((resume) => {
        const stop = tracking.onChange(key, () => resume(Effect.void))
        return Effect.sync(stop)
      })
      return Effect.raceFirst(woken, sleep)
    }

    // A key whose entry and lock are in two slots of a cluster cannot take a lock by script.
    if (!settings.answering() || !layout.lockable(key)) return Effect.succeed(alone)
    return take((now) => options.since + timeout - now).pipe(
      Effect.flatMap((taken) => taken._tag === "Held" ? wait(taken.holder, firstPoll) : Effect.succeed(taken)),
      Effect.orElseSucceed(() => alone as Claim<A>)
    )
  }
  return <A>(key: string, schema: SchemaOf<A> | undefined, options: ClaimOptions<A>): Effect.Effect<Claim<A>> =>
    Effect.flatMap(Token.make, (token) => claim(key, schema, options, token))
}
