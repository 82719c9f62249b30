/**
 * One effect in one simulated process over the simulated Redis, on the world's clock: how the
 * store scenarios every store passes run on the simulated Redis too (its `CacheStore` is the
 * Redis store over it; the rest of the context is the caller's layer).
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import type { Redis } from "ioredis"
import * as CacheStore from "../../CacheStore.js"
import * as RedisCacheStore from "../../redis/RedisCacheStore.js"
import { SimulatedRedis } from "./redis.js"
import { World } from "./world.js"

export interface AloneOptions {
  readonly seed?: number
  readonly nearCache?: { readonly capacity: number }
  /** How long the effect may take, in the world's time. Default 10 minutes. */
  readonly within?: number
}

export const runAlone = <A, E, R>(
  effect: Effect.Effect<A, E, R | CacheStore.CacheStore>,
  layer: Layer.Layer<Exclude<R, CacheStore.CacheStore>>,
  options: AloneOptions = {}
): Exit.Exit<A, E | string> => {
  const world = new World(options.seed ?? 0)
  const redis = new SimulatedRedis(world, { min: 0, max: 1 }, () => {})
  const actor = { name: "p0", alive: true }
  const store = Layer.scoped(
    CacheStore.CacheStore,
    RedisCacheStore.makeOver(redis.connect(actor, { mode: "up", slow: 0, invalidationDelay: 0 }) as unknown as Redis, {
      prefix: "alone",
      ...(options.nearCache !== undefined ? { nearCache: options.nearCache } : {})
    })
  )
  let exit: Exit.Exit<A, E> | undefined
  const program = effect.pipe(
    Effect.provide(Layer.merge(store, layer) as Layer.Layer<R | CacheStore.CacheStore>),
    Effect.withClock(world.clockOf(actor)),
    Effect.withRandom(Random.make(options.seed ?? 0))
  )
  world.task(actor, () => {
    Effect.runFork(program, { scheduler: world.schedulerOf(actor) }).addObserver((done) => (exit = done))
  })
  const within = options.within ?? Duration.toMillis(Duration.minutes(10))
  while (exit === undefined && world.now < within) world.runUntil(world.now + 1_000)
  return exit ?? Exit.fail(`the effect did not end within ${within} ms of the world's time`)
}
