/**
 * Process B of the coherence-lag bench (`near.ts`): reads a key through a near cache in a
 * loop and reports each newer version it reads, with when (`performance.timeOrigin + now`,
 * comparable across processes of one machine). Started with the store's URL and prefix in
 * its environment; stops when its IPC channel closes.
 */
import { Effect, Layer, Schema } from "effect"
import { Job, RefreshQueue } from "effect-cacheback"
import { RedisCacheStore } from "effect-cacheback/redis"

/** The job both processes use: versions written by A with `Job.set`. */
export const versions = Job.make({ name: "bench.near.version", fetch: (_: string) => Effect.succeed({ n: 0 }) }).pipe(
  Job.withLifetime("1 hour"),
  Job.withSchema({ input: Schema.String, value: Schema.Struct({ n: Schema.Number }) })
)

if (process.env.CACHEBACK_BENCH_READER === "1") {
  const layer = Layer.merge(
    RedisCacheStore.layer({ url: process.env.REDIS_URL!, prefix: process.env.CACHEBACK_PREFIX!, nearCache: { capacity: 100 } }),
    RefreshQueue.layerMemory({ concurrency: 1 })
  )
  let stop = false
  process.on("disconnect", () => (stop = true))
  const loop = Effect.gen(function*() {
    yield* Effect.sleep("300 millis") // tracking confirmed
    process.send?.({ type: "ready" })
    let last = -1
    while (!stop) {
      for (let i = 0; i < 20; i++) {
        const { n } = yield* Job.get(versions, "lag")
        if (n > last) {
          last = n
          process.send?.({ type: "seen", n, at: performance.timeOrigin + performance.now() })
        }
      }
      // A turn of the event loop: invalidations arrive through it.
      yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
    }
  })
  Effect.runPromise(Effect.provide(loop, layer)).then(() => process.exit(0))
}
