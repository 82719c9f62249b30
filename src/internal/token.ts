/**
 * Tokens unique to one write (an entry's, a lock holder's, a tag's): 106 random bits from
 * Effect's `Random`, as 22 base-36 characters. From `Random` rather than `crypto`, so that a
 * test that fixes the random service (a simulation's seed) gets the same tokens every run.
 */
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"

const part = (n: number) => n.toString(36).padStart(11, "0")

export const make: Effect.Effect<string> = Effect.zipWith(Random.nextInt, Random.nextInt, (a, b) => part(a) + part(b))
