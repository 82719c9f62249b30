/**
 * The operations of a job, data first, each a few lines over the engine in `read.ts`;
 * `Job.ts` binds them with their public signatures.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as CacheStore from "../CacheStore.js"
import * as Entry from "../Entry.js"
import type { CodecError, FetchTimeout, KeyError, StoreError } from "../Errors.js"
import type * as Job from "../Job.js"
import * as Policy from "../Policy.js"
import type { RefreshQueue } from "../RefreshQueue.js"
import { degrade } from "./faults.js"
import * as internal from "./job.js"
import * as Metrics from "./metrics.js"
import * as engine from "./read.js"

type Stored<I, A, E, R, S> = engine.Stored<I, A, E, R, S>

/** What `get` answers is the job's `Out`; the engine knows it as `unknown` (see `Job.get`). */
export const get = <I, A, E, R, S>(self: Stored<I, A, E, R, S>, input: I): Effect.Effect<unknown, E | FetchTimeout | KeyError, R | S | RefreshQueue> =>
  engine.resolve(self, input, "get", readValue)

export const lookup = <I, A, E, R, S>(
  self: Stored<I, A, E, R, S>,
  input: I
): Effect.Effect<Job.Lookup<unknown, unknown>, E | FetchTimeout | KeyError, R | S | RefreshQueue> =>
  engine.resolve(self, input, "get", readLookup)

// Module-level bodies, so that a read allocates no closure for them. Traced reads record
// the status they found on their span.
const readLookup = <I, A, E, R>(read: engine.Read<I, A, E, R>, clock: Clock.Clock, traced: boolean) =>
  traced
    ? Effect.tap(engine.lookup(read, clock, engine.answerLookup), (found) => Effect.annotateCurrentSpan("cacheback.status", found.status))
    : engine.lookup(read, clock, engine.answerLookup)

const readValue = <I, A, E, R>(read: engine.Read<I, A, E, R>, clock: Clock.Clock, traced: boolean): Effect.Effect<unknown, E | FetchTimeout, R> =>
  traced
    ? Effect.map(
      readLookup(read, clock, true),
      (found) => engine.answerValue(read.job, read.input, found.value, found.status, found.syncFetch)
    )
    : engine.lookup(read, clock, engine.answerValue)

export const getMany = <I, A, E, R, S>(
  self: Stored<I, A, E, R, S>,
  inputs: Iterable<I>
): Effect.Effect<Array<unknown>, E | FetchTimeout | KeyError, R | S | RefreshQueue> =>
  Effect.suspend((): Effect.Effect<Array<unknown>, E | FetchTimeout | KeyError, R | S | RefreshQueue> => {
    const all = Array.from(inputs)
    const keys: Array<string> = []
    for (const input of all) {
      const key = self.key(input)
      if (Either.isLeft(key)) return Effect.fail(key.left)
      keys.push(key.right)
    }
    return Effect.withFiberRuntime<Array<unknown>, E | FetchTimeout | KeyError, R | S | RefreshQueue>((fiber) => {
      if (engine.spansOn(self, fiber)) {
        return Effect.withSpan(getMany(internal.withSpans(self, false) as typeof self, all), "cacheback.getMany", {
          attributes: { "cacheback.job": self.name, "cacheback.keys": keys.length },
          captureStackTrace: false
        })
      }
      const context = engine.callerContext<R | S | RefreshQueue>(fiber)
      const store = Context.get(context, self.store)
      const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
      const none = keys.map(() => Option.none<Entry.Entry<A>>())
      return Effect.flatMap(degrade(self.name, store.getMany(keys, self.valueSchema), none), (read) => {
        const entries = read.map((entry) => engine.current(self, entry))
        // Hits are answered here, with no effect; only the rest need one (a fiber each).
        const now = clock.unsafeCurrentTimeMillis()
        const values: Array<unknown> = new Array(all.length)
        // The rest: decided here (misses, stale entries), or to decide with an effect (tagged
        // entries, whose tags are checked; jobs with an early refresh, which draw).
        const rest: Array<[number, Policy.Decision<A> | undefined]> = []
        for (let i = 0; i < all.length; i++) {
          const entry = entries[i]!
          if (self.earlyRefresh !== undefined || (entry._tag === "Some" && entry.value._tag === "Value" && entry.value.tags !== undefined)) {
            rest.push([i, undefined])
            continue
          }
          const decision = Policy.decide(entry, now, self, all[i]!)
          if (decision._tag === "Hit") values[i] = engine.hit(self, all[i]!, decision, engine.answerValue)
          else rest.push([i, decision])
        }
        if (rest.length === 0) return Effect.succeed(values)
        return Effect.as(
          Effect.forEach(
            rest,
            ([i, decision]) => {
              const read = new engine.Read(self, all[i]!, keys[i]!, store, context)
              return Effect.map(
                decision === undefined
                  ? engine.decideOn(read, entries[i]!, now, engine.answerValue)
                  : engine.perform(read, decision, engine.answerValue),
                (value) => {
                  values[i] = value
                }
              )
            },
            { concurrency: "unbounded", discard: true }
          ),
          values
        )
      })
    })
  })

export const refresh = <I, A, E, R, S>(self: Stored<I, A, E, R, S>, input: I): Effect.Effect<A, E | FetchTimeout | KeyError, R | S> =>
  engine.resolveTarget(self, input, "refresh", engine.fetchAndStore)

export const asyncRefresh = <I, A, E, R, S>(
  self: Stored<I, A, E, R, S>,
  input: I
): Effect.Effect<void, E | FetchTimeout | KeyError, R | S | RefreshQueue> =>
  engine.resolve(self, input, "asyncRefresh", (read) => Effect.asVoid(engine.enqueueElseRefresh(read)))

export const invalidate = <I, A, E, R, S>(
  self: Stored<I, A, E, R, S>,
  input: I
): Effect.Effect<void, E | FetchTimeout | KeyError | StoreError | CodecError, R | S | RefreshQueue> =>
  engine.resolve(self, input, "invalidate", (read, clock) =>
    Effect.flatMap(read.store.get(read.key, self.valueSchema), (stored) => {
      const entry = engine.current(self, stored)
      if (entry._tag === "None") return Effect.void
      const expiresAt = clock.unsafeCurrentTimeMillis() + Duration.toMillis(self.refreshTimeout(input))
      const stale = Entry.withExpiry(entry.value, expiresAt)
      // Compare-and-set where the store can: a value stored since the read is not put back
      // to the one read; the refresh is enqueued either way.
      const mark = read.store.compareAndSet === undefined
        ? read.store.set(read.key, stale, self.cacheTtl(input), self.valueSchema)
        : read.store.compareAndSet(read.key, stale, self.cacheTtl(input), self.valueSchema, "unchanged")
      return Effect.zipRight(mark, engine.enqueueElseRefresh(read)).pipe(Effect.asVoid)
    }))

export const delete_ = <I, A, E, R, S>(self: Stored<I, A, E, R, S>, input: I): Effect.Effect<void, KeyError | StoreError, S> =>
  engine.resolveTarget(self, input, "delete", (target) => target.store.delete(target.key))

export const set = <I, A, E, R, S>(
  self: Stored<I, A, E, R, S>,
  input: I,
  value: A
): Effect.Effect<void, KeyError | StoreError | CodecError, S> =>
  engine.resolveTarget(self, input, "set", (target) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const entry = Entry.value(value, now, now + Duration.toMillis(self.expiry(input)), self.fingerprint)
      const write = (entry: Entry.Entry<A>) => target.store.set(target.key, entry, self.cacheTtl(input), self.valueSchema)
      // A value set by hand records its tags' tokens as they are now, as a fetched one does,
      // so that a later invalidation of a tag makes it stale.
      const names = self.tags === undefined || target.store.tags === undefined ? [] : self.tags(input, value)
      return names.length === 0 ? write(entry) : Effect.flatMap(
        target.store.tags!.tokens(names, true),
        (tokens) => write(Entry.with_(entry, { tags: engine.recorded(names, tokens) }))
      )
    }))

export const rawGet = <I, A, E, R, S>(
  self: Stored<I, A, E, R, S>,
  input: I
): Effect.Effect<Option.Option<Entry.Entry<A>>, KeyError | StoreError, S> =>
  engine.resolveTarget(
    self,
    input,
    "rawGet",
    (target) => Effect.map(target.store.get(target.key, self.valueSchema), (entry) => engine.current(self, entry))
  )

export const refreshTask = <I, A, E, R, S>(
  self: Stored<I, A, E, R, S>,
  input: I,
  key: string
): Effect.Effect<A, E | FetchTimeout | StoreError | CodecError, R | S> =>
  Effect.flatMap(self.store, (store) => engine.refreshAttempt(new engine.Target(self, input, key, store)))

export const metrics = (self: { readonly name: string }): Metrics.JobMetrics => Metrics.forJob(self.name)

export const invalidateTags = <I, A, E, R, S>(
  self: Stored<I, A, E, R, S>,
  tags: ReadonlyArray<string>
): Effect.Effect<void, StoreError, S> => Effect.flatMap(self.store, (store) => CacheStore.invalidateTagsOf(store, tags))
