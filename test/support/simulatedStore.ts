/**
 * One simulated process over the simulated Redis (DESIGN.md §11): the Redis store over one
 * simulated connection (`RedisCacheStore.makeOver`, as each process of a deployment has it)
 * and `TestRefreshQueue`, for the store scenarios of `kit.ts`. An effect runs as a fiber of
 * the process on the world's scheduler and clock: time moves only when every fiber is idle,
 * so a scenario that sleeps or polls ends at once in real time, and a seed gives one run.
 */
import { Cause, Effect, Exit, Layer } from "effect"
import type { CacheStore, RefreshQueue } from "effect-cacheback"
import { TestRefreshQueue } from "effect-cacheback"
import { forkIn, inWorld, storeOver } from "../../src/testing/internal/deployment.js"
import { SimulatedRedis } from "../../src/testing/internal/redis.js"
import { type Actor, World } from "../../src/testing/internal/world.js"

export interface SimulatedStoreOptions {
  readonly seed?: number
  readonly prefix?: string
  readonly nearCache?: { readonly capacity: number }
  /** How long an effect may take, in the world's time (ms). Default 10 minutes. */
  readonly within?: number
}

/** What a run may need: the store, and the test queue the kit's scenarios drain. */
export type Services = CacheStore.CacheStore | RefreshQueue.RefreshQueue | TestRefreshQueue.TestRefreshQueue

export const simulatedStore = (options: SimulatedStoreOptions = {}) => {
  const seed = options.seed ?? 0
  const world = new World(seed)
  // The deployment's default latency (Simulation.make's): 0–2 ms each way.
  const redis = new SimulatedRedis(world, { min: 0, max: 2 }, () => {})
  const actor: Actor = { name: "p0", alive: true }
  const connection = redis.connect(actor, { mode: "up", slow: 0, invalidationDelay: 0 })
  const layer = Layer.merge(
    storeOver(connection, {
      prefix: options.prefix ?? "sim",
      ...(options.nearCache !== undefined ? { nearCache: options.nearCache } : {})
    }),
    TestRefreshQueue.layer
  )
  const within = options.within ?? 600_000
  let runs = 0

  /**
   * Runs `effect` with a fresh store layer (built and closed by this run; Redis keeps its
   * keys between runs, as a restarted process finds them) until its fiber exits, driving the
   * world a second of its time at a time. Answers its exit, or a defect naming why it did not
   * end (its time ran out, or the world stopped).
   */
  const run = <A, E>(effect: Effect.Effect<A, E, Services>): Exit.Exit<A, E> => {
    let exit: Exit.Exit<A, E> | undefined
    const program = effect.pipe(Effect.provide(layer), inWorld(world, actor, `${seed}:${++runs}`))
    forkIn(world, actor, program, (fiber) => fiber.addObserver((done) => (exit = done)))
    const deadline = world.now + within
    while (exit === undefined && world.now < deadline) {
      if (!world.runUntil(Math.min(world.now + 1_000, deadline), 10_000_000)) {
        return Exit.die(new Error(`the world ran ${world.steps} tasks without the effect ending`))
      }
    }
    return exit ?? Exit.die(new Error(`the effect did not end within ${within} ms of the world's time`))
  }

  /** `run`, throwing the failure (an assertion's error as it was thrown) for vitest to report. */
  const runOrThrow = <A, E>(effect: Effect.Effect<A, E, Services>): A => {
    const exit = run(effect)
    if (Exit.isSuccess(exit)) return exit.value
    throw Cause.squash(exit.cause)
  }

  return { world, redis, connection, layer, run, runOrThrow }
}
