/**
 * The near cache's memory: decoded entries of recently read keys, bounded by entries and
 * bytes, and the guard that keeps a Redis reply that raced its key's invalidation out of it.
 * `tracking.ts` says when it may answer (`up`) and feeds it invalidations.
 *
 * Written by hand, like the memory store: a near hit is one `Map` lookup with no effect, and
 * eviction is CLOCK (a read sets a bit; eviction passes over set bits once), which costs a
 * hit nothing.
 *
 * The guard (DESIGN.md §7: a reply that races an invalidation of its key is not cached): a read
 * sent to Redis registers its key as in flight with the key's epoch; an invalidation of the
 * key (or the process's own write of it, when sent) bumps the epoch; emptying the cache
 * bumps `session`. A reply is cached only if neither moved. Redis sends an invalidation on
 * another connection than the reply, so either may come first: a reply that comes first is
 * cached and then evicted, one that comes after is dropped. No entry is ever older than an
 * invalidation already processed (stress-tested: `test/integration/redis-near.test.ts`).
 */
import * as Option from "effect/Option"
import type * as Entry from "../../Entry.js"

interface Slot {
  readonly entry: Option.Option<Entry.Entry<unknown>>
  readonly size: number
  used: boolean
}

/** Reads of one key in flight, and how often the key changed since the oldest was sent. */
interface Flight {
  count: number
  epoch: number
}

/** What a read shows when its reply comes, to be cached. */
export class Ticket {
  constructor(readonly key: string, readonly flight: Flight, readonly epoch: number, readonly session: number) {}
}

export class Near {
  private readonly slots = new Map<string, Slot>()
  private readonly flights = new Map<string, Flight>()
  private bytes = 0
  private session = 0
  /** Whether tracking is in place and confirmed: only then does the cache answer or fill. */
  private up = false

  /** `state` is told 1 when the near tier answers, 0 when it does not (a gauge). */
  constructor(readonly capacity: number, readonly maxBytes: number, private readonly state: (on: 0 | 1) => void) {}

  /** The entry of `key`, or `undefined` when the near cache cannot answer for it. */
  get<A>(key: string): Option.Option<Entry.Entry<A>> | undefined {
    if (!this.up) return undefined
    const slot = this.slots.get(key)
    if (slot === undefined) return undefined
    slot.used = true
    return slot.entry as Option.Option<Entry.Entry<A>>
  }

  /** A read of `key` is sent to Redis. */
  begin(key: string): Ticket {
    let flight = this.flights.get(key)
    if (flight === undefined) {
      flight = { count: 0, epoch: 0 }
      this.flights.set(key, flight)
    }
    flight.count++
    return new Ticket(key, flight, flight.epoch, this.session)
  }

  /**
   * The reply of the read of `ticket`: `entry` (with the length of its text) is cached if
   * its key was not invalidated since the read was sent. Called for every read, also those
   * that failed or found nothing (`entry` undefined).
   */
  end(ticket: Ticket, entry: Entry.Entry<unknown> | undefined, size: number): void {
    const { flight, key } = ticket
    if (--flight.count === 0 && this.flights.get(key) === flight) this.flights.delete(key)
    if (entry === undefined || !this.up || ticket.session !== this.session || ticket.epoch !== flight.epoch) return
    if (size > this.maxBytes) return
    this.remove(key)
    while (this.slots.size >= this.capacity || this.bytes + size > this.maxBytes) this.evictOne()
    this.slots.set(key, { entry: Option.some(entry), size, used: false })
    this.bytes += size
  }

  /** `key` changed in Redis, or this process is about to write it. */
  invalidate(key: string): void {
    this.remove(key)
    const flight = this.flights.get(key)
    if (flight !== undefined) flight.epoch++
  }

  /** Forgets everything, and every read in flight is not cached. */
  empty(): void {
    this.session++
    this.slots.clear()
    this.bytes = 0
  }

  /** Starts answering, with an empty cache: reads sent before are not cached. */
  open(): void {
    this.empty()
    this.up = true
    this.state(1)
  }

  /** Stops answering and empties. */
  close(): void {
    if (this.up) this.state(0)
    this.up = false
    this.empty()
  }

  private remove(key: string): void {
    const slot = this.slots.get(key)
    if (slot === undefined) return
    this.slots.delete(key)
    this.bytes -= slot.size
  }

  private evictOne(): void {
    for (const [key, slot] of this.slots) {
      this.slots.delete(key)
      if (!slot.used) {
        this.bytes -= slot.size
        return
      }
      slot.used = false
      this.slots.set(key, slot)
    }
  }
}
