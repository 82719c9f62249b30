/**
 * What a stored entry means to the job reading it: its own or another's (the fingerprint),
 * and whether the tags it recorded still hold (DESIGN.md §5.2, §8.3).
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { Service } from "../CacheStore.js"
import * as Entry from "../Entry.js"
import { degrade } from "./faults.js"
import * as Metrics from "./metrics.js"

/**
 * The entry if the job wrote it: one of another fingerprint (another version of the job,
 * another value schema) is a miss, counted. A pending marker says only that a refresh is
 * queued, and is anyone's.
 */
export const current = <A>(
  job: { readonly name: string; readonly fingerprint: string | undefined },
  entry: Option.Option<Entry.Entry<A>>
): Option.Option<Entry.Entry<A>> => {
  if (entry._tag === "None") return entry
  const found = entry.value
  if (found._tag !== "Value" || found.fingerprint === job.fingerprint) return entry
  Metrics.bump(Metrics.forJob(job.name).fingerprintMisses)
  return Option.none()
}

/** Whether every recorded tag still has its token (`tokens` in the order of the record's names). */
export const holds = (recorded: Readonly<Record<string, string>>, tokens: ReadonlyArray<string | undefined>): boolean =>
  Object.keys(recorded).every((name, i) => tokens[i] === recorded[name])

/**
 * Whether every tag of the entry still has the token it recorded. A store that cannot tell
 * (it has no tags, or fails to answer) makes it stale: served per the job's policy and
 * refreshed, never served as fresh past an invalidation.
 */
export const tagsHold = (store: Service, job: string, recorded: Readonly<Record<string, string>>): Effect.Effect<boolean> => {
  const tags = store.tags
  if (tags === undefined) return Effect.succeed(false)
  return degrade(
    store.engine.throttle,
    job,
    Effect.map(tags.tokens(Object.keys(recorded), false), (tokens) => holds(recorded, tokens)),
    false
  )
}

/**
 * A tagged entry one of whose tags was invalidated since its fetch: expired now, and without
 * its tags, so that its write-back is served for a refresh timeout like any stale value's.
 */
export const expired = <A>(entry: Entry.Value<A>, now: number): Entry.Value<A> =>
  Entry.with_(entry, { expiresAt: Math.min(entry.expiresAt, now - 1), tags: undefined })
