/**
 * Schedules and traces as timelines: one line per event, one column per actor (processes,
 * workers, then Redis and the queue), so that what each process did at the same moment
 * reads across a line.
 */
import type * as T from "./trace.js"

const width = 30

const cell = (text: string) => (text.length > width ? text.slice(0, width - 1) + "…" : text.padEnd(width))

const table = (actors: ReadonlyArray<string>, rows: ReadonlyArray<{ readonly at: number; readonly actor: string; readonly text: string }>) => {
  const columns = [...actors, "redis/queue"]
  const head = "      ms | " + columns.map(cell).join(" | ")
  const lines = rows.map((row) => {
    const i = columns.indexOf(row.actor)
    const column = i < 0 ? columns.length - 1 : i
    return `${row.at.toFixed(0).padStart(8)} | ` + columns.map((_, j) => cell(j === column ? row.text : "")).join(" | ")
  })
  return [head, ...lines].map((line) => line.trimEnd()).join("\n")
}

const fault = (f: T.Fault): string => {
  switch (f._tag) {
    case "Crash":
      return `CRASH${f.midRefresh === true ? " mid-refresh" : ""} ${f.duration}ms`
    case "Partition":
      return `PARTITION ${f.mode}${f.slow !== undefined ? ` +${f.slow}ms` : ""} ${f.duration}ms`
    case "Invalidations":
      return `INVALIDATIONS ${f.mode}${f.delay !== undefined ? ` +${f.delay}ms` : ""} ${f.duration}ms`
    case "Origin":
      return `ORIGIN ${f.mode}${f.latency !== undefined ? ` +${f.latency}ms` : ""} ${f.duration}ms`
  }
}

const operation = (jobs: ReadonlyArray<{ readonly name: string; readonly inputs: ReadonlyArray<unknown> }>, op: T.Operation): string => {
  const job = jobs[op.job]
  const input = op._tag === "InvalidateTags" ? "" : JSON.stringify(job?.inputs[op.input]) ?? "undefined"
  switch (op._tag) {
    case "Read":
      return `read ${input}`
    case "Set":
      return `set ${input} #${op.value}`
    case "Delete":
      return `delete ${input}`
    case "Invalidate":
      return `invalidate ${input}`
    case "InvalidateTags":
      return `invalidateTags ${op.tags.join(",")}`
  }
}

/** A schedule, a line per step. */
export const ofSchedule = (
  schedule: T.Schedule,
  actors: ReadonlyArray<string>,
  jobs: ReadonlyArray<{ readonly name: string; readonly inputs: ReadonlyArray<unknown> }>
): string =>
  table(
    actors,
    schedule.steps.map((step) => ({
      at: step.at,
      actor: step.actor,
      text: "duration" in step.action ? fault(step.action) : operation(jobs, step.action as T.Operation)
    }))
  )

const ended = (end: number | undefined, at: number) => (end === undefined ? " (never ended)" : ` (${(end - at).toFixed(0)}ms)`)

/** A trace, a line per record; a key shown as its job and input. */
export const ofTrace = (trace: T.Trace): string => {
  const label = (key: string | undefined) => {
    const policy = key === undefined ? undefined : trace.keys[key]
    return policy === undefined ? key : `${policy.job}(${policy.input})`
  }
  return table(
    [...trace.processes, ...trace.workers],
    trace.records.map((record) => {
      switch (record._tag) {
        case "Read":
          return {
            at: record.at,
            actor: record.process,
            text: `read ${label(record.key)} → ${record.failure !== undefined ? `FAILED ${record.failure}` : `${record.status} ${record.value}`}${ended(record.end, record.at)}`
          }
        case "Write":
          return {
            at: record.at,
            actor: record.process,
            text: `${record.op} ${label(record.key) ?? record.tags?.join(",")}${record.value !== undefined ? `=${record.value}` : ""}${record.failure !== undefined ? ` FAILED ${record.failure}` : ""}${ended(record.end, record.at)}`
          }
        case "Fetch":
          return { at: record.at, actor: record.actor, text: `fetch ${label(record.key)} → ${record.failure ?? record.value}${ended(record.end, record.at)}` }
        case "Stored":
          return { at: record.at, actor: "redis/queue", text: `${label(record.key)}: ${record.entry}${record.value !== undefined ? ` ${record.value}` : ""}` }
        case "Task":
          return { at: record.at, actor: "redis/queue", text: `task ${label(record.key)} ${record.event}${record.worker !== undefined ? ` by ${record.worker}` : ""}` }
        case "Fault":
        case "Heal":
          return { at: record.at, actor: record.actor, text: `${record._tag === "Heal" ? "healed: " : ""}${fault(record.fault)}` }
        case "Crashed":
        case "Restarted":
          return { at: record.at, actor: record.actor, text: record._tag === "Crashed" ? "crashed" : "restarted, empty" }
        case "Log":
          return { at: record.at, actor: record.actor, text: `${record.level}: ${record.message}` }
      }
    })
  )
}
