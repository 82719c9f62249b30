/**
 * `npm run bench`: every path against its baseline in the same run, printed and written to
 * BENCHMARKS.md. Not part of `npm test`: numbers are reported, never asserted.
 */
import { Effect } from "effect"
import { writeFileSync } from "node:fs"
import { machine, rows } from "./harness.js"
import { faults } from "./faults.js"
import { keys } from "./keys.js"
import { memory } from "./memory.js"
import { policies } from "./policies.js"
import { near } from "./near.js"
import { queue } from "./queue.js"
import { redis } from "./redis.js"

const report = () => {
  const table = rows.map((row) =>
    `| ${row.section} | ${row.what} | ${row.ours} | ${row.baseline} | ${row.ratio} | ${row.target} | ${row.met === undefined ? "—" : row.met ? "met" : "missed"} |`
  )
  return [
    "# Benchmarks",
    "",
    "Written by `npm run bench` (`node --expose-gc --import tsx bench/index.ts`). Each path and its",
    "baseline run alternately in one process, seven rounds each after a warm-up; the table shows",
    "the medians and their ratio.",
    "",
    `Machine: ${machine()}. Run: ${new Date().toISOString()}.`,
    "",
    "| section | path | ours | baseline | ratio | target | |",
    "|---|---|---|---|---|---|---|",
    ...table,
    "",
    "On this virtual machine the same run varies by ±15% from one run to the next; a ratio within",
    "that of its target is a draw.",
    "",
    "## Where the time goes",
    "",
    "- **Redis hit, sequential.** A profile (`node --cpu-prof`, 60,000 sequential `Job.get` on",
    "  Redis) puts 32% in the socket write (`writeUtf8String`), 31% idle waiting for Redis, 15% in",
    "  Node's stream code, 6% GC, 5% in Effect's runtime (resuming the fiber) and 4% in",
    "  effect-cacheback (key, decode, decision). A round trip here costs ~60 µs; the ~6 µs of Effect",
    "  and library work per read is the gap to a bare `await client.get()` loop.",
    "- **Redis hits, 64 in flight.** Concurrent reads share round trips: a lone read is one `GET`",
    "  sent at once, reads that arrive while one is in flight go out together as one `MGET`. A",
    "  round trip then answers 64 reads; what is left per read is Effect resuming 64 fibers and",
    "  decoding 64 entries. ioredis's auto-pipelining was measured too (on the store's client it",
    "  halved sequential hits, because it defers even a lone command to the next tick), so it is",
    "  off; against auto-pipelined raw `GET`s the batching is level (1.01×; 0.85× with a value schema).",
    "- **Redis rows against this machine's baselines.** The machine of the 2026-11-25 runs (2 × Intel",
    "  Xeon) runs the raw baselines much faster than the one of 2026-11-24 (2 × AMD EPYC): raw GETs",
    "  at 64 in flight 149 k/s instead of 67 k/s, raw MGET of 100 389 k keys/s instead of 322 k,",
    "  while `Job.get` at 64 in flight stays at 133–150 k/s on both. The 64-in-flight floor (1.5×)",
    "  was set against the slower baseline. A profile of 64 readers (`--cpu-prof`) shows 20% idle and",
    "  17% GC: one batch in flight per store at a time, so Node waits for Redis between batches;",
    "  two batches in flight is the next thing to try. The same code measured against the code",
    "  before the engine refactor (issue 10), 5 interleaved rounds in fresh processes: memory hit",
    "  0.97×, sequential Redis hit 1.02×, 64 in flight 0.97×, getMany 0.95×.",
    "- **Tagged hits on Redis** read their tags' tokens after the entry: one more round trip",
    "  sequentially (0.47×), batched with the other reads in flight (0.42×; 0.10× when each check",
    "  was an `MGET` of its own).",
    "- **Memory hit.** A hit is one synchronous store read (`unsafeGet`), the decision and a",
    "  counter update with `unsafeUpdate`, without `Effect.gen` and with services read once from",
    "  the fiber; eviction is CLOCK (a read sets a bit) because moving an entry to the back of the",
    "  map on every read cost 40% of a hit.",
    ""
  ].join("\n")
}

Effect.runPromise(Effect.all([memory, queue, keys, policies, redis, near, faults], { discard: true })).then(() => {
  writeFileSync("BENCHMARKS.md", report())
  console.log("wrote BENCHMARKS.md")
})
