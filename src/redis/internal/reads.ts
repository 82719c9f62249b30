import calculateSlot from "cluster-key-slot"
import type { Cluster, Redis } from "ioredis"

/**
 * Single reads of one store share round trips, two at most in flight. A read when a round
 * trip is free goes out at once as a `GET`, so a lone reader waits for nothing; reads that
 * arrive while both are in flight wait, then go out together as one `MGET`. Under load the
 * readers form two groups of about the same size, each with its round trip: Node decodes
 * and resumes one group while Redis answers the other (with one round trip in flight, each
 * waited for the other: 64 readers read 15–20% faster with two, BENCHMARKS.md). A group
 * sent while the other is in flight takes at most half of all reads, the rest wait for
 * the other's return and join it, so that a lopsided start (63 and 1) evens out in a round.
 *
 * A round trip that takes longer than `timeout` fails its reads when `failOverdue` next
 * looks (the store calls it a few times per timeout), and its late answer is dropped: one
 * check per round trip rather than ioredis's `commandTimeout`, whose timer per command
 * costs a measurable share of sequential hits (BENCHMARKS.md).
 *
 * On a Redis Cluster each master has its own round trips (a slow or failing master holds up
 * only its own keys), and a round trip of many keys is one `MGET` per slot, pipelined per
 * node (`readSlots`).
 *
 * Written by hand: Effect's request batching groups the requests of one fiber's batched
 * region, not those of independent fibers (one per HTTP request), and ioredis's
 * auto-pipelining defers even a lone command to the next tick, which slows sequential
 * hits (BENCHMARKS.md).
 */
export interface Reads {
  readonly get: (key: string, done: (error: unknown, text: string | null) => void) => void
  /** Reads `keys` as `get` does, in the same round trip: when one is free, one `MGET` sent at once. */
  readonly getAll: (keys: ReadonlyArray<string>, done: Gathered) => void
  /**
   * Reads `keys` now, in one round trip per node, outside the batches (`getMany`); fails if
   * any key fails, or when the round trip is overdue (as the batches do).
   */
  readonly many: Many
  /** Fails the round trips in flight that have taken longer than the timeout. */
  readonly failOverdue: () => void
}

type Many = (keys: Array<string>, done: (error: unknown, texts: ReadonlyArray<string | null>) => void) => void

interface Options {
  readonly timeout: number
  readonly now: () => number
  /**
   * Runs `f` once the fibers resumed so far have run: on the store's Effect `Scheduler`
   * (a microtask under the default one), so that a scheduler of a test's own decides it too.
   */
  readonly defer: (f: () => void) => void
}

interface Waiting {
  readonly key: string
  readonly done: (error: unknown, text: string | null) => void
}

/** How a round trip answers: one error for all (`error`), or an error per key (`errors`, on a cluster). */
type Answered = (
  error: unknown,
  texts: ReadonlyArray<string | null> | null | undefined,
  errors?: ReadonlyArray<unknown>
) => void

/** Sends one round trip's keys. */
type RoundTrip = (reads: ReadonlyArray<Waiting>, answered: Answered) => void

/** The most keys in one round trip: larger batches wait for the next one. */
const maxBatch = 512

/** Round trips in flight at once on one connection (per master on a cluster). */
const roundTrips = 2

/** Fewer reads than this, in flight and waiting, go out without being split into groups. */
const splitFrom = 16

interface Sent {
  readonly reads: ReadonlyArray<Waiting>
  readonly sentAt: number
}

/** Reads on one Redis. */
export const make = (client: Redis, options: Options): Reads => {
  const batch = batched((reads, answered) => {
    // Callbacks rather than promises: no extra hops on the way back.
    if (reads.length === 1) client.get(reads[0]!.key, (error, text) => answered(error, [text ?? null]))
    else client.mget(reads.map((read) => read.key), answered)
  }, options)
  const many = deadlines(options, (keys, done) => client.mget(keys, (error, texts) => done(error, texts ?? [])))
  return {
    get: batch.get,
    getAll: batch.getAll,
    many: many.many,
    failOverdue: () => {
      batch.failOverdue()
      many.failOverdue()
    }
  }
}

/**
 * Round trips in flight, each failed by `failOverdue` once it has taken longer than the
 * timeout (`fail`); the answer of one failed so is dropped, since it is no longer in `open`.
 */
const overdue = <T extends { readonly sentAt: number }>(options: Options, fail: (trip: T, error: Error) => void) => {
  const open = new Set<T>()
  return {
    open,
    failOverdue: () => {
      const now = options.now()
      for (const trip of open) {
        if (now - trip.sentAt > options.timeout) {
          open.delete(trip)
          fail(trip, new Error(`Redis did not answer within ${options.timeout} ms`))
        }
      }
    }
  }
}

/**
 * `many` failed when overdue by the store's sweep, like the batches: a getMany of 100 keys
 * raced against a timer (`Effect.timeoutFail`, two fibers) cost a tenth of its time.
 */
const deadlines = (options: Options, send: Many) => {
  const calls = overdue<{ readonly sentAt: number; readonly done: Parameters<Many>[1] }>(
    options,
    (call, error) => call.done(error, [])
  )
  return {
    many: ((keys, done) => {
      const call = { sentAt: options.now(), done }
      calls.open.add(call)
      send(keys, (error, texts) => {
        if (calls.open.delete(call)) done(error, texts)
      })
    }) satisfies Many,
    failOverdue: calls.failOverdue
  }
}

/** Reads on a Redis Cluster: round trips per master, many keys one `MGET` per slot. */
export const makeCluster = (cluster: Cluster, options: Options): Reads => {
  const roundTrip: RoundTrip = (reads, answered) => {
    if (reads.length === 1) cluster.get(reads[0]!.key, (error, text) => answered(error, [text ?? null]))
    else readSlots(cluster, reads.map((read) => read.key), (texts, errors) => answered(undefined, texts, errors))
  }
  // By the master that served the key's slot when it was read. A batch whose slots moved
  // meanwhile still reads right: `readSlots` groups by the slot map of its sending.
  const byNode = new Map<string, ReturnType<typeof batched>>()
  const batchOf = (key: string) => {
    const node = cluster.slots[calculateSlot(key)]?.[0] ?? ""
    let batch = byNode.get(node)
    if (batch === undefined) {
      batch = batched(roundTrip, options)
      byNode.set(node, batch)
    }
    return batch
  }
  const many = deadlines(options, (keys, done) =>
    readSlots(cluster, keys, (texts, errors) => done(errors?.find((error) => error !== undefined), texts)))
  return {
    get: (key, done) => batchOf(key).get(key, done),
    // Each node's keys in its own round trip (a store's tags share one slot: one round trip).
    getAll: (keys, done) => {
      const nodes = new Map<ReturnType<typeof batched>, Array<number>>()
      for (let i = 0; i < keys.length; i++) {
        const batch = batchOf(keys[i]!)
        const indices = nodes.get(batch)
        if (indices === undefined) nodes.set(batch, [i])
        else indices.push(i)
      }
      const answer = gather(keys.length, done)
      for (const [batch, indices] of nodes) {
        batch.getAll(indices.map((i) => keys[i]!), (error, answered) => {
          for (let j = 0; j < indices.length; j++) answer(indices[j]!, error, answered[j] ?? null)
        })
      }
    },
    many: many.many,
    failOverdue: () => {
      for (const batch of byNode.values()) batch.failOverdue()
      many.failOverdue()
    }
  }
}

/** How `getAll` answers: the first error of its keys, or the text of each. */
type Gathered = (error: unknown, texts: ReadonlyArray<string | null>) => void

/** Collects the answers of `count` keys, by index, into one call of `done` once all came. */
const gather = (count: number, done: Gathered) => {
  const texts: Array<string | null> = new Array(count).fill(null)
  let failure: unknown
  let pending = count
  if (pending === 0) done(undefined, texts)
  return (i: number, error: unknown, text: string | null) => {
    if (error != null) failure ??= error
    else texts[i] = text
    if (--pending === 0) done(failure, texts)
  }
}

const batched = (roundTrip: RoundTrip, options: Options) => {
  // The reads waiting behind an overdue round trip fail with it: they wait for the same
  // connection, and would otherwise start their own timeout only once it failed (a read
  // waiting two timeouts: DESIGN.md §6).
  const trips = overdue<Sent>(options, (sent, error) => {
    const behind = waiting
    waiting = []
    settle(behind.length === 0 ? sent.reads : sent.reads.concat(behind), error, null, undefined)
  })
  const inFlight = trips.open
  let scheduled = false
  let waiting: Array<Waiting> = []
  const flush = () => {
    scheduled = false
    send()
  }
  const settle = (
    reads: ReadonlyArray<Waiting>,
    error: unknown,
    texts: ReadonlyArray<string | null> | null | undefined,
    errors: ReadonlyArray<unknown> | undefined
  ) => {
    // Readers resumed at once read again at once: unless this was a lone reader with no
    // one waiting, hold every read until they all ran (the task deferred after their
    // resumption) and send them together with those already waiting, rather than let two
    // groups leapfrog each other with a round trip each.
    const burst = !scheduled && (reads.length > 1 || waiting.length > 0)
    if (burst) scheduled = true
    if (errors === undefined) {
      for (let i = 0; i < reads.length; i++) reads[i]!.done(error ?? undefined, texts?.[i] ?? null)
    } else {
      for (let i = 0; i < reads.length; i++) reads[i]!.done(errors[i], texts?.[i] ?? null)
    }
    if (burst) options.defer(flush)
  }
  const send = () => {
    while (inFlight.size < roundTrips && waiting.length > 0) {
      let other = 0
      for (const sent of inFlight) other += sent.reads.length
      const all = waiting.length + other
      const size = Math.min(all < splitFrom ? waiting.length : Math.ceil(all / 2), waiting.length, maxBatch)
      const reads = waiting.length === size ? waiting : waiting.slice(0, size)
      waiting = waiting.length === size ? [] : waiting.slice(size)
      const sent: Sent = { reads, sentAt: options.now() }
      inFlight.add(sent)
      roundTrip(reads, (error, texts, errors) => {
        if (inFlight.delete(sent)) settle(reads, error, texts, errors)
      })
    }
  }
  return {
    get: (key: string, done: Waiting["done"]) => {
      waiting.push({ key, done })
      if (!scheduled) send()
    },
    getAll: (keys: ReadonlyArray<string>, done: Gathered) => {
      const answer = gather(keys.length, done)
      for (let i = 0; i < keys.length; i++) waiting.push({ key: keys[i]!, done: (error, text) => answer(i, error, text) })
      if (!scheduled) send()
    },
    failOverdue: trips.failOverdue
  }
}

/**
 * Reads `keys` on a cluster, where one `MGET` may only name keys of one slot: one `MGET` per
 * slot, the slots of each node in one pipeline, the nodes in parallel. Answers each key's
 * text, and each key's error if any failed (`errors[i]`, undefined for those that did not).
 *
 * ioredis refuses a pipeline whose slots are not all on one node (the slot map changed since
 * the grouping), and answers a command of a pipeline with the redirection of a slot being
 * moved (`MOVED`, `ASK`, `TRYAGAIN` while its keys are split between two nodes): those slots
 * are read again alone, as commands that ioredis redirects and retries itself.
 */
export const readSlots = (
  cluster: Cluster,
  keys: ReadonlyArray<string>,
  done: (texts: Array<string | null>, errors: Array<unknown> | undefined) => void
): void => {
  const texts: Array<string | null> = new Array(keys.length).fill(null)
  let errors: Array<unknown> | undefined
  const fill = (slot: ReadonlyArray<number>, error: unknown, values: ReadonlyArray<string | null> | null | undefined) => {
    for (let j = 0; j < slot.length; j++) {
      if (error != null) (errors ??= new Array(keys.length))[slot[j]!] = error
      else texts[slot[j]!] = values?.[j] ?? null
    }
  }
  // One more than the commands in flight until all are sent, so that none finishes early.
  let pending = 1
  const finish = () => {
    if (--pending === 0) done(texts, errors)
  }
  const alone = (slot: ReadonlyArray<number>) => {
    pending++
    cluster.mget(slot.map((i) => keys[i]!), (error, values) => {
      fill(slot, error, values)
      finish()
    })
  }
  // The key indices of each slot, and the slots of each node group (master and replicas, as
  // ioredis groups a pipeline).
  const bySlot = new Map<number, Array<number>>()
  for (let i = 0; i < keys.length; i++) {
    const slot = calculateSlot(keys[i]!)
    const indices = bySlot.get(slot)
    if (indices === undefined) bySlot.set(slot, [i])
    else indices.push(i)
  }
  const byNode = new Map<string, Array<Array<number>>>()
  for (const [slot, indices] of bySlot) {
    const node = cluster.slots[slot]?.join(";") ?? ""
    const slots = byNode.get(node)
    if (slots === undefined) byNode.set(node, [indices])
    else slots.push(indices)
  }
  for (const slots of byNode.values()) {
    if (slots.length === 1) {
      alone(slots[0]!)
      continue
    }
    pending++
    const pipeline = cluster.pipeline()
    for (const slot of slots) pipeline.mget(slot.map((i) => keys[i]!))
    pipeline.exec((error, results) => {
      if (error != null || results == null) {
        for (const slot of slots) alone(slot)
      } else {
        for (let s = 0; s < slots.length; s++) {
          const [failed, values] = results[s]!
          if (failed != null && redirected(failed)) alone(slots[s]!)
          else fill(slots[s]!, failed, values as ReadonlyArray<string | null>)
        }
      }
      finish()
    })
  }
  finish()
}

const redirected = (error: Error): boolean => /^(MOVED|ASK|TRYAGAIN) /.test(error.message)
