/**
 * The demo: a read that takes ~300 ms, cached with short lifetimes on a live clock, read
 * every 250 ms. The timeline shows a synchronous miss, hits, stale reads answered at once
 * while a refresh runs in the background, the refreshed value, and a value too old to
 * serve being fetched while the caller waits.
 *
 *   npm run demo
 */
import { Clock, Console, Effect, Layer } from "effect"
import { CacheStore, Job, RefreshQueue } from "effect-cacheback"

let version = 0
const report = Job.make({
  name: "report",
  fetch: (day: string) =>
    Effect.sleep("300 millis").pipe(Effect.andThen(() => ({ day, version: ++version })))
}).pipe(
  Job.withLifetime("1 second"), // fresh for 1 s after each fetch
  Job.withRefreshTimeout("1 second"), // a stale value is served for up to 1 s while it refreshes
  Job.withStaleRefresh({ syncAfter: "2500 millis" }) // older than that: fetch while the caller waits
)

const read = (start: number) =>
  Effect.gen(function*() {
    const before = yield* Clock.currentTimeMillis
    const { status, syncFetch, value } = yield* Job.lookup(report, "2024-05-01")
    const after = yield* Clock.currentTimeMillis
    const how = syncFetch === true ? "fetched while waiting" : syncFetch === false ? "refresh queued" : ""
    yield* Console.log(
      `${((before - start) / 1000).toFixed(2).padStart(5)} s  ${status.padEnd(5)}  ` +
        `${String(after - before).padStart(4)} ms  v${value.version}  ${how}`
    )
  })

const program = Effect.gen(function*() {
  const start = yield* Clock.currentTimeMillis
  yield* Console.log("  time  status  latency  value")
  for (let i = 0; i < 12; i++) {
    yield* read(start)
    yield* Effect.sleep("250 millis")
  }
  yield* Console.log("... no reads for 3 s: the value grows older than syncAfter ...")
  yield* Effect.sleep("3 seconds")
  yield* read(start)
  yield* read(start)
})

program.pipe(
  Effect.provide(Layer.mergeAll(CacheStore.layerMemory({ capacity: 1_000 }), RefreshQueue.layerMemory({ concurrency: 4 }))),
  Effect.runPromise
)
