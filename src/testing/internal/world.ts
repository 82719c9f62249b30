/**
 * The simulated world's time and scheduling (DESIGN.md §11.2): one clock every process
 * shares, and a deterministic scheduler of every fiber of every process.
 *
 * Each process's runtime gets an Effect `Scheduler` and a `Clock` of its own that both
 * report here: a fiber that is ready to run is a task in one queue of the world; a `sleep` is
 * a timer of the world. The world runs ready tasks (in an order drawn from its seed) until
 * none is left — every process is idle — and only then moves time to the next timer.
 * Nothing waits on real time, and nothing leaves the order to Node's event loop, so a seed
 * gives the same run, byte for byte.
 *
 * Each task and timer belongs to an actor (a process, one incarnation of it): a crashed
 * actor's tasks and timers are dropped, unrun, as a killed process's would be. Written by
 * hand: Effect's `TestClock` moves one runtime's time and waits for real timers and the test
 * fiber's children only.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { RuntimeFiber } from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import type * as Scheduler from "effect/Scheduler"
import { PCGRandom } from "effect/Utils"

/** One incarnation of a process: what its tasks and timers belong to. */
/**
 * A wait that never ends and holds nothing: `Effect.never` keeps a real interval to hold the
 * process open, and a run ends with fibers still waiting (a hung origin, a crashed process),
 * which would keep the test process alive after its last run.
 */
export const forever: Effect.Effect<never> = Effect.async<never>(() => {})

export interface Actor {
  readonly name: string
  alive: boolean
}

interface Timer {
  readonly at: number
  readonly seq: number
  readonly actor: Actor | undefined
  readonly run: () => void
  cancelled: boolean
}

interface Ready {
  readonly actor: Actor
  readonly run: () => void
}

/**
 * The generator behind Effect's `Random` (`effect/Utils`'s `PCGRandom`), seeded by the
 * simulation: the world's own draws (task order, latencies) come from it.
 */
export class Draws {
  private readonly pcg: PCGRandom
  constructor(seed: number) {
    this.pcg = new PCGRandom(seed)
  }
  /** An integer in [0, n). */
  below(n: number): number {
    return n <= 1 ? 0 : this.pcg.integer(n)
  }
  /** An integer in [min, max]. */
  between(min: number, max: number): number {
    return max <= min ? min : min + this.pcg.integer(max - min + 1)
  }
  /** `true` with probability `p`. */
  chance(p: number): boolean {
    return p > 0 && this.pcg.number() < p
  }
}

export class World {
  now = 0
  private seq = 0
  private readonly heap: Array<Timer> = []
  private ready: Array<Ready> = []
  /** The tasks of dead actors: their fibers are frozen, until the run's teardown thaws them. */
  private parked: Array<Ready> = []
  readonly draws: Draws
  /** Tasks run, for the bench and for a run that never settles. */
  steps = 0
  fired = 0

  constructor(seed: number) {
    this.draws = new Draws(seed)
  }

  /** Runs `run` at `at` (not before now), unless cancelled or its actor died. */
  at(at: number, actor: Actor | undefined, run: () => void): Timer {
    const timer: Timer = { at: Math.max(at, this.now), seq: this.seq++, actor, run, cancelled: false }
    this.push(timer)
    return timer
  }

  /** Runs `run` when the world next runs tasks. */
  task(actor: Actor, run: () => void): void {
    this.ready.push({ actor, run })
  }

  /**
   * Runs tasks until none is ready, then the next timer, until the next timer is after
   * `until` (then time stands at `until`). Answers false when `limit` tasks ran first.
   */
  runUntil(until: number, limit = Infinity): boolean {
    for (;;) {
      while (this.ready.length > 0) {
        if (this.steps++ >= limit) return false
        // A task drawn among the ready ones: interleavings differ by seed, and only by seed.
        const i = this.draws.below(this.ready.length)
        const last = this.ready.length - 1
        const task = this.ready[i]!
        this.ready[i] = this.ready[last]!
        this.ready.pop()
        if (task.actor.alive) task.run()
        else this.parked.push(task)
      }
      const next = this.heap[0]
      if (next === undefined || next.at > until) {
        this.now = Math.max(this.now, until)
        return true
      }
      this.pop()
      if (next.cancelled || (next.actor !== undefined && !next.actor.alive)) continue
      this.now = next.at
      this.fired++
      next.run()
    }
  }

  /** Makes the parked tasks ready again (their actors revived). */
  unpark(): void {
    this.ready.push(...this.parked.splice(0))
  }

  /** The Effect `Scheduler` of `actor`'s runtime: its fibers run as tasks of the world. */
  schedulerOf(actor: Actor): Scheduler.Scheduler {
    return {
      shouldYield: (fiber: RuntimeFiber<unknown, unknown>) =>
        fiber.currentOpCount > fiber.getFiberRef(FiberRef.currentMaxOpsBeforeYield)
          ? fiber.getFiberRef(FiberRef.currentSchedulingPriority)
          : false,
      scheduleTask: (task) => this.task(actor, task)
    }
  }

  /** The `Clock` of `actor`'s runtime: the world's time; a sleep is a timer of the world. */
  clockOf(actor: Actor): Clock.Clock {
    const world = this
    return {
      [Clock.ClockTypeId]: Clock.ClockTypeId,
      unsafeCurrentTimeMillis: () => world.now,
      currentTimeMillis: Effect.sync(() => world.now),
      unsafeCurrentTimeNanos: () => BigInt(Math.round(world.now * 1_000_000)),
      currentTimeNanos: Effect.sync(() => BigInt(Math.round(world.now * 1_000_000))),
      sleep: (duration) => {
        const millis = Duration.toMillis(duration)
        if (!Number.isFinite(millis)) return forever
        return Effect.async<void>((resume) => {
          const timer = world.at(world.now + Math.max(0, millis), actor, () => resume(Effect.void))
          return Effect.sync(() => {
            timer.cancelled = true
          })
        })
      }
    }
  }

  private push(timer: Timer) {
    const heap = this.heap
    heap.push(timer)
    let i = heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(heap[i]!, heap[parent]!)) break
      ;[heap[i], heap[parent]] = [heap[parent]!, heap[i]!]
      i = parent
    }
  }

  private pop() {
    const heap = this.heap
    const last = heap.pop()!
    if (heap.length === 0) return
    heap[0] = last
    let i = 0
    for (;;) {
      const left = 2 * i + 1
      const right = left + 1
      let smallest = i
      if (left < heap.length && before(heap[left]!, heap[smallest]!)) smallest = left
      if (right < heap.length && before(heap[right]!, heap[smallest]!)) smallest = right
      if (smallest === i) return
      ;[heap[i], heap[smallest]] = [heap[smallest]!, heap[i]!]
      i = smallest
    }
  }
}

const before = (a: Timer, b: Timer) => a.at < b.at || (a.at === b.at && a.seq < b.seq)
