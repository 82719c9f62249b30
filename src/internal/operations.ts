/**
 * The operations of a job other than reads (those are `read.ts`), data first, each a few
 * lines over the same resolve step and the fetching and background modules; `Job.ts` binds
 * them with their public signatures.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import * as CacheStore from "../CacheStore.js"
import * as Entry from "../Entry.js"
import type { CodecError, FetchTimeout, KeyError, StoreError } from "../Errors.js"
import type { RefreshQueue } from "../RefreshQueue.js"
import { enqueueElseRefresh } from "./background.js"
import { fetchAndStore, recorded, refreshAttempt, Target, write } from "./fetch.js"
import type { Stored } from "./job.js"
import * as Metrics from "./metrics.js"
import { current, type Read, resolve, traced, unkeyed } from "./read.js"

/** Runs `body` on the resolved read of `input`, in a `cacheback.<operation>` span when spans are on. */
const operate = <I, A, E, R, S, X, E2, R2>(
  job: Stored<I, A, E, R, S>,
  input: I,
  operation: string,
  body: (read: Read<I, A, E, R>) => Effect.Effect<X, E2, R2>
): Effect.Effect<X, E2 | KeyError, S | R2> =>
  Effect.withFiberRuntime((fiber) => {
    const read = resolve(job, input, fiber, "value")
    return unkeyed(read) ? Effect.fail(read) : traced(read, operation, body(read))
  })

export const refresh = <I, A, E, R, S>(self: Stored<I, A, E, R, S>, input: I): Effect.Effect<A, E | FetchTimeout | KeyError, R | S> =>
  operate(self, input, "refresh", fetchAndStore)

export const asyncRefresh = <I, A, E, R, S>(
  self: Stored<I, A, E, R, S>,
  input: I
): Effect.Effect<void, E | FetchTimeout | KeyError, R | S | RefreshQueue> =>
  operate(self, input, "asyncRefresh", (read) => Effect.asVoid(enqueueElseRefresh(read)))

export const invalidate = <I, A, E, R, S>(
  self: Stored<I, A, E, R, S>,
  input: I
): Effect.Effect<void, E | FetchTimeout | KeyError | StoreError | CodecError, R | S | RefreshQueue> =>
  operate(self, input, "invalidate", (read) =>
    Effect.flatMap(read.store.get(read.key, self.valueSchema), (stored) => {
      const entry = current(self, stored)
      if (entry._tag === "None") return Effect.void
      const expiresAt = read.clock.unsafeCurrentTimeMillis() + Duration.toMillis(self.refreshTimeout(input))
      // A value stored since the read is not put back to the one read; the refresh is
      // enqueued either way.
      return Effect.zipRight(write(read, Entry.withExpiry(entry.value, expiresAt), "unchanged"), enqueueElseRefresh(read)).pipe(
        Effect.asVoid
      )
    }))

export const delete_ = <I, A, E, R, S>(self: Stored<I, A, E, R, S>, input: I): Effect.Effect<void, KeyError | StoreError, S> =>
  operate(self, input, "delete", (read) => read.store.delete(read.key))

export const set = <I, A, E, R, S>(
  self: Stored<I, A, E, R, S>,
  input: I,
  value: A
): Effect.Effect<void, KeyError | StoreError | CodecError, S> =>
  operate(self, input, "set", (read) => {
    const now = read.clock.unsafeCurrentTimeMillis()
    const entry = Entry.value(value, now, now + Duration.toMillis(self.expiry(input)), self.fingerprint)
    // A value set by hand records its tags' tokens as they are now, as a fetched one does,
    // so that a later invalidation of a tag makes it stale.
    const tags = read.store.tags
    const names = self.tags === undefined || tags === undefined ? [] : self.tags(input, value)
    const tagged = names.length === 0
      ? Effect.succeed(entry)
      : Effect.map(tags!.tokens(names, true), (tokens) => Entry.with_(entry, { tags: recorded(names, tokens) }))
    return Effect.asVoid(Effect.flatMap(tagged, (entry) => write(read, entry, "anything")))
  })

export const rawGet = <I, A, E, R, S>(
  self: Stored<I, A, E, R, S>,
  input: I
): Effect.Effect<Option.Option<Entry.Entry<A>>, KeyError | StoreError, S> =>
  operate(self, input, "rawGet", (read) => Effect.map(read.store.get(read.key, self.valueSchema), (entry) => current(self, entry)))

/** A queue's attempt at a task: the task's key (which a worker checked is `job.key(input)`) on the job's store. */
export const refreshTask = <I, A, E, R, S>(
  self: Stored<I, A, E, R, S>,
  input: I,
  key: string
): Effect.Effect<A, E | FetchTimeout | StoreError | CodecError, R | S> =>
  Effect.flatMap(self.store, (store) => refreshAttempt(new Target(self, input, key, store)))

export const metrics = (self: { readonly name: string }): Metrics.JobMetrics => Metrics.forJob(self.name)

export const invalidateTags = <I, A, E, R, S>(
  self: Stored<I, A, E, R, S>,
  tags: ReadonlyArray<string>
): Effect.Effect<void, StoreError, S> => Effect.flatMap(self.store, (store) => CacheStore.invalidateTagsOf(store, tags))
