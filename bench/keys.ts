/**
 * The key memo under big inputs (DESIGN.md §6): what stays on the heap after a job has
 * keyed 300 distinct 1 MB inputs on a store that keeps one entry. The memo must hold none of
 * them, so the heap grows by what the store and the last input hold, not by 300 MB.
 */
import { Effect, Layer } from "effect"
import { CacheStore, Job, RefreshQueue } from "effect-cacheback"
import { record } from "./harness.js"

const inputs = 300
const megabyte = 2 ** 20

/** Heap growth after GC once `job` has read `inputs` distinct inputs made by `input`. */
const growth = <I>(what: string, job: Job.Job<I, number>, input: (i: number) => I) =>
  Effect.gen(function*() {
    const gc = (globalThis as { gc?: () => void }).gc
    if (gc === undefined) {
      record({ section: "keys", what, ours: "run with node --expose-gc", baseline: "—", ratio: "—", target: "< 50 MB", met: undefined })
      return
    }
    gc()
    const before = process.memoryUsage().heapUsed
    for (let i = 0; i < inputs; i++) yield* Job.get(job, input(i))
    gc()
    const grown = (process.memoryUsage().heapUsed - before) / megabyte
    record({ section: "keys", what, ours: `+${grown.toFixed(1)} MB`, baseline: "—", ratio: "—", target: "< 50 MB", met: grown < 50 })
  }).pipe(
    Effect.provide(Layer.mergeAll(CacheStore.layerMemory({ capacity: 1 }), RefreshQueue.layerMemory({ concurrency: 4 })))
  )

// Each input is a new 1 MB string (distinct in its first characters), built when it is read
// so that the loop itself holds only the current one.
const text = (i: number) => `${i}:`.padEnd(megabyte, "x")

const strings = growth(
  "heap after GC, 300 distinct 1 MB string inputs through layerMemory({ capacity: 1 })",
  Job.make({ name: "bench.keys.string", fetch: (input: string) => Effect.succeed(input.length) }),
  text
)

const objects = growth(
  "heap after GC, 300 distinct { text: 1 MB } inputs through layerMemory({ capacity: 1 })",
  Job.make({ name: "bench.keys.object", fetch: (input: { readonly text: string }) => Effect.succeed(input.text.length) }),
  (i) => ({ text: text(i) })
)

export const keys = Effect.all([strings, objects], { discard: true })
