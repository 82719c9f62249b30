/**
 * The machinery of `CacheStore.layerMemory`: entries in a `Map` of this process, bounded by
 * count, forgotten after their TTL by the caller's `Clock` (so `TestClock` drives it).
 *
 * Eviction approximates LRU with CLOCK (second chance): a read only marks its entry used,
 * and eviction passes over used entries once, clearing the mark, before taking the oldest
 * unused one. Moving an entry to the back of the map on every read, as exact LRU does,
 * cost 40% of a hit (BENCHMARKS.md).
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { Backend } from "../CacheStore.js"
import * as Entry from "../Entry.js"

interface Slot {
  readonly entry: Option.Option<Entry.Entry<unknown>>
  readonly deadline: number
  used: boolean
}

export const make = (capacity: number, tagCapacity: number): Backend => {
  // A Map iterates in insertion order: the front holds the entries written longest ago.
  const slots = new Map<string, Slot>()
  // An entry comes back as the job whose key it is stored it: the store does not check it.
  const read = <A>(key: string, now: number): Option.Option<Entry.Entry<A>> => {
    const slot = slots.get(key)
    if (slot === undefined) return Option.none()
    if (now >= slot.deadline) {
      slots.delete(key)
      return Option.none()
    }
    slot.used = true
    return slot.entry as Option.Option<Entry.Entry<A>>
  }
  const evict = () => {
    for (const [key, slot] of slots) {
      slots.delete(key)
      if (!slot.used) return
      slot.used = false
      slots.set(key, slot)
    }
  }
  const put = (key: string, entry: Entry.Entry<unknown>, ttl: Duration.Duration, now: number) => {
    // Evict before inserting, so that the new entry is not the one evicted.
    if (!slots.delete(key) && slots.size >= capacity) evict()
    slots.set(key, { entry: Option.some(entry), deadline: now + Duration.toMillis(ttl), used: false })
  }
  const withNow = <A>(f: (now: number) => A) =>
    Effect.clockWith((clock) => Effect.sync(() => f(clock.unsafeCurrentTimeMillis())))
  // Tags live apart from the entries, at most `tagCapacity` of them (the oldest given
  // forgotten first): a tag forgotten only makes its entries stale. In one process a
  // counter is as good as a random token.
  const tags = new Map<string, string>()
  let tokens = 0
  let invalidations = 0
  let warned = false
  const give = (name: string) => {
    if (!tags.delete(name) && tags.size >= tagCapacity) tags.delete(tags.keys().next().value!)
    const token = String(++tokens)
    tags.set(name, token)
    return token
  }
  return {
    tags: {
      tokens: (names, create) => {
        const tokens = Effect.sync(() => names.map((name) => tags.get(name) ?? (create ? give(name) : undefined)))
        if (names.length <= tagCapacity || warned) return tokens
        // Its own tokens evict each other: such an entry is stale at every read. Said once.
        warned = true
        return Effect.zipLeft(
          tokens,
          Effect.logWarning(
            `cacheback: an entry has ${names.length} tags, more than the memory store's tagCapacity (${tagCapacity}): ` +
              `it is stale at every read; give CacheStore.layerMemory a larger tagCapacity`
          )
        )
      },
      unsafeTokens: (names) => names.map((name) => tags.get(name)),
      generation: Effect.sync(() => String(invalidations)),
      invalidate: (names) =>
        Effect.sync(() => {
          names.forEach(give)
          invalidations++
        })
    },
    unsafeGet: read,
    get: (key) => withNow((now) => read(key, now)),
    getMany: (keys) => withNow((now) => keys.map((key) => read(key, now))),
    set: (key, entry, ttl) => withNow((now) => put(key, entry, ttl, now)),
    // One synchronous step: nothing lands between the check and the write.
    compareAndSet: (key, entry, ttl, _, expected) =>
      withNow((now) => {
        if (Entry.tokenOf(read(key, now)) !== expected) return false
        put(key, entry, ttl, now)
        return true
      }),
    delete: (key) => Effect.sync(() => void slots.delete(key))
  }
}
