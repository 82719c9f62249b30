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
import { describe } from "./describe.js"
import type * as Job from "../Job.js"
import * as Key from "../Key.js"
import * as Policy from "../Policy.js"
import type { QueueOptions } from "../RefreshQueue.js"
import type { SchemaOf } from "./codec.js"
import * as Durations from "./duration.js"
import { fingerprint, fingerprintOf } from "./fingerprint.js"
import { func, integer, maxAttempts, maxNameBytes, maxPriority, queueName, wellFormed } from "./options.js"

export const TypeId: Job.TypeId = Symbol.for("effect-cacheback/Job") as Job.TypeId

export const isJob = (u: unknown): u is Job.Job.Any => typeof u === "object" && u !== null && TypeId in u

/**
 * A job as the engine takes it: its own input, value, error, requirements and store, and
 * everything but the types of what `get` answers (those are the public signatures').
 */
export type Stored<I, A, E, R, S> = Job.Job<I, A, E, R, unknown, unknown, boolean, S>

/** What the engine uses of a job once its store is resolved. Every `Job` is one. */
export type Definition<I, A, E, R> = Omit<Stored<I, A, E, R, never>, "store" | Job.TypeId | "pipe">

/** The fields of a job, without its prototype's. */
type Fields<I, A, E, R, S> = Omit<Stored<I, A, E, R, S>, Job.TypeId | "pipe">

/**
 * A job's record. A class that declares every field, so that every job has one hidden class
 * with its fields in the object: assigned to a bare object, twenty-odd fields would put it in
 * V8's dictionary mode, and every property read of a hit would pay for it (BENCHMARKS.md).
 */
class JobRecord<I, A, E, R, S> implements Fields<I, A, E, R, S> {
  declare readonly name: string
  declare readonly fetch: Fields<I, A, E, R, S>["fetch"]
  declare readonly key: Fields<I, A, E, R, S>["key"]
  declare readonly expiry: Fields<I, A, E, R, S>["expiry"]
  declare readonly cacheTtl: Fields<I, A, E, R, S>["cacheTtl"]
  declare readonly fetchTimeout: Fields<I, A, E, R, S>["fetchTimeout"]
  declare readonly syncOnMiss: Fields<I, A, E, R, S>["syncOnMiss"]
  declare readonly staleRefresh: Fields<I, A, E, R, S>["staleRefresh"]
  declare readonly refreshTimeout: Fields<I, A, E, R, S>["refreshTimeout"]
  declare readonly staleIfError: Fields<I, A, E, R, S>["staleIfError"]
  declare readonly earlyRefresh: Fields<I, A, E, R, S>["earlyRefresh"]
  declare readonly tags: Fields<I, A, E, R, S>["tags"]
  declare readonly empty: Fields<I, A, E, R, S>["empty"]
  declare readonly processResult: Fields<I, A, E, R, S>["processResult"]
  declare readonly inputSchema: Fields<I, A, E, R, S>["inputSchema"]
  declare readonly valueSchema: Fields<I, A, E, R, S>["valueSchema"]
  declare readonly version: number
  declare readonly fingerprint: string | undefined
  declare readonly store: Fields<I, A, E, R, S>["store"]
  declare readonly queueOptions: QueueOptions
  declare readonly spans: boolean
  declare readonly singleFlight: "process" | "cluster"
  constructor(fields: Fields<I, A, E, R, S>) {
    // Every field, in one order, so that every record has the same hidden class.
    const self = this as { -readonly [K in keyof Fields<I, A, E, R, S>]: Fields<I, A, E, R, S>[K] }
    self.name = fields.name
    self.fetch = fields.fetch
    self.key = fields.key
    self.expiry = fields.expiry
    self.cacheTtl = fields.cacheTtl
    self.fetchTimeout = fields.fetchTimeout
    self.syncOnMiss = fields.syncOnMiss
    self.staleRefresh = fields.staleRefresh
    self.refreshTimeout = fields.refreshTimeout
    self.staleIfError = fields.staleIfError
    self.earlyRefresh = fields.earlyRefresh
    self.tags = fields.tags
    self.empty = fields.empty
    self.processResult = fields.processResult
    self.inputSchema = fields.inputSchema
    self.valueSchema = fields.valueSchema
    self.version = fields.version
    self.fingerprint = fields.fingerprint
    self.store = fields.store
    self.queueOptions = fields.queueOptions
    self.spans = fields.spans
    self.singleFlight = fields.singleFlight
  }
  get [TypeId]() {
    return variance
  }
  pipe() {
    return pipeArguments(this, arguments)
  }
}

const variance = { _Out: (_: never) => _, _Async: (_: never) => _ }

/**
 * A copy of `self` with `patch`; the one place a job's fingerprint is computed, from its
 * value schema and version whenever either changes.
 */
const copy = <I, A, E, R, S, S2 = S>(
  self: Fields<I, A, E, R, S>,
  patch: Partial<Fields<I, A, E, R, S2>>
): Stored<I, A, E, R, S2> => {
  const fields = { ...self, ...patch } as Fields<I, A, E, R, S2>
  const fingerprint = "valueSchema" in patch || "version" in patch
    ? fingerprintFor(fields.valueSchema, fields.version)
    : fields.fingerprint
  return new JobRecord({ ...fields, fingerprint }) as unknown as Stored<I, A, E, R, S2>
}

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
  const bytes = Buffer.byteLength(name, "utf8")
  if (bytes > maxNameBytes) {
    throw new RangeError(
      `Job.make: expected a name of at most ${maxNameBytes} UTF-8 bytes (it is in every key, task and metric label), got one of ${bytes} starting ${JSON.stringify(name.slice(0, 40))}`
    )
  }
  if (!wellFormed(name)) {
    throw new TypeError(`Job.make: expected a name without lone surrogates (UTF-8 cannot tell it from another), got ${JSON.stringify(name)}`)
  }
  if (typeof options.fetch !== "function") {
    throw new TypeError(`Job.make: expected fetch to be a function (input) => Effect for job "${name}"`)
  }
  const fields: Fields<I, A, E, R, CacheStore> = {
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
  // What `get` answers (`Out`) is the public signature's to say: `A` for a new job.
  return new JobRecord(fields) as unknown as Job.Job<I, A, E, R>
}

// The combinators, data first. Each returns a new record.

export const withKey = <I, A, E, R, S>(self: Stored<I, A, E, R, S>, f: (input: I) => string): Stored<I, A, E, R, S> => {
  func("Job.withKey", f)
  const start = Key.prefix(self.name)
  return copy(self, {
    key: (input) => {
      let key: unknown
      try {
        key = f(input)
      } catch (cause) {
        return Either.left(new KeyError({ job: self.name, path: "$", reason: `the withKey function threw: ${describe(cause)}` }))
      }
      if (typeof key !== "string") {
        return Either.left(new KeyError({ job: self.name, path: "$", reason: `the withKey function returned ${typeof key}, not a string` }))
      }
      // Two strings with lone surrogates can be the same UTF-8 bytes (a Redis key): refused.
      return wellFormed(key)
        ? Either.right(`${start}:${key}`)
        : Either.left(new KeyError({ job: self.name, path: "$", reason: `the withKey function returned a string with a lone surrogate (${JSON.stringify(key)}), which UTF-8 cannot tell from another` }))
    }
  })
}


/**
 * The tags of a fetched or set value (`withTags`): strings without a lone surrogate, else a
 * `KeyError` naming the first that is not (a function that throws is one too).
 */
export const tagsOf = <I, A>(
  job: { readonly name: string; readonly tags?: ((input: I, value: A) => ReadonlyArray<string>) | undefined },
  input: I,
  value: A
): Either.Either<ReadonlyArray<string>, KeyError> => {
  if (job.tags === undefined) return Either.right([])
  let names: unknown
  try {
    names = job.tags(input, value)
  } catch (cause) {
    return Either.left(new KeyError({ job: job.name, path: "tags", reason: `the withTags function threw: ${describe(cause)}` }))
  }
  if (!Array.isArray(names)) {
    return Either.left(new KeyError({ job: job.name, path: "tags", reason: `the withTags function returned ${typeof names}, not an array of strings` }))
  }
  for (let i = 0; i < names.length; i++) {
    const name: unknown = names[i]
    if (typeof name !== "string") {
      return Either.left(new KeyError({ job: job.name, path: `tags[${i}]`, reason: `the withTags function returned a ${typeof name}, not a string` }))
    }
    if (!wellFormed(name)) {
      return Either.left(new KeyError({ job: job.name, path: `tags[${i}]`, reason: `the tag ${JSON.stringify(name)} has a lone surrogate, which UTF-8 cannot tell from another` }))
    }
  }
  return Either.right(names as ReadonlyArray<string>)
}

export const withLifetime = <I, A, E, R, S>(self: Stored<I, A, E, R, S>, lifetime: Duration.DurationInput): Stored<I, A, E, R, S> =>
  copy(self, { expiry: constant(Durations.decode("Job.withLifetime", lifetime)) })

export const withExpiry = <I, A, E, R, S>(
  self: Stored<I, A, E, R, S>,
  f: (input: I) => Duration.DurationInput
): Stored<I, A, E, R, S> => copy(self, { expiry: Durations.decodeWith("Job.withExpiry", func("Job.withExpiry", f)) })

export const withRefreshTimeout = <I, A, E, R, S>(self: Stored<I, A, E, R, S>, timeout: DurationOrFunction<I>): Stored<I, A, E, R, S> =>
  copy(self, { refreshTimeout: durationOrFunction("Job.withRefreshTimeout", timeout, { timer: true }) })

export const withCacheTtl = <I, A, E, R, S>(self: Stored<I, A, E, R, S>, ttl: DurationOrFunction<I>): Stored<I, A, E, R, S> =>
  copy(self, { cacheTtl: durationOrFunction("Job.withCacheTtl", ttl) })

export const withFetchTimeout = <I, A, E, R, S>(self: Stored<I, A, E, R, S>, timeout: DurationOrFunction<I>): Stored<I, A, E, R, S> =>
  copy(self, {
    fetchTimeout: typeof timeout === "function"
      ? Durations.decodeWith("Job.withFetchTimeout", timeout, { infinite: true, timer: true })
      : constant(Durations.decode("Job.withFetchTimeout", timeout, { infinite: true, timer: true }))
  })

export const withSyncOnMiss = <I, A, E, R, S>(
  self: Stored<I, A, E, R, S>,
  sync: boolean | ((input: I) => boolean)
): Stored<I, A, E, R, S> => {
  assertUnprocessed("Job.withSyncOnMiss", self)
  return copy(self, { syncOnMiss: typeof sync === "boolean" ? constant(sync) : func("Job.withSyncOnMiss", sync) })
}

export const withEmpty = <I, A, E, R, S>(self: Stored<I, A, E, R, S>, empty: (input: I) => unknown): Stored<I, A, E, R, S> => {
  assertUnprocessed("Job.withEmpty", self)
  return copy(self, { empty: func("Job.withEmpty", empty) })
}

export const withStaleRefresh = <I, A, E, R, S>(
  self: Stored<I, A, E, R, S>,
  rule: { readonly syncAfter: Duration.DurationInput } | ((ages: Policy.Ages, input: I) => boolean)
): Stored<I, A, E, R, S> => {
  if (typeof rule === "function") return copy(self, { staleRefresh: { _tag: "When", predicate: rule } })
  if (typeof rule !== "object" || rule === null || !("syncAfter" in rule)) {
    throw new TypeError("Job.withStaleRefresh: expected { syncAfter: duration } or a predicate ({ age, staleFor }, input) => boolean")
  }
  return copy(self, {
    staleRefresh: { _tag: "SyncAfter", syncAfter: Durations.decode("Job.withStaleRefresh syncAfter", rule.syncAfter) }
  })
}

export const withProcessResult = <I, A, E, R, S>(
  self: Stored<I, A, E, R, S>,
  f: (value: unknown, context: Job.ResultContext<I>) => unknown
): Stored<I, A, E, R, S> => {
  func("Job.withProcessResult", f)
  const previous = self.processResult
  return copy(self, {
    processResult: previous === undefined ? f : (value, context) => f(previous(value, context), context)
  })
}

export const withSchema = <I, A, E, R, S>(self: Stored<I, A, E, R, S>, schemas: {
  readonly input?: SchemaOf<I>
  readonly value?: SchemaOf<A>
}): Stored<I, A, E, R, S> => {
  const input = schemas.input ?? self.inputSchema
  return copy(self, {
    inputSchema: input,
    valueSchema: schemas.value ?? self.valueSchema,
    // A custom key function stays; the default one learns the input schema.
    key: schemas.input !== undefined && isDefaultKey(self) ? defaultKey(self.name, input) : self.key
  })
}

export const withStaleIfError = <I, A, E, R, S>(
  self: Stored<I, A, E, R, S>,
  rule: Duration.DurationInput | ((ages: Policy.Ages, input: I, error: unknown) => boolean)
): Stored<I, A, E, R, S> =>
  copy(self, {
    staleIfError: typeof rule === "function"
      ? { _tag: "When", predicate: rule }
      : { _tag: "MaxStale", maxStale: Durations.decode("Job.withStaleIfError", rule) }
  })

export const withEarlyRefresh = <I, A, E, R, S>(
  self: Stored<I, A, E, R, S>,
  options: { readonly beta: number }
): Stored<I, A, E, R, S> => {
  const beta = options?.beta
  if (typeof beta !== "number" || !Number.isFinite(beta) || beta <= 0) {
    throw new RangeError(`Job.withEarlyRefresh: expected { beta } with beta a positive, finite number (1 is XFetch's default), got ${beta}`)
  }
  return copy(self, { earlyRefresh: { beta } })
}

export const withTags = <I, A, E, R, S>(
  self: Stored<I, A, E, R, S>,
  tags: (input: I, value: A) => ReadonlyArray<string>
): Stored<I, A, E, R, S> => copy(self, { tags: func("Job.withTags", tags) })

export const withVersion = <I, A, E, R, S>(self: Stored<I, A, E, R, S>, version: number): Stored<I, A, E, R, S> =>
  copy(self, { version: integer("Job.withVersion", "version", version, 0) })

/** A job's fingerprint: none for no value schema at version 0, the default (and 0.1's entries). */
const fingerprintFor = <A>(valueSchema: SchemaOf<A> | undefined, version: number): string | undefined =>
  valueSchema === undefined && version === 0
    ? undefined
    : fingerprintOf(["value", valueSchema === undefined ? "none" : fingerprint(valueSchema), "version", String(version)])

export const withStore = <I, A, E, R, S, S2>(self: Stored<I, A, E, R, S>, store: Context.Tag<S2, StoreService>): Stored<I, A, E, R, S2> => {
  if (!Context.isTag(store)) throw new TypeError("Job.withStore: expected a Context.Tag of a CacheStore service")
  return copy<I, A, E, R, S, S2>(self, { store })
}

export const withQueueOptions = <I, A, E, R, S>(self: Stored<I, A, E, R, S>, options: Job.QueueOptionsInput): Stored<I, A, E, R, S> =>
  copy(self, { queueOptions: queueOptions(options) })

export const withSpans = <I, A, E, R, S>(self: Stored<I, A, E, R, S>, enabled: boolean = true): Stored<I, A, E, R, S> =>
  copy(self, { spans: enabled })

export const withSingleFlight = <I, A, E, R, S>(self: Stored<I, A, E, R, S>, scope: "process" | "cluster"): Stored<I, A, E, R, S> => {
  if (scope !== "process" && scope !== "cluster") {
    throw new TypeError(`Job.withSingleFlight: expected "process" or "cluster", got ${JSON.stringify(scope)}`)
  }
  return copy(self, { singleFlight: scope })
}

/** Whether every job's operations are traced in this fiber (`Job.layerSpans`). */
export const currentSpans = globalValue(Symbol.for("effect-cacheback/currentSpans"), () => FiberRef.unsafeMake(false))

type DurationOrFunction<I> = Duration.DurationInput | ((input: I) => Duration.DurationInput)

const durationOrFunction = <I>(
  where: string,
  value: DurationOrFunction<I>,
  limits?: Durations.Limits
): (input: I) => Duration.Duration =>
  typeof value === "function" ? Durations.decodeWith(where, value, limits) : constant(Durations.decode(where, value, limits))

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
    queue: queue === undefined ? undefined : queueName(where, "queue", queue),
    priority: priority === undefined ? undefined : integer(where, "priority", priority, 0, maxPriority),
    attempts: attempts === undefined ? undefined : integer(where, "attempts", attempts, 1, maxAttempts),
    backoff: backoff === undefined
      ? undefined
      : { type: backoff.type, delay: Duration.toMillis(Durations.decode(`${where} backoff.delay`, backoff.delay, { timer: true })) }
  }
}

// The default key function is replaced by one that knows the input schema when
// `withSchema` gives one; a key function of the user's is kept.
const defaultKeys = new WeakSet<Function>()
const defaultKey = <I>(name: string, inputSchema?: SchemaOf<I>) => {
  const key = Key.derive(name, inputSchema)
  defaultKeys.add(key)
  return key
}
const isDefaultKey = (job: { readonly key: Function }) => defaultKeys.has(job.key)

const assertUnprocessed = (where: string, job: { readonly name: string; readonly processResult: unknown }) => {
  if (job.processResult !== undefined) {
    throw new TypeError(
      `${where}: job "${job.name}" already has withProcessResult, whose function would meet values it was not written for; apply ${where} first`
    )
  }
}

/**
 * A copy of `self` whose fetch is `fetch`: how the simulation of `effect-cacheback/testing`
 * puts a job's origin behind its fault wrapper. Not a combinator: the fingerprint stays.
 */
export const withFetch = <I, A, E, R, S, E2, R2>(
  self: Stored<I, A, E, R, S>,
  fetch: (input: I) => Effect.Effect<A, E2, R2>
): Stored<I, A, E2, R2, S> => copy(self as unknown as Stored<I, A, E2, R2, S>, { fetch })
