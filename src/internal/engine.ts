/**
 * The engine's state in one runtime (DESIGN.md §4): what reads of one store share in one
 * process. Every store service carries one, built with the store by its layer
 * (`CacheStore.make`) in the layer's scope, so two runtimes in one process share nothing but
 * the store and queue they share on purpose.
 *
 * - the budget of background work (writes and enqueues after a read's decision) and the
 *   keys it runs for, one unit per key at a time;
 * - the fibers it started (background work, shared fetches), which end with the layer's
 *   scope: given `closeTimeout` to finish, then interrupted;
 * - the early refreshes asked for, once per fetched value;
 * - the single flights of the store's keys;
 * - the throttle of fault warnings.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Scope from "effect/Scope"
import type { Backend, Service } from "../CacheStore.js"
import { Throttle } from "./faults.js"
import * as Metrics from "./metrics.js"
import { integer, positiveMillis } from "./options.js"
import { Flights } from "./singleFlight.js"

/**
 * The sizes of a store's engine state: options of every store layer.
 *
 * @since 0.3.0
 */
export interface EngineOptions {
  /**
   * The most units of background work (a write-back, a pending marker, the store of a
   * fetched value, an enqueue) running at once for this store in this runtime; beyond, they
   * are skipped and counted in `cacheback_background_skipped`. Default 1,000.
   */
  readonly maxBackground?: number
  /** The most early refreshes remembered as asked for (`Job.withEarlyRefresh`). Default 10,000. */
  readonly maxEarlyRequests?: number
  /**
   * When the store's layer is closed (its runtime disposed), how long background work and
   * shared fetches still running may take to finish (a write half done on disk is worse than
   * none) before they are interrupted. Real time, so that a test clock cannot hold a
   * shutdown. Default 1 second.
   */
  readonly closeTimeout?: Duration.DurationInput
  /**
   * The deadline of one unit of background work: past it, the unit is interrupted, its slot
   * freed, logged and counted in `cacheback_background_timeouts` (a store or queue that
   * hangs cannot hold the budget). Also how long a tombstone outlives its job's fetch
   * deadline. Default 10 seconds.
   */
  readonly backgroundTimeout?: Duration.DurationInput
}

/** The sizes of an engine, checked: a bad one throws at once, naming where it was given. */
export interface Sizes {
  readonly maxBackground: number
  readonly maxEarlyRequests: number
  readonly closeTimeout: number
  readonly backgroundTimeout: number
}

export const sizes = (where: string, options: EngineOptions | undefined): Sizes => ({
  maxBackground: integer(where, "maxBackground", options?.maxBackground ?? 1_000, 1),
  maxEarlyRequests: integer(where, "maxEarlyRequests", options?.maxEarlyRequests ?? 10_000, 1),
  closeTimeout: positiveMillis(`${where} closeTimeout`, options?.closeTimeout ?? "1 second"),
  backgroundTimeout: positiveMillis(`${where} backgroundTimeout`, options?.backgroundTimeout ?? "10 seconds")
})

/** A unit of background work under the watchdog. */
interface Unit {
  readonly fiber: Fiber.RuntimeFiber<unknown, unknown>
  readonly job: string
  readonly key: string
  readonly deadline: number
}

export class Engine {
  readonly flights: Flights
  readonly throttle = new Throttle()
  private running = 0
  private readonly busy = new Set<string>()
  private readonly early = new Map<string, number>()
  private readonly fibers = new Set<Fiber.RuntimeFiber<unknown, unknown>>()
  private readonly watched = new Set<Unit>()
  private watching = false

  /**
   * `clock` is the layer's: the deadlines of background work and the watchdog's sleep are
   * on one clock, whichever fiber started the work (a `TestClock` when the layer was built
   * under one).
   */
  constructor(private readonly work: Scope.Scope, readonly sizes: Sizes, private readonly clock: Clock.Clock) {
    this.flights = new Flights((effect) => this.start(effect))
  }

  /** Units of background work running now. */
  get backgroundRunning(): number {
    return this.running
  }

  /** Fibers this engine started that still run: what closing its layer ends. */
  get fibersRunning(): number {
    return this.fibers.size
  }

  /**
   * `effect` in a fiber of the engine, interruptible whatever region it is started from:
   * closing the layer's scope ends it.
   */
  start<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<Fiber.RuntimeFiber<A, E>, never, R> {
    return Effect.map(Effect.forkIn(Effect.interruptible(effect), this.work), (fiber) => {
      this.fibers.add(fiber)
      fiber.addObserver(() => this.fibers.delete(fiber))
      return fiber
    })
  }

  /**
   * Forks `work` for `key`, so that the caller never waits for the store or the queue after
   * its decision: one unit at a time per key (a read that finds one running for its key
   * leaves the work to it), at most `maxBackground` at once. The caller then yields once:
   * in-process stores and queues, which answer at once, have done their part before it
   * answers (a test sees the task queued).
   */
  fork(job: string, key: string, work: Effect.Effect<void>): Effect.Effect<void> {
    return Effect.zipRight(
      Effect.uninterruptible(Effect.suspend(() => {
        if (this.busy.has(key) || !this.admit(job)) return Effect.void
        this.busy.add(key)
        return Effect.flatMap(this.start(work), (fiber) => {
          const unit = this.watch(fiber, job, key)
          // An observer rather than `ensuring`: a fiber started in a closed scope (a disposed
          // runtime) is interrupted before it runs anything, and its slot must still be freed.
          fiber.addObserver(() => {
            this.watched.delete(unit)
            this.busy.delete(key)
            this.running--
          })
          return this.watchdogNeeded()
        })
      })),
      Effect.yieldNow()
    )
  }

  /**
   * `work` counted in the budget while it runs in the current fiber (the store of a shared
   * fetch, in its flight's fiber), watched for its deadline; or skipped (counted) when the
   * budget is spent.
   */
  counted(job: string, work: Effect.Effect<void>): Effect.Effect<void> {
    return Effect.withFiberRuntime((fiber) => {
      if (!this.admit(job)) return Effect.void
      const unit = this.watch(fiber, job, "")
      return Effect.ensuring(Effect.zipRight(this.watchdogNeeded(), work), Effect.sync(() => {
        this.watched.delete(unit)
        this.running--
      }))
    })
  }

  /**
   * Puts a unit of background work under the watchdog: one fiber per engine, sleeping until
   * the earliest deadline of the units running (none while none runs), that interrupts each
   * unit past its deadline, frees its slot, counts and logs it (throttled). One timer for
   * all the units rather than a race per unit: a unit runs in its own fiber, and a store
   * that answers at once has done its part before the read answers.
   */
  private watch(fiber: Fiber.RuntimeFiber<unknown, unknown>, job: string, key: string): Unit {
    const unit: Unit = { fiber, job, key, deadline: this.clock.unsafeCurrentTimeMillis() + this.sizes.backgroundTimeout }
    this.watched.add(unit)
    return unit
  }

  /** Starts the watchdog, from the fiber that asks (its clock and logger), unless it runs. */
  private watchdogNeeded(): Effect.Effect<void> {
    if (this.watching) return Effect.void
    this.watching = true
    return Effect.asVoid(Effect.forkIn(Effect.interruptible(Effect.withClock(this.watchdog, this.clock)), this.work))
  }

  private readonly watchdog: Effect.Effect<void> = Effect.suspend(() => {
    if (this.watched.size === 0) {
      this.watching = false
      return Effect.void
    }
    return Effect.clockWith((clock) => {
      const now = clock.unsafeCurrentTimeMillis()
      let earliest = Infinity
      const late: Array<Unit> = []
      for (const unit of this.watched) {
        if (unit.deadline <= now) late.push(unit)
        else if (unit.deadline < earliest) earliest = unit.deadline
      }
      if (late.length === 0) return Effect.zipRight(Effect.sleep(Duration.millis(earliest - now)), this.watchdog)
      return Effect.zipRight(Effect.forEach(late, (unit) => this.timedOut(unit), { discard: true }), this.watchdog)
    })
  })

  private timedOut(unit: Unit): Effect.Effect<void> {
    this.watched.delete(unit)
    unit.fiber.unsafeInterruptAsFork(FiberId.none)
    Metrics.bump(Metrics.forJob(unit.job).backgroundTimeouts)
    return this.throttle.fault(
      "background",
      unit.job,
      `background work${unit.key === "" ? "" : ` for "${unit.key}"`} (a write or an enqueue after a read) did not finish within ` +
        `backgroundTimeout (${this.sizes.backgroundTimeout} ms) and was interrupted; is the store or the queue hung?`
    )
  }

  /**
   * Whether an early refresh of `key` for the value fetched at `fetchedAt` is to be asked
   * for: once per fetched value (after that one is waiting or running). Forgetting, when
   * the table is full, only lets a key be asked once more.
   */
  askEarly(key: string, fetchedAt: number): boolean {
    if (this.early.get(key) === fetchedAt) return false
    if (this.early.size >= this.sizes.maxEarlyRequests) this.early.clear()
    this.early.set(key, fetchedAt)
    return true
  }

  /** Waits, at most `closeTimeout` of real time, for the fibers still running. */
  drain(): Effect.Effect<void> {
    return Effect.suspend(() =>
      this.fibers.size === 0 ? Effect.void : Fiber.awaitAll(Array.from(this.fibers)).pipe(
        Effect.interruptible,
        Effect.timeout(Duration.millis(this.sizes.closeTimeout)),
        Effect.ignore,
        Effect.withClock(Clock.make())
      )
    )
  }

  private admit(job: string): boolean {
    if (this.running >= this.sizes.maxBackground) {
      Metrics.bump(Metrics.forJob(job).backgroundSkipped)
      return false
    }
    this.running++
    return true
  }
}

/**
 * The store service of `backend`: the backend with an engine of `sizes` (checked already),
 * in the scope of the store's layer. What every store layer builds. The engine's fibers run
 * in a scope of their own under the layer's, closed after the drain (finalizers run last
 * added first).
 */
export const attach = (backend: Backend, sizes: Sizes): Effect.Effect<Service, never, Scope.Scope> =>
  Effect.flatMap(Effect.zip(Effect.scope, Effect.clock), ([scope, clock]) =>
    Effect.flatMap(Scope.fork(scope, ExecutionStrategy.sequential), (work) => {
      const engine = new Engine(work, sizes, clock)
      return Effect.as(Scope.addFinalizer(scope, engine.drain()), { ...backend, engine })
    }))
