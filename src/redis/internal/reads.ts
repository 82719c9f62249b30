import type { Redis } from "ioredis"

/**
 * Single reads of one store share round trips. A read when none is in flight goes out at
 * once as a `GET`, so a lone reader waits for nothing; reads that arrive while one is in
 * flight wait for it, then go out together as one `MGET`. Under load a round trip answers
 * every read that queued behind the last one.
 *
 * A round trip that takes longer than `timeout` fails its reads when `failOverdue` next
 * looks (the store calls it a few times per timeout), and its late answer is dropped: one
 * check per round trip rather than ioredis's `commandTimeout`, whose timer per command
 * costs a measurable share of sequential hits (BENCHMARKS.md).
 *
 * Written by hand: Effect's request batching groups the requests of one fiber's batched
 * region, not those of independent fibers (one per HTTP request), and ioredis's
 * auto-pipelining defers even a lone command to the next tick, which slows sequential
 * hits (BENCHMARKS.md).
 */
export interface Reads {
  readonly get: (key: string, done: (error: unknown, text: string | null) => void) => void
  /** Fails the round trip in flight if it has taken longer than the timeout. */
  readonly failOverdue: () => void
}

interface Waiting {
  readonly key: string
  readonly done: (error: unknown, text: string | null) => void
}

/** The most keys in one `MGET`: larger batches wait for the next round trip. */
const maxBatch = 512

export const make = (client: Redis, options: { readonly timeout: number; readonly now: () => number }): Reads => {
  let inFlight: { readonly reads: ReadonlyArray<Waiting>; readonly sentAt: number } | undefined
  let scheduled = false
  let waiting: Array<Waiting> = []
  const flush = () => {
    scheduled = false
    send()
  }
  const settle = (reads: ReadonlyArray<Waiting>, error: unknown, texts: ReadonlyArray<string | null> | null | undefined) => {
    inFlight = undefined
    // Readers resumed at once read again at once: unless this was a lone reader with no
    // one waiting, hold every read until they all ran (the microtask queued after their
    // resumption) and send them together with those already waiting, rather than let two
    // groups leapfrog each other with a round trip each.
    const burst = !scheduled && (reads.length > 1 || waiting.length > 0)
    if (burst) scheduled = true
    for (let i = 0; i < reads.length; i++) reads[i]!.done(error ?? undefined, texts?.[i] ?? null)
    if (burst) queueMicrotask(flush)
  }
  const send = () => {
    if (inFlight !== undefined || waiting.length === 0) return
    const reads = waiting.length <= maxBatch ? waiting : waiting.slice(0, maxBatch)
    waiting = waiting.length <= maxBatch ? [] : waiting.slice(maxBatch)
    const sent = { reads, sentAt: options.now() }
    inFlight = sent
    // An answer that comes after `failOverdue` failed the round trip is dropped.
    const answered = (error: unknown, texts: ReadonlyArray<string | null> | null | undefined) => {
      if (inFlight === sent) settle(reads, error, texts)
    }
    // Callbacks rather than promises: no extra hops on the way back.
    if (reads.length === 1) {
      client.get(reads[0]!.key, (error, text) => answered(error, [text ?? null]))
    } else {
      client.mget(reads.map((read) => read.key), answered)
    }
  }
  return {
    get: (key, done) => {
      waiting.push({ key, done })
      if (!scheduled) send()
    },
    failOverdue: () => {
      if (inFlight !== undefined && options.now() - inFlight.sentAt > options.timeout) {
        settle(inFlight.reads, new Error(`Redis did not answer within ${options.timeout} ms`), null)
      }
    }
  }
}
