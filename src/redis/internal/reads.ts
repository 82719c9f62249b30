import type { Redis } from "ioredis"

/**
 * Single reads of one store share round trips. A read when none is in flight goes out at
 * once as a `GET`, so a lone reader waits for nothing; reads that arrive while one is in
 * flight wait for it, then go out together as one `MGET`. Under load a round trip answers
 * every read that queued behind the last one.
 *
 * Written by hand: Effect's request batching groups the requests of one fiber's batched
 * region, not those of independent fibers (one per HTTP request), and ioredis's
 * auto-pipelining defers even a lone command to the next tick, which halved sequential
 * hits here.
 */
export interface Reads {
  readonly get: (key: string, done: (error: unknown, text: string | null) => void) => void
}

interface Waiting {
  readonly key: string
  readonly done: (error: unknown, text: string | null) => void
}

/** The most keys in one `MGET`: larger batches wait for the next round trip. */
const maxBatch = 512

export const make = (client: Redis): Reads => {
  let inFlight = false
  let scheduled = false
  let waiting: Array<Waiting> = []
  const flush = () => {
    scheduled = false
    send()
  }
  const send = () => {
    if (inFlight || waiting.length === 0) return
    const live = waiting.length <= maxBatch ? waiting : waiting.slice(0, maxBatch)
    waiting = waiting.length <= maxBatch ? [] : waiting.slice(maxBatch)
    inFlight = true
    const answered = (error: unknown, texts: ReadonlyArray<string | null> | null | undefined) => {
      inFlight = false
      // Readers resumed at once read again at once: unless this was a lone reader with no
      // one waiting, hold every read until they all ran (the microtask queued after their
      // resumption) and send them together with those already waiting, rather than let
      // two groups leapfrog each other with a round trip each.
      const burst = !scheduled && (live.length > 1 || waiting.length > 0)
      if (burst) scheduled = true
      for (let i = 0; i < live.length; i++) live[i]!.done(error ?? undefined, texts?.[i] ?? null)
      if (burst) queueMicrotask(flush)
    }
    // Callbacks rather than promises: no extra hops on the way back.
    if (live.length === 1) {
      client.get(live[0]!.key, (error, text) => answered(error, [text ?? null]))
    } else {
      client.mget(live.map((read) => read.key), answered)
    }
  }
  return {
    get: (key, done) => {
      waiting.push({ key, done })
      if (!scheduled) send()
    }
  }
}
