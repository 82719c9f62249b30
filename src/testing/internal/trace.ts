/**
 * What a simulation is given (a schedule) and what it records (a trace): plain data, so
 * that a schedule prints, shrinks and replays, and a trace serializes byte for byte.
 * `Simulation.ts` documents each type.
 */

/** What a process does at a step. `job` and `input` index the deployment's jobs and a job's inputs. */
export type Operation =
  | { readonly _tag: "Read"; readonly job: number; readonly input: number }
  | { readonly _tag: "Set"; readonly job: number; readonly input: number; readonly value: number }
  | { readonly _tag: "Delete"; readonly job: number; readonly input: number }
  | { readonly _tag: "Invalidate"; readonly job: number; readonly input: number }
  | { readonly _tag: "InvalidateTags"; readonly job: number; readonly tags: ReadonlyArray<string> }

/** What goes wrong at a step, for `duration` ms (a crash: until the restart). */
export type Fault =
  /** The actor (a process or a worker) is cut off, then stops; it restarts empty after `duration`. With `midRefresh`, a worker dies when it next begins a fetch instead. */
  | { readonly _tag: "Crash"; readonly duration: number; readonly midRefresh?: boolean }
  /** The actor's connections to Redis close (`down`) or every command takes `slow` ms more. */
  | { readonly _tag: "Partition"; readonly duration: number; readonly mode: "down" | "slow"; readonly slow?: number }
  /** What the actor's subscriber receives comes `delay` ms late (`delay`), or its connection drops (`lose`). */
  | { readonly _tag: "Invalidations"; readonly duration: number; readonly mode: "delay" | "lose"; readonly delay?: number }
  /** Every fetch of the origin fails, never answers, or takes `latency` ms more. */
  | { readonly _tag: "Origin"; readonly duration: number; readonly mode: "fail" | "hang" | "slow"; readonly latency?: number }

/** One step of a schedule: at `at` ms, `actor` (`p0`…, `w0`…, or `origin`) does or suffers `action`. */
export interface Step {
  readonly at: number
  readonly actor: string
  readonly action: Operation | Fault
}

/** A schedule: the seed of every choice the world makes, and the steps. */
export interface Schedule {
  readonly seed: number
  readonly steps: ReadonlyArray<Step>
}

export interface Backoff {
  readonly type: "fixed" | "exponential"
  readonly delay: number
}

/** A task's life in the queue. */
export interface TaskRecord {
  readonly at: number
  readonly key: string
  readonly event: "enqueued" | "deduplicated" | "kept" | "started" | "retry" | "stalled" | "completed" | "failed"
  readonly worker?: string
}

/** A read (`Job.lookup`): its answer once it ended; no `end` if its process crashed first. */
export interface ReadRecord {
  readonly _tag: "Read"
  readonly at: number
  end?: number
  readonly process: string
  readonly job: string
  readonly key: string
  status?: "hit" | "stale" | "miss"
  /** The value answered, as JSON. */
  value?: string
  syncFetch?: boolean
  /** The error a stale value was served instead of (stale-if-error). */
  error?: string
  /** Why the read failed. */
  failure?: string
}

/** A write: `set`, `delete`, `invalidate` or `invalidateTags`. */
export interface WriteRecord {
  readonly _tag: "Write"
  readonly at: number
  end?: number
  readonly process: string
  readonly job: string
  readonly op: "set" | "delete" | "invalidate" | "invalidateTags"
  readonly key?: string
  readonly value?: string
  readonly tags?: ReadonlyArray<string>
  failure?: string
}

/** A call of the origin, by a process's read or a worker's refresh. */
export interface FetchRecord {
  readonly _tag: "Fetch"
  readonly at: number
  end?: number
  readonly actor: string
  readonly job: string
  readonly key: string
  value?: string
  failure?: string
}

/** A change of a key's entry in Redis, by anyone: what it holds now. */
export interface StoredRecord {
  readonly _tag: "Stored"
  readonly at: number
  readonly key: string
  readonly entry: "Value" | "Pending" | "Tombstone" | "Gone"
  readonly value?: string
  readonly fetchedAt?: number
  readonly expiresAt?: number
  /** The tags of a value (`Job.withTags`), sorted. */
  readonly tags?: ReadonlyArray<string>
}

export interface TaskTraceRecord extends TaskRecord {
  readonly _tag: "Task"
}

/** A fault beginning (`Fault`) or healing (`Heal`), and an actor's crash and restart. */
export interface FaultRecord {
  readonly _tag: "Fault" | "Heal"
  readonly at: number
  readonly actor: string
  readonly fault: Fault
}

export interface LifeRecord {
  readonly _tag: "Crashed" | "Restarted"
  readonly at: number
  readonly actor: string
}

/** A warning or error the library logged in an actor. */
export interface LogRecord {
  readonly _tag: "Log"
  readonly at: number
  readonly actor: string
  readonly level: string
  readonly message: string
}

export type TraceRecord =
  | ReadRecord
  | WriteRecord
  | FetchRecord
  | StoredRecord
  | TaskTraceRecord
  | FaultRecord
  | LifeRecord
  | LogRecord

/** What the deployment's jobs promise of a key, for the checkers (ms; `undefined`: no such rule). */
export interface KeyPolicy {
  readonly job: string
  /** The input of the key, as JSON. */
  readonly input: string
  readonly lifetime: number
  readonly refreshTimeout: number
  readonly syncAfter: number | undefined
  readonly maxStale: number | undefined
  readonly syncOnMiss: boolean
}

export interface Trace {
  readonly seed: number
  readonly processes: ReadonlyArray<string>
  readonly workers: ReadonlyArray<string>
  /** Whether processes have a near tier, and the longest invalidation delay of the schedule. */
  readonly near: boolean
  readonly maxInvalidationDelay: number
  /** The store's command timeout (ms): how long a command sent during a fault may still be in flight after it heals. */
  readonly commandTimeout: number
  /** The schedule's last step and when its last fault healed (ms). */
  readonly lastStep: number
  readonly healedAt: number
  /** When the run stopped (ms); `settled: false` when it stopped at its task limit instead. */
  readonly end: number
  readonly settled: boolean
  /** Scheduler tasks and timers the world ran: a measure of the run's work. */
  readonly tasks: number
  readonly timers: number
  readonly keys: Readonly<Record<string, KeyPolicy>>
  readonly records: ReadonlyArray<TraceRecord>
  /** Each key's value in Redis at the end, as JSON (`null`: none). */
  readonly final: Readonly<Record<string, string | null>>
}
