/**
 * The checkers of a trace (DESIGN.md §11.5): each a pure function of the trace that
 * answers the records breaking its promise. Each is sound before it is strong: where the
 * trace cannot tell (two fetches answered the same value, a read answered from its own
 * fetch, which stored nothing), it takes the reading that breaks nothing.
 */
import type * as T from "./trace.js"

export interface Violation {
  readonly invariant: string
  readonly at: number
  readonly message: string
}

export interface Invariant {
  readonly name: string
  readonly check: (trace: T.Trace) => ReadonlyArray<Violation>
}

/** The near tier's ping interval: how long a silent subscriber goes unnoticed, at most twice. */
const pingInterval = 250
/** How long a simulated connection takes to come back after a partition heals, at most. */
const reconnect = 100

/** Records of a key, each kind in trace order. */
interface Keyed {
  readonly reads: Array<T.ReadRecord>
  readonly writes: Array<T.WriteRecord>
  readonly fetches: Array<T.FetchRecord>
  readonly stored: Array<T.StoredRecord>
}

const byKey = (trace: T.Trace): Map<string, Keyed> => {
  const keys = new Map<string, Keyed>()
  const of = (key: string) => {
    let found = keys.get(key)
    if (found === undefined) {
      found = { reads: [], writes: [], fetches: [], stored: [] }
      keys.set(key, found)
    }
    return found
  }
  for (const key of Object.keys(trace.keys)) of(key)
  for (const record of trace.records) {
    switch (record._tag) {
      case "Read":
        of(record.key).reads.push(record)
        break
      case "Fetch":
        of(record.key).fetches.push(record)
        break
      case "Stored":
        of(record.key).stored.push(record)
        break
      case "Write":
        if (record.key !== undefined) of(record.key).writes.push(record)
        else for (const [key, policy] of Object.entries(trace.keys)) if (policy.job === record.job) of(key).writes.push(record)
        break
    }
  }
  return keys
}

/** The intervals during which a fault was active, for an actor or for all (`origin`). */
const faultWindows = (trace: T.Trace) => {
  const windows: Array<{ readonly actor: string; readonly kind: T.Fault["_tag"]; readonly from: number; readonly to: number; readonly after: number }> = []
  for (const record of trace.records) {
    if (record._tag !== "Fault") continue
    const fault = record.fault
    // A command sent during a partition may still be on its way, or hold up the ones behind
    // it, for its slowness plus a command timeout after the partition heals.
    const after = fault._tag === "Partition" ? (fault.slow ?? 0) + trace.commandTimeout + reconnect : 0
    windows.push({ actor: record.actor, kind: fault._tag, from: record.at, to: record.at + fault.duration, after })
  }
  return {
    /** Whether any fault was active during [from, to]. */
    any: (from: number, to: number) => windows.some((w) => w.from <= to && w.to >= from),
    /** Whether a fault of `actor` itself (not the origin's) was active during [from, to]. */
    own: (actor: string, from: number, to: number) => windows.some((w) => w.actor === actor && w.from <= to && w.to >= from),
    /** Whether `actor` was cut off from Redis (crashed or partitioned, and its commands not yet caught up) during [from, to]. */
    cutOff: (actor: string, from: number, to: number) =>
      windows.some((w) => w.actor === actor && (w.kind === "Crash" || w.kind === "Partition") && w.from <= to && w.to + w.after >= from)
  }
}

/** The latest value commit of `value` at or before `at`. */
const commitOf = (stored: ReadonlyArray<T.StoredRecord>, value: string, at: number): T.StoredRecord | undefined => {
  for (let i = stored.length - 1; i >= 0; i--) {
    const each = stored[i]!
    if (each.at <= at && each.entry === "Value" && each.value === value) return each
  }
  return undefined
}

/**
 * How long after a write a process with a near tier may still answer what it held: the
 * longest invalidation delay and two ping intervals. No lag without a near tier.
 */
const nearLag = (trace: T.Trace) => trace.near ? trace.maxInvalidationDelay + 2 * pingInterval + 50 : 0

/**
 * Whether `value` may be newer than a write that began at `at`: a fetch of it began after, or
 * a set of it ended after (or failed, and is in doubt: Redis may run a command its client gave
 * up on, at any time).
 */
const writtenSince = (records: Keyed, value: string, at: number) =>
  records.fetches.some((f) => f.value === value && f.at >= at) ||
  records.writes.some((w) => w.op === "set" && w.value === value && (w.end === undefined || w.failure !== undefined || w.end >= at))

/** A read that answered a value (not an empty miss, not a failure). */
const answered = (read: T.ReadRecord): read is T.ReadRecord & { value: string; end: number } =>
  read.end !== undefined && read.failure === undefined && read.value !== undefined &&
  !(read.status === "miss" && read.syncFetch === false)

const violation = (invariant: string, at: number, message: string): Violation => ({ invariant, at, message })

const show = (read: T.ReadRecord) => `${read.process}'s read of "${read.key}" at ${read.at} ms`

/**
 * Bounded staleness: a value served is never older (since its fetch) than the job's
 * `syncAfter` ceiling, but where stale-if-error covers its age (`maxStale`). Keys without a
 * ceiling are bounded only by their cache TTL, which this does not check.
 */
export const boundedStaleness: Invariant = {
  name: "boundedStaleness",
  check: (trace) => {
    const out: Array<Violation> = []
    for (const [key, records] of byKey(trace)) {
      const policy = trace.keys[key]
      if (policy?.syncAfter === undefined) continue
      for (const read of records.reads) {
        if (!answered(read)) continue
        const commit = commitOf(records.stored, read.value, read.end)
        if (commit === undefined) continue
        const age = read.at - commit.fetchedAt!
        if (age <= policy.syncAfter) continue
        if (policy.maxStale !== undefined && age <= policy.maxStale) continue
        out.push(violation("boundedStaleness", read.at, `${show(read)} answered a value fetched ${age} ms before, beyond syncAfter (${policy.syncAfter} ms)`))
      }
    }
    return out
  }
}

/**
 * No stampede: while no fault is active, at most `max` fetches of one key begin within any
 * `window` ms, across every process and worker, counting from the key's last write (a write
 * asks for a fetch of its own: a refresh asked for after it never joins one begun before).
 * A fetch is asked for when the earliest read of its process still waiting for it began: a
 * write between that read and a later fetch separates them too. Default `max` 2 (a worker's
 * refresh and one synchronous fetch past `syncAfter` may overlap), `window` 1 second.
 */
export const noStampede = (options: { readonly max?: number; readonly window?: number } = {}): Invariant => {
  const max = options.max ?? 2
  const window = options.window ?? 1_000
  return {
    name: "noStampede",
    check: (trace) => {
      const out: Array<Violation> = []
      const faults = faultWindows(trace)
      for (const [key, records] of byKey(trace)) {
        const fetches = records.fetches.filter((fetch) => !faults.any(fetch.at - window, fetch.at)).map((fetch) => ({
          at: fetch.at,
          asked: records.reads.reduce(
            (earliest, read) =>
              read.process === fetch.actor && read.at <= fetch.at && (read.end ?? Infinity) >= fetch.at ? Math.min(earliest, read.at) : earliest,
            fetch.at
          )
        }))
        // A write that ran (began or resolved) between a fetch's asking and a later fetch's start asked for the later one.
        const between = (from: number, to: number) => records.writes.some((w) => w.at <= to && (w.end ?? Infinity) >= from)
        for (let i = 0; i < fetches.length; i++) {
          const from = fetches[i]!.at
          let asked = fetches[i]!.asked
          let n = 0
          for (let j = i; j < fetches.length && fetches[j]!.at < from + window; j++) {
            asked = Math.min(asked, fetches[j]!.asked)
            if (between(asked, fetches[j]!.at)) break
            n++
          }
          if (n > max) {
            out.push(violation("noStampede", from, `${n} fetches of "${key}" began within ${window} ms from ${from} ms, with no fault or write between (at most ${max})`))
            break
          }
        }
      }
      return out
    }
  }
}

/**
 * Availability: a read does not fail while stale-if-error covers a value in Redis, for a
 * process that was reaching Redis throughout the read (no crash, partition or fault of its
 * own, and the store itself answering): its synchronous fetch may fail, and the stale value
 * answers instead.
 */
export const availability: Invariant = {
  name: "availability",
  check: (trace) => {
    const out: Array<Violation> = []
    const faults = faultWindows(trace)
    for (const [key, records] of byKey(trace)) {
      const policy = trace.keys[key]
      if (policy?.maxStale === undefined) continue
      for (const read of records.reads) {
        if (read.failure === undefined || read.end === undefined) continue
        if (faults.own(read.process, read.at, read.end)) continue
        let held: T.StoredRecord | undefined
        for (const each of records.stored) if (each.at <= read.at) held = each
        if (held?.entry !== "Value" || held.fetchedAt! + policy.maxStale < read.end) continue
        // Redis must have held a value throughout the read: a delete during it may be what it saw.
        if (records.stored.some((each) => each.at > read.at && each.at <= read.end! && each.entry !== "Value")) continue
        out.push(violation("availability", read.at, `${show(read)} failed (${read.failure}) while Redis held a value within stale-if-error (fetched at ${held.fetchedAt} ms, maxStale ${policy.maxStale} ms)`))
      }
    }
    return out
  }
}

/**
 * Liveness: once every fault has healed, a key read stale is refreshed (a newer value
 * stored, or a write of it) within `within` ms of the read. Reads too close to the end of
 * the run to tell are not checked. Default `within`: 10 seconds.
 */
export const liveness = (options: { readonly within?: number } = {}): Invariant => {
  const within = options.within ?? 10_000
  return {
    name: "liveness",
    check: (trace) => {
      const out: Array<Violation> = []
      for (const [key, records] of byKey(trace)) {
        for (const read of records.reads) {
          if (read.status !== "stale" || read.end === undefined || read.at < trace.healedAt) continue
          const deadline = read.end + within
          if (deadline > trace.end) continue
          const refreshed = records.stored.some((s) => s.entry === "Value" && s.fetchedAt! >= read.at && s.at <= deadline) ||
            records.writes.some((w) => w.at >= read.at && w.at <= deadline)
          if (!refreshed) out.push(violation("liveness", read.at, `${show(read)} answered stale, and "${key}" was not refreshed within ${within} ms`))
        }
      }
      return out
    }
  }
}

/**
 * No lost write: a read that begins after a `set` or `delete` of its key resolved (plus, with
 * a near tier, the longest delay of invalidations and two ping intervals) never answers a
 * value older than the write: one a fetch begun before the write fetched, or one a write
 * that ended before it began set. Writes that failed are not counted, and are in doubt (a
 * timed-out command may still land, later than a newer write); nor are reads of a process cut
 * off from Redis meanwhile (it cannot know of the write, and answers from its own fetch).
 */
export const noLostWrite: Invariant = {
  name: "noLostWrite",
  check: (trace) => {
    const out: Array<Violation> = []
    const faults = faultWindows(trace)
    const lag = nearLag(trace)
    for (const records of byKey(trace).values()) {
      for (const write of records.writes) {
        if (write.end === undefined || write.failure !== undefined || (write.op !== "set" && write.op !== "delete")) continue
        for (const read of records.reads) {
          if (!answered(read) || read.at <= write.end + lag) continue
          if (faults.cutOff(read.process, write.at, read.end) || writtenSince(records, read.value, write.at)) continue
          out.push(violation("noLostWrite", read.at, `${show(read)} answered ${read.value}, older than the ${write.op} of ${write.process} that resolved at ${write.end} ms`))
        }
      }
    }
    return out
  }
}

/**
 * Invalidations honoured: a read that begins after an `invalidate` (plus the job's refresh
 * timeout, for which `invalidate` keeps the value fresh while its refresh runs) or an
 * `invalidateTags` of its key resolved (plus, with a near tier, the invalidation delay) never
 * answers a fresh hit of a value fetched before it: the value may be served stale, per the
 * job's policy, until its refresh lands. Invalidations that failed are not counted, nor reads
 * of a process cut off from Redis meanwhile.
 */
export const invalidationsHonoured: Invariant = {
  name: "invalidationsHonoured",
  check: (trace) => {
    const out: Array<Violation> = []
    const faults = faultWindows(trace)
    const lag = nearLag(trace)
    for (const [key, records] of byKey(trace)) {
      // An invalidated value stays fresh for a refresh timeout, while its refresh runs.
      const grace = trace.keys[key]?.refreshTimeout ?? 0
      for (const write of records.writes) {
        if (write.end === undefined || write.failure !== undefined || (write.op !== "invalidate" && write.op !== "invalidateTags")) continue
        for (const read of records.reads) {
          if (read.status !== "hit" || !answered(read) || read.at <= write.end + lag) continue
          // Each invalidate keeps the value fresh for a refresh timeout from its own write.
          if (records.writes.some((w) => w.op === "invalidate" && w.at <= read.at && read.at <= (w.end ?? Infinity) + grace + lag)) continue
          if (faults.cutOff(read.process, write.at, read.end)) continue
          // A tag's invalidation concerns the values stored with that tag.
          const tags = write.op === "invalidateTags" ? commitOf(records.stored, read.value, read.end)?.tags : undefined
          if (write.op === "invalidateTags" && !write.tags!.some((tag) => tags?.includes(tag))) continue
          if (writtenSince(records, read.value, write.at)) continue
          out.push(violation("invalidationsHonoured", read.at, `${show(read)} answered a fresh hit of ${read.value}, fetched before the ${write.op} of ${write.process} that resolved at ${write.end} ms`))
        }
      }
    }
    return out
  }
}

/**
 * Monotonic reads: in each process, a read that begins after another of the same key ended
 * never answers an older value than it did (values ordered by when Redis last stored them
 * before each read ended). Reads answered by a fetch whose value was never stored are not
 * ordered.
 */
export const monotonicReads: Invariant = {
  name: "monotonicReads",
  check: (trace) => {
    const out: Array<Violation> = []
    for (const [, records] of byKey(trace)) {
      const last = new Map<string, { readonly read: T.ReadRecord; readonly version: number }>()
      const reads = records.reads.filter(answered).slice().sort((a, b) => a.at - b.at)
      for (const read of reads) {
        const commit = commitOf(records.stored, read.value, read.end)
        if (commit === undefined) continue
        const version = records.stored.indexOf(commit)
        const before = last.get(read.process)
        if (before !== undefined && before.read.end! < read.at && version < before.version) {
          out.push(violation("monotonicReads", read.at, `${show(read)} answered ${read.value}, older than ${before.read.value}, which it read at ${before.read.at} ms`))
        }
        if (before === undefined || before.read.end! < read.at) last.set(read.process, { read, version: Math.max(version, before?.version ?? -1) })
      }
    }
    return out
  }
}

/**
 * Bounded background work: while no fault is active, at most `max` refresh tasks of a key
 * are created between two values stored for it (a stale storm enqueues one task; the queue
 * takes one more while one runs). Default `max` 2.
 */
export const boundedBackgroundWork = (options: { readonly max?: number } = {}): Invariant => {
  const max = options.max ?? 2
  return {
    name: "boundedBackgroundWork",
    check: (trace) => {
      const out: Array<Violation> = []
      const faults = faultWindows(trace)
      const created = new Map<string, Array<number>>()
      for (const record of trace.records) {
        if (record._tag === "Task" && record.event === "enqueued") {
          const list = created.get(record.key) ?? []
          list.push(record.at)
          created.set(record.key, list)
        }
      }
      for (const [key, records] of byKey(trace)) {
        const tasks = created.get(key) ?? []
        const marks = [
          ...records.stored.filter((s) => s.entry === "Value").map((s) => s.at),
          ...records.writes.map((w) => w.at)
        ].sort((a, b) => a - b)
        let from = 0
        for (const mark of [...marks, Infinity]) {
          const inside = tasks.filter((at) => at >= from && at < mark)
          if (inside.length > max && !faults.any(from, Math.min(mark, trace.end))) {
            out.push(violation("boundedBackgroundWork", inside[0]!, `${inside.length} refresh tasks of "${key}" were created between ${from} ms and the next value stored (at most ${max})`))
          }
          from = mark
        }
      }
      return out
    }
  }
}
