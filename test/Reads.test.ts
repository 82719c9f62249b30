/**
 * How the Redis store's single reads share round trips (`src/redis/internal/reads.ts`), on a
 * client that records the commands and answers them when the test says, in the order sent,
 * as Redis does on one connection. What reaches the real Redis is checked in
 * `test/integration/redis-store.test.ts`.
 */
import { describe, expect, it } from "@effect/vitest"
import type { Redis } from "ioredis"
import * as Reads from "../src/redis/internal/reads.js"

type Answer = (error: unknown, texts: Array<string | null>) => void

const recorder = () => {
  const sent: Array<{ readonly keys: ReadonlyArray<string>; readonly answer: Answer }> = []
  const client = {
    get: (key: string, done: (error: unknown, text: string | null) => void) =>
      sent.push({ keys: [key], answer: (error, texts) => done(error, texts[0] ?? null) }),
    mget: (keys: Array<string>, done: Answer) => sent.push({ keys, answer: done })
  }
  let now = 0
  const reads = Reads.make(client as unknown as Redis, { timeout: 100, now: () => now, defer: queueMicrotask })
  let answered = 0
  /** Answers the oldest round trip not answered yet with each key's text, then lets the readers run. */
  const answerNext = async () => {
    const next = sent[answered++]!
    next.answer(null, next.keys.map((key) => `text of ${key}`))
    await new Promise((resolve) => setImmediate(resolve))
  }
  return {
    reads,
    sent,
    inFlight: () => sent.length - answered,
    answerNext,
    skipNext: () => sent[answered++]!,
    advance: (millis: number) => {
      now += millis
    }
  }
}

describe("Reads", () => {
  it("a lone reader's read goes out at once, as a GET", async () => {
    const redis = recorder()
    const texts: Array<string | null> = []
    for (const key of ["a", "b", "c"]) {
      redis.reads.get(key, (_, text) => texts.push(text))
      expect(redis.inFlight()).toBe(1)
      await redis.answerNext()
    }
    expect(redis.sent.map((trip) => trip.keys)).toEqual([["a"], ["b"], ["c"]])
    expect(texts).toEqual(["text of a", "text of b", "text of c"])
  })

  it("64 readers: two round trips at most in flight, and two even groups after the first round", async () => {
    const redis = recorder()
    const rounds = new Array<number>(64).fill(0)
    const wrong: Array<string> = []
    let mostInFlight = 0
    const read = (reader: number) =>
      redis.reads.get(`k${reader}`, (error, text) => {
        if (error !== undefined || text !== `text of k${reader}`) wrong.push(`reader ${reader} got ${String(text)}`)
        if (++rounds[reader]! < 20) read(reader)
      })
    for (let reader = 0; reader < 64; reader++) {
      read(reader)
      mostInFlight = Math.max(mostInFlight, redis.inFlight())
    }
    while (redis.inFlight() > 0) {
      await redis.answerNext()
      mostInFlight = Math.max(mostInFlight, redis.inFlight())
    }
    expect(wrong).toEqual([])
    expect(rounds.every((n) => n === 20)).toBe(true)
    expect(mostInFlight).toBe(2)
    const sizes = redis.sent.map((trip) => trip.keys.length)
    // The first two reads go out alone (a round trip was free), the 62 others wait.
    expect(sizes.slice(0, 2)).toEqual([1, 1])
    // Then two groups of 32 (the two early readers, a read ahead, finish one round trip early).
    expect(sizes.slice(2, -1)).toEqual(new Array(sizes.length - 3).fill(32))
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(64 * 20)
  })

  it("overdue round trips fail their reads and those waiting behind them; late answers are dropped, and the next reads go out", async () => {
    const redis = recorder()
    const outcomes: Array<string> = []
    const record = (error: unknown, text: string | null) =>
      outcomes.push(error === undefined ? String(text) : (error as Error).message)
    for (const key of ["a", "b", "c"]) redis.reads.get(key, record)
    expect(redis.inFlight()).toBe(2)
    redis.advance(101)
    redis.reads.failOverdue()
    // "c" waited for the same stuck connection: it fails now rather than start its own
    // timeout once the others failed (a read waiting two timeouts).
    expect(outcomes).toEqual(Array(3).fill("Redis did not answer within 100 ms"))
    // The late answers reach no one; a read after goes out.
    await new Promise((resolve) => setImmediate(resolve))
    redis.skipNext().answer(null, ["late"])
    redis.skipNext().answer(null, ["late"])
    redis.reads.get("d", record)
    await redis.answerNext()
    expect(outcomes).toEqual([...Array(3).fill("Redis did not answer within 100 ms"), "text of d"])
    expect(redis.inFlight()).toBe(0)
  })

  it("getMany's round trip fails when overdue, like the batches", () => {
    const redis = recorder()
    const outcomes: Array<string> = []
    redis.reads.many(["a", "b"], (error, texts) => outcomes.push(error == null ? texts.join() : (error as Error).message))
    redis.advance(50)
    redis.reads.failOverdue()
    expect(outcomes).toEqual([])
    redis.advance(51)
    redis.reads.failOverdue()
    redis.skipNext().answer(null, ["late", "late"])
    expect(outcomes).toEqual(["Redis did not answer within 100 ms"])
  })
})
