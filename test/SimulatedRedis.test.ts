/**
 * The simulated Redis passes the store scenarios every store passes (`support/kit.ts`), run
 * as the real-Redis suite runs them (`integration/redis-store.test.ts`): the Redis store over
 * a simulated connection, on the world's scheduler and clock (`support/simulatedStore.ts`).
 * A scenario that passes on real Redis and fails here is a difference of the simulation.
 */
import { describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { type Job, TestRefreshQueue } from "effect-cacheback"
import { lostWriteScenario, supersededAtLeast, tagRaceScenario, tagScenario } from "./support/kit.js"
import { simulatedStore } from "./support/simulatedStore.js"
import { poll, storedValue } from "./integration/fixtures/redis.js"

/** Waits until a read's write of `input` lands: it runs in the background, after the answer. */
const isStored = <A>(job: Job.Job<any, A, any, any, any, any, any, any>, input: unknown) =>
  poll("the read's value is stored", 2_000, Effect.map(storedValue(job, input), Option.getOrUndefined))

/** A job name of this suite's: a job's metrics are per name, for the whole process. */
const named = (name: string) => `${name}@simulated`

describe("RedisCacheStore on the simulated Redis", () => {
  for (const seed of [1, 2, 3]) {
    describe(`seed ${seed}`, () => {
      const at = (label: string) => `${label}-${seed}`

      it("tags: invalidating a tag makes its entries stale (served, refreshed), leaving others fresh", () => {
        simulatedStore({ seed, prefix: at("tags") }).runOrThrow(
          tagScenario(named(`taggedStore${seed}`), {
            stored: isStored,
            // The stale read queues its refresh after it answered.
            queued: poll("the refresh is queued", 2_000, Effect.map(TestRefreshQueue.pending, (tasks) => tasks.length > 0 || undefined))
          })
        )
      })

      it("tags: a fetch that began before an invalidation of its tag stores an entry that is stale at once", () => {
        simulatedStore({ seed, prefix: at("tags-race") }).runOrThrow(tagRaceScenario(named(`taggedRaceStore${seed}`), isStored))
      })

      it("no lost write: a set, delete or invalidate during a slower fetch is never overwritten by it", () => {
        simulatedStore({ seed, prefix: at("lost-write") }).runOrThrow(lostWriteScenario(named(`lostWrite${seed}`), supersededAtLeast))
      })
    })
  }
})
