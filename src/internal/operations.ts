/**
 * The operations of a job other than reads (those are `read.ts`), data first, each a few
 * lines over the same resolve step and the fetching and background modules; `Job.ts` binds
 * them with their public signatures.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as CacheStore from "../CacheStore.js"
import * as Entry from "../Entry.js"
import type { CodecError, FetchTimeout, KeyError, StoreError } from "../Errors.js"
import type * as RefreshQueue from "../RefreshQueue.js"
import { enqueueElseRefresh } from "./background.js"
import { fetchAndStore, recorded, refreshAttempt, Target, tombstoneOf, write } from "./fetch.js"
import { type Stored, tagsOf } from "./job.js"
import * as Metrics from "./metrics.js"
import * as Token from "./token.js"
import { current } from "./entries.js"
import { type Read, resolve, traced, unkeyed } from "./read.js"

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
): Effect.Effect<void, E | FetchTimeout | KeyError, R | S | RefreshQueue.RefreshQueue> =>
  operate(self, input, "asyncRefresh", (read) => Effect.asVoid(enqueueElseRefresh(read, undefined)))

/**
 * cacheback's `invalidate`: a value (or marker) is written back to expire within a refresh
 * timeout, with a token of its own, so that a fetch begun before it never stores over it,
 * and a refresh is enqueued (one that reads the new token). A key with no value gets a
 * tombstone, for the same reason, and no refresh.
 */
export const invalidate = <I, A, E, R, S>(
  self: Stored<I, A, E, R, S>,
  input: I
): Effect.Effect<void, E | FetchTimeout | KeyError | StoreError | CodecError, R | S | RefreshQueue.RefreshQueue> =>
  operate(self, input, "invalidate", (read) => invalidateOnce(self, input, read, 3))

/**
 * One try of an invalidation, over what it read. A write refused means another landed
 * between the read and the write: perhaps a fetch begun before this invalidation, whose value
 * must not stay fresh. The invalidation is then tried again over it (a `set` that landed
 * meanwhile is concurrent with it, and may be ordered before it).
 */
const invalidateOnce = <I, A, E, R, S>(
  self: Stored<I, A, E, R, S>,
  input: I,
  read: Read<I, A, E, R>,
  tries: number
): Effect.Effect<void, E | FetchTimeout | KeyError | StoreError | CodecError, R | S | RefreshQueue.RefreshQueue> =>
  Effect.flatMap(Effect.zip(read.store.get(read.key, self.valueSchema), Token.make), ([stored, token]) => {
    const entry = current(self, stored)
    const now = read.clock.unsafeCurrentTimeMillis()
    if (entry._tag === "None" || entry.value._tag === "Tombstone") {
      return Effect.flatMap(
        Effect.flatMap(tombstoneOf(read, now), (tombstone) => write(read, tombstone, Entry.tokenOf(stored))),
        (written) => written || tries <= 1 ? Effect.void : invalidateOnce(self, input, read, tries - 1)
      )
    }
    const expiresAt = now + Duration.toMillis(self.refreshTimeout(input))
    const marked = entry.value._tag === "Pending"
      ? Entry.pending(expiresAt, token)
      : Entry.with_(entry.value, { expiresAt, token })
    // Over what was read; the refresh is enqueued once, and, if it must run here, reads the token then.
    return Effect.flatMap(write(read, marked, Entry.tokenOf(stored)), (written) =>
      written || tries <= 1
        ? Effect.asVoid(enqueueElseRefresh(read, written ? token : undefined))
        : invalidateOnce(self, input, read, tries - 1))
  })

/** cacheback's `delete`: a tombstone in the entry's place, so that a fetch begun before it never stores. */
export const delete_ = <I, A, E, R, S>(self: Stored<I, A, E, R, S>, input: I): Effect.Effect<void, KeyError | StoreError, S> =>
  operate(self, input, "delete", (read) =>
    Effect.flatMap(tombstoneOf(read, read.clock.unsafeCurrentTimeMillis()), (tombstone) =>
      // A tombstone is JSON whatever the job's value: it cannot fail to encode.
      Effect.asVoid(Effect.catchTag(write(read, tombstone, undefined), "CodecError", Effect.die))))

export const set = <I, A, E, R, S>(
  self: Stored<I, A, E, R, S>,
  input: I,
  value: A
): Effect.Effect<void, KeyError | StoreError | CodecError, S> =>
  operate(self, input, "set", (read) =>
    Effect.flatMap(Token.make, (token): Effect.Effect<void, KeyError | StoreError | CodecError> => {
      const now = read.clock.unsafeCurrentTimeMillis()
      const entry = Entry.value(value, now, now + Duration.toMillis(self.expiry(input)), self.fingerprint, token)
      // A value set by hand records its tags' tokens as they are now, as a fetched one does,
      // so that a later invalidation of a tag makes it stale.
      const tags = read.store.tags
      const names = tags === undefined ? Either.right([]) : tagsOf(self, input, value)
      if (Either.isLeft(names)) return Effect.fail(names.left)
      const tagged = names.right.length === 0
        ? Effect.succeed(entry)
        : Effect.map(tags!.tokens(names.right, true), (tokens) => Entry.with_(entry, { tags: recorded(names.right, tokens) }))
      return Effect.asVoid(Effect.flatMap(tagged, (entry) => write(read, entry, undefined)))
    }))

export const rawGet = <I, A, E, R, S>(
  self: Stored<I, A, E, R, S>,
  input: I
): Effect.Effect<Option.Option<Entry.Entry<A>>, KeyError | StoreError, S> =>
  operate(self, input, "rawGet", (read) =>
    Effect.map(read.store.get(read.key, self.valueSchema), (found) => {
      // What a delete left holds no value.
      const entry = current(self, found)
      return entry._tag === "Some" && entry.value._tag === "Tombstone" ? Option.none() : entry
    }))

/**
 * A queue's attempt at a task: the task's key (which a worker checked is `job.key(input)`)
 * on the job's store, stored with the task's lifetime and cache TTL when it carries them
 * (its producer's), else with the job's.
 */
export const refreshTask = <I, A, E, R, S>(
  self: Stored<I, A, E, R, S>,
  input: I,
  key: string,
  policy?: RefreshQueue.Policy
): Effect.Effect<A, E | FetchTimeout | KeyError | StoreError | CodecError, R | S> =>
  Effect.flatMap(self.store, (store) => {
    const job = policy === undefined
      ? self
      : { ...self, expiry: () => Duration.millis(policy.lifetime), cacheTtl: () => Duration.millis(policy.cacheTtl) }
    return refreshAttempt(new Target(job, input, key, store))
  })

export const metrics = (self: { readonly name: string }): Metrics.JobMetrics => Metrics.forJob(self.name)

export const invalidateTags = <I, A, E, R, S>(
  self: Stored<I, A, E, R, S>,
  tags: ReadonlyArray<string>
): Effect.Effect<void, StoreError, S> => Effect.flatMap(self.store, (store) => CacheStore.invalidateTagsOf(store, tags))
