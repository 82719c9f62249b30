/**
 * `npm run bench`: every path against its baseline in the same run, printed and written to
 * BENCHMARKS.md. Not part of `npm test`: numbers are reported, never asserted.
 */
import { Effect } from "effect"
import { writeFileSync } from "node:fs"
import { machine, rows } from "./harness.js"
import { memory } from "./memory.js"
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
    ""
  ].join("\n")
}

Effect.runPromise(Effect.zipRight(memory, redis)).then(() => {
  writeFileSync("BENCHMARKS.md", report())
  console.log("wrote BENCHMARKS.md")
})
