import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Metric, TestClock, Tracer } from "effect"
import { CacheStore, Job, TestRefreshQueue } from "effect-cacheback"
import { count, counting } from "./support/kit.js"

const layer = Layer.mergeAll(CacheStore.layerMemory({ capacity: 100 }), TestRefreshQueue.layer)

/** Runs `effect` under a tracer that records the spans it starts (name and attributes). */
const recordingSpans = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Effect.tracer, (native) => {
    const spans: Array<{ name: string; attributes: Record<string, unknown> }> = []
    const tracer = Tracer.make({
      span: (name, ...rest) => {
        const span = native.span(name, ...rest)
        spans.push({ name, get attributes() { return Object.fromEntries(span.attributes) } })
        return span
      },
      context: (f) => f()
    })
    return Effect.map(Effect.withTracer(effect, tracer), () => spans)
  })

describe("metrics: always on, per job", () => {
  it.effect("count hits, stale hits, misses, sync fetches, enqueued, deduplicated and refreshed", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "metricsJob", fetch: counting().fetch })
      const m = Job.metrics(job)
      yield* Job.get(job, "a") // miss, sync fetch
      yield* Job.get(job, "a") // hit
      yield* TestClock.setTime(600_001)
      yield* Job.get(job, "a") // stale, enqueued
      yield* Job.asyncRefresh(job, "a") // deduplicated: one waits already
      yield* TestRefreshQueue.drain // refreshed
      const counts = yield* Effect.all({
        hits: count(m.hits),
        staleHits: count(m.staleHits),
        misses: count(m.misses),
        syncFetches: count(m.syncFetches),
        enqueued: count(m.enqueued),
        deduplicated: count(m.deduplicated),
        refreshed: count(m.refreshed),
        refreshFailures: count(m.refreshFailures)
      })
      expect(counts).toEqual({
        hits: 1,
        staleHits: 1,
        misses: 1,
        syncFetches: 1,
        enqueued: 1,
        deduplicated: 1,
        refreshed: 1,
        refreshFailures: 0
      })
    }).pipe(Effect.provide(layer)))

  it.effect("two jobs have their own counters", () =>
    Effect.gen(function*() {
      const one = Job.make({ name: "metricsOne", fetch: counting().fetch })
      const two = Job.make({ name: "metricsTwo", fetch: counting().fetch })
      yield* Job.get(one, "a")
      yield* Job.get(one, "a")
      expect(yield* count(Job.metrics(one).hits)).toBe(1)
      expect(yield* count(Job.metrics(two).hits)).toBe(0)
    }).pipe(Effect.provide(layer)))
})

describe("spans: opt-in on reads, always on fetches and refreshes", () => {
  it.effect("a hit starts no span by default", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "spansOff", fetch: counting().fetch })
      yield* Job.get(job, "a")
      const spans = yield* recordingSpans(Job.get(job, "a"))
      expect(spans).toEqual([])
    }).pipe(Effect.provide(layer)))

  it.effect("a fetch and a background refresh carry spans even when reads do not", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "spansSlowPaths", fetch: counting().fetch })
      const onMiss = yield* recordingSpans(Job.get(job, "a"))
      expect(onMiss.map((span) => span.name)).toEqual(["cacheback.fetch"])
      expect(onMiss[0]!.attributes).toMatchObject({ "cacheback.job": "spansSlowPaths" })
      yield* TestClock.setTime(600_001)
      yield* Job.get(job, "a")
      const onRefresh = yield* recordingSpans(TestRefreshQueue.drain)
      expect(onRefresh.map((span) => span.name)).toEqual(["cacheback.refresh", "cacheback.fetch"])
    }).pipe(Effect.provide(layer)))

  it.effect("withSpans: a cacheback.get span per read with job, key and status", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "spansOn", fetch: counting().fetch }).pipe(Job.withSpans())
      yield* Job.get(job, "a")
      const spans = yield* recordingSpans(Job.get(job, "a"))
      expect(spans.map((span) => span.name)).toEqual(["cacheback.get"])
      expect(spans[0]!.attributes).toEqual({
        "cacheback.job": "spansOn",
        "cacheback.key": job.key("a").pipe((key) => key._tag === "Right" ? key.right : ""),
        "cacheback.status": "hit"
      })
    }).pipe(Effect.provide(layer)))

  it.effect("withSpans: a span around every other operation too", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "spansEveryOp", fetch: counting().fetch }).pipe(Job.withSpans())
      const spans = yield* recordingSpans(Effect.all([
        Job.set(job, "a", "v"),
        Job.rawGet(job, "a"),
        Job.getMany(job, ["a"]),
        Job.invalidate(job, "a"),
        Job.asyncRefresh(job, "a"),
        Job.refresh(job, "a"),
        Job.delete(job, "a")
      ]))
      expect(spans.map((span) => span.name)).toEqual([
        "cacheback.set",
        "cacheback.rawGet",
        "cacheback.getMany",
        "cacheback.invalidate",
        "cacheback.asyncRefresh",
        "cacheback.refresh",
        "cacheback.fetch",
        "cacheback.delete"
      ])
      expect(spans[0]!.attributes).toMatchObject({ "cacheback.job": "spansEveryOp" })
    }).pipe(Effect.provide(layer)))

  it.effect("without withSpans, those operations start no span", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "spansNoOps", fetch: counting().fetch })
      yield* Job.set(job, "a", "v")
      const spans = yield* recordingSpans(Effect.all([Job.rawGet(job, "a"), Job.getMany(job, ["a"]), Job.delete(job, "a")]))
      expect(spans).toEqual([])
    }).pipe(Effect.provide(layer)))

  it.effect("layerSpans turns them on for every job", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "spansLayer", fetch: counting().fetch })
      const spans = yield* recordingSpans(Job.get(job, "a"))
      expect(spans.map((span) => span.name)).toEqual(["cacheback.get", "cacheback.fetch"])
      expect(spans[0]!.attributes["cacheback.status"]).toBe("miss")
    }).pipe(Effect.provide(Layer.merge(layer, Job.layerSpans()))))
})

describe("a refresh traced to its request; fetch durations", () => {
  it.effect("the refresh's span is a root span with a link to the span of the read that enqueued it", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "linkedRefresh", fetch: counting().fetch })
      const spans: Array<Tracer.Span> = []
      const native = yield* Effect.tracer
      yield* Effect.gen(function*() {
        yield* Job.get(job, "a")
        yield* TestClock.setTime(600_001)
        yield* Effect.withSpan(Job.get(job, "a"), "GET /a")
        yield* TestRefreshQueue.drain
      }).pipe(Effect.withTracer(Tracer.make({
        span: (...args) => {
          const span = native.span(...args)
          spans.push(span)
          return span
        },
        context: (f) => f()
      })))
      const request = spans.find((span) => span.name === "GET /a")!
      const refresh = spans.find((span) => span.name === "cacheback.refresh")!
      expect(refresh.parent._tag).toBe("None")
      expect(refresh.links.map((link) => link.span.spanId)).toEqual([request.spanId])
    }).pipe(Effect.provide(layer)))

  it.effect("fetch durations are recorded by job and by where the fetch ran", () =>
    Effect.gen(function*() {
      const job = Job.make({ name: "timedFetch", fetch: (_: string) => Effect.as(Effect.sleep("30 millis"), 1) })
      const histogram = (where: "sync" | "background") => Metric.value(Job.metrics(job).fetchDurations[where])
      const read = yield* Effect.fork(Job.get(job, "a"))
      yield* TestClock.adjust("30 millis")
      yield* read.await
      yield* Job.asyncRefresh(job, "b")
      const drained = yield* Effect.fork(TestRefreshQueue.drain)
      yield* TestClock.adjust("30 millis")
      yield* drained.await
      const [sync, background] = [yield* histogram("sync"), yield* histogram("background")]
      expect([sync.count, sync.sum]).toEqual([1, 30])
      expect([background.count, background.sum]).toEqual([1, 30])
    }).pipe(Effect.provide(layer)))
})
