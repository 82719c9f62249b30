/**
 * The job record: its prototype, `make` with cacheback's defaults, and the data-first
 * bodies of the combinators that `Job.ts` binds with `dual`. A combinator checks its
 * argument at once (a programmer error throws, naming the combinator) and returns a copy.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberRef from "effect/FiberRef"
import { globalValue } from "effect/GlobalValue"
import { pipeArguments } from "effect/Pipeable"
import { CacheStore, type Service as StoreService } from "../CacheStore.js"
import { KeyError } from "../Errors.js"
import type * as Job from "../Job.js"
import * as Key from "../Key.js"
import * as Policy from "../Policy.js"
import type { QueueOptions } from "../RefreshQueue.js"
import type { SchemaOf } from "./codec.js"
import * as Durations from "./duration.js"
import { fingerprint, fingerprintOf } from "./fingerprint.js"
import { func, integer, nonEmpty } from "./options.js"

export const TypeId: Job.TypeId = Symbol.for("effect-cacheback/Job") as Job.TypeId

export const isJob = (u: unknown): u is Job.Job.Any => typeof u === "object" && u !== null && TypeId in u

/** The fields of a job, without its prototype's. */
type Fields = Omit<Job.Job.Any, Job.TypeId | "pipe">

/**
 * A job's record. A class that declares every field, so that every job has one hidden class
 * with its fields in the object: assigned to a bare object, twenty-odd fields would put it in
 * V8's dictionary mode, and every property read of a hit would pay for it (BENCHMARKS.md).
 */
class JobRecord implements Fields {
  readonly name!: Fields["name"]
  readonly fetch!: Fields["fetch"]
  readonly key!: Fields["key"]
  readonly expiry!: Fields["expiry"]
  readonly cacheTtl!: Fields["cacheTtl"]
  readonly fetchTimeout!: Fields["fetchTimeout"]
  readonly fetchOnMiss!: Fields["fetchOnMiss"]
  readonly fetchOnStale!: Fields["fetchOnStale"]
  readonly refreshTimeout!: Fields["refreshTimeout"]
  readonly staleIfError!: Fields["staleIfError"]
  readonly earlyRefresh!: Fields["earlyRefresh"]
  readonly tags!: Fields["tags"]
  readonly empty!: Fields["empty"]
  readonly processResult!: Fields["processResult"]
  readonly inputSchema!: Fields["inputSchema"]
  readonly valueSchema!: Fields["valueSchema"]
  readonly version!: Fields["version"]
  readonly fingerprint!: Fields["fingerprint"]
  readonly store!: Fields["store"]
  readonly queueOptions!: Fields["queueOptions"]
  readonly spans!: Fields["spans"]
  readonly singleFlight!: Fields["singleFlight"]
  constructor(fields: Fields) {
    Object.assign(this, fields)
  }
  get [TypeId]() {
    return variance
  }
  pipe() {
    return pipeArguments(this, arguments)
  }
}

const variance = { _Out: (_: never) => _, _Async: (_: never) => _ }

const copy = <J extends Job.Job.Any>(self: Job.Job.Any, patch: Partial<Fields>): J =>
  new JobRecord({ ...self, ...patch }) as unknown as J

const defaultLifetime = Duration.minutes(10)
const defaultCacheTtl = Duration.days(30)
const constant = <A>(a: A) => () => a

export const make = <I, A, E, R>(options: {
  readonly name: string
  readonly fetch: (input: I) => Effect.Effect<A, E, R>
}): Job.Job<I, A, E, R> => {
  const name = options?.name
  if (typeof name !== "string" || name.trim() === "") {
    throw new TypeError(`Job.make: expected a non-empty name, got ${JSON.stringify(name)}`)
  }
  if (typeof options.fetch !== "function") {
    throw new TypeError(`Job.make: expected fetch to be a function (input) => Effect for job "${name}"`)
  }
  const fields: Omit<Job.Job<I, A, E, R>, Job.TypeId | "pipe"> = {
    ...Policy.defaultRules,
    name,
    fetch: options.fetch,
    key: defaultKey(name),
    expiry: constant(defaultLifetime),
    cacheTtl: constant(defaultCacheTtl),
    fetchTimeout: undefined,
    empty: () => undefined,
    processResult: undefined,
    inputSchema: undefined,
    valueSchema: undefined,
    staleIfError: undefined,
    earlyRefresh: undefined,
    tags: undefined,
    version: 0,
    fingerprint: undefined,
    store: CacheStore,
    queueOptions: {},
    spans: false,
    singleFlight: "cluster"
  }
  return new JobRecord(fields) as unknown as Job.Job<I, A, E, R>
}

// The combinators, data first. Each returns a new record.

export const withKey = (self: Job.Job.Any, f: (input: unknown) => string): Job.Job.Any => {
  func("Job.withKey", f)
  const start = Key.prefix(self.name)
  return copy(self, {
    key: (input) => {
      const key = f(input)
      return typeof key === "string"
        ? Either.right(`${start}:${key}`)
        : Either.left(
          new KeyError({ job: self.name, path: "$", reason: `the withKey function returned ${typeof key}, not a string` })
        )
    }
  })
}

export const withLifetime = (self: Job.Job.Any, lifetime: Duration.DurationInput): Job.Job.Any =>
  copy(self, { expiry: constant(Durations.decode("Job.withLifetime", lifetime)) })

export const withExpiry = (self: Job.Job.Any, f: (input: unknown) => Duration.DurationInput): Job.Job.Any =>
  copy(self, { expiry: Durations.decodeWith("Job.withExpiry", func("Job.withExpiry", f)) })

export const withRefreshTimeout = (self: Job.Job.Any, timeout: DurationOrFunction): Job.Job.Any =>
  copy(self, { refreshTimeout: durationOrFunction("Job.withRefreshTimeout", timeout) })

export const withCacheTtl = (self: Job.Job.Any, ttl: DurationOrFunction): Job.Job.Any =>
  copy(self, { cacheTtl: durationOrFunction("Job.withCacheTtl", ttl) })

export const withFetchTimeout = (self: Job.Job.Any, timeout: DurationOrFunction): Job.Job.Any =>
  copy(self, {
    fetchTimeout: typeof timeout === "function"
      ? Durations.decodeWith("Job.withFetchTimeout", timeout, { infinite: true })
      : constant(Durations.decode("Job.withFetchTimeout", timeout, { infinite: true }))
  })

export const withSyncOnMiss = (self: Job.Job.Any, sync: boolean | ((input: unknown) => boolean)): Job.Job.Any => {
  assertUnprocessed("Job.withSyncOnMiss", self)
  return copy(self, { fetchOnMiss: typeof sync === "boolean" ? constant(sync) : func("Job.withSyncOnMiss", sync) })
}

export const withEmpty = (self: Job.Job.Any, empty: (input: unknown) => unknown): Job.Job.Any => {
  assertUnprocessed("Job.withEmpty", self)
  return copy(self, { empty: func("Job.withEmpty", empty) })
}

export const withStaleRefresh = (
  self: Job.Job.Any,
  rule: { readonly syncAfter: Duration.DurationInput } | ((ages: Policy.Ages, input: unknown) => boolean)
): Job.Job.Any => {
  if (typeof rule === "function") return copy(self, { fetchOnStale: { _tag: "When", predicate: rule } })
  if (typeof rule !== "object" || rule === null || !("syncAfter" in rule)) {
    throw new TypeError("Job.withStaleRefresh: expected { syncAfter: duration } or a predicate ({ age, staleFor }, input) => boolean")
  }
  return copy(self, {
    fetchOnStale: { _tag: "SyncAfter", syncAfter: Durations.decode("Job.withStaleRefresh syncAfter", rule.syncAfter) }
  })
}

export const withProcessResult = (
  self: Job.Job.Any,
  f: (value: unknown, context: Job.ResultContext<unknown>) => unknown
): Job.Job.Any => {
  func("Job.withProcessResult", f)
  const previous = self.processResult
  return copy(self, {
    processResult: previous === undefined ? f : (value, context) => f(previous(value, context), context)
  })
}

export const withSchema = (self: Job.Job.Any, schemas: {
  readonly input?: SchemaOf<unknown>
  readonly value?: SchemaOf<unknown>
}): Job.Job.Any => {
  const input = schemas.input ?? self.inputSchema
  const value = schemas.value ?? self.valueSchema
  return copy(self, {
    inputSchema: input,
    valueSchema: value,
    fingerprint: fingerprintFor(value, self.version),
    // A custom key function stays; the default one learns the input schema.
    key: schemas.input !== undefined && isDefaultKey(self) ? defaultKey(self.name, input) : self.key
  })
}

export const withStaleIfError = (
  self: Job.Job.Any,
  rule: Duration.DurationInput | ((ages: Policy.Ages, input: unknown, error: unknown) => boolean)
): Job.Job.Any =>
  copy(self, {
    staleIfError: typeof rule === "function"
      ? { _tag: "When", predicate: rule }
      : { _tag: "MaxStale", maxStale: Durations.decode("Job.withStaleIfError", rule) }
  })

export const withEarlyRefresh = (self: Job.Job.Any, options: { readonly beta: number }): Job.Job.Any => {
  const beta = options?.beta
  if (typeof beta !== "number" || !Number.isFinite(beta) || beta <= 0) {
    throw new RangeError(`Job.withEarlyRefresh: expected { beta } with beta a positive, finite number (1 is XFetch's default), got ${beta}`)
  }
  return copy(self, { earlyRefresh: { beta } })
}

export const withTags = (self: Job.Job.Any, tags: (input: unknown, value: unknown) => ReadonlyArray<string>): Job.Job.Any =>
  copy(self, { tags: func("Job.withTags", tags) })

export const withVersion = (self: Job.Job.Any, version: number): Job.Job.Any =>
  copy(self, {
    version: integer("Job.withVersion", "version", version, 0),
    fingerprint: fingerprintFor(self.valueSchema, version)
  })

/** A job's fingerprint: none for no value schema at version 0, the default (and 0.1's entries). */
const fingerprintFor = (valueSchema: SchemaOf<unknown> | undefined, version: number): string | undefined =>
  valueSchema === undefined && version === 0
    ? undefined
    : fingerprintOf(["value", valueSchema === undefined ? "none" : fingerprint(valueSchema), "version", String(version)])

export const withStore = (self: Job.Job.Any, store: Context.Tag<unknown, StoreService>): Job.Job.Any => {
  if (!Context.isTag(store)) throw new TypeError("Job.withStore: expected a Context.Tag of a CacheStore service")
  return copy(self, { store })
}

export const withQueueOptions = (self: Job.Job.Any, options: Job.QueueOptionsInput): Job.Job.Any =>
  copy(self, { queueOptions: queueOptions(options) })

export const withSpans = (self: Job.Job.Any, enabled: boolean = true): Job.Job.Any => copy(self, { spans: enabled })

export const withSingleFlight = (self: Job.Job.Any, scope: "process" | "cluster"): Job.Job.Any => {
  if (scope !== "process" && scope !== "cluster") {
    throw new TypeError(`Job.withSingleFlight: expected "process" or "cluster", got ${JSON.stringify(scope)}`)
  }
  return copy(self, { singleFlight: scope })
}

/** Whether every job's operations are traced in this fiber (`Job.layerSpans`). */
export const currentSpans = globalValue(Symbol.for("effect-cacheback/currentSpans"), () => FiberRef.unsafeMake(false))

type DurationOrFunction = Duration.DurationInput | ((input: unknown) => Duration.DurationInput)

const durationOrFunction = (where: string, value: DurationOrFunction): (input: unknown) => Duration.Duration =>
  typeof value === "function" ? Durations.decodeWith(where, value) : constant(Durations.decode(where, value))

const queueOptions = (options: Job.QueueOptionsInput): QueueOptions => {
  const where = "Job.withQueueOptions"
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`${where}: expected { queue?, priority?, attempts?, backoff? }, got ${options}`)
  }
  const { attempts, backoff, priority, queue } = options
  if (backoff !== undefined && backoff.type !== "fixed" && backoff.type !== "exponential") {
    throw new TypeError(`${where}: expected backoff.type "fixed" or "exponential", got ${JSON.stringify(backoff.type)}`)
  }
  return {
    queue: queue === undefined ? undefined : nonEmpty(where, "queue", queue, "name a BullMQ queue, or leave it out"),
    priority: priority === undefined ? undefined : integer(where, "priority", priority, 0),
    attempts: attempts === undefined ? undefined : integer(where, "attempts", attempts, 1),
    backoff: backoff === undefined
      ? undefined
      : { type: backoff.type, delay: Duration.toMillis(Durations.decode(`${where} backoff.delay`, backoff.delay)) }
  }
}

// The default key function is replaced by one that knows the input schema when
// `withSchema` gives one; a key function of the user's is kept.
const defaultKeys = new WeakSet<Function>()
const defaultKey = (name: string, inputSchema?: SchemaOf<unknown>) => {
  const key = Key.derive(name, inputSchema)
  defaultKeys.add(key)
  return key
}
const isDefaultKey = (job: Job.Job.Any) => defaultKeys.has(job.key)

const assertUnprocessed = (where: string, job: Job.Job.Any) => {
  if (job.processResult !== undefined) {
    throw new TypeError(
      `${where}: job "${job.name}" already has withProcessResult, whose function would meet values it was not written for; apply ${where} first`
    )
  }
}
