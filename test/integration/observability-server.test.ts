/**
 * Metrics out: examples/server.ts exports the library's metrics through
 * @effect/opentelemetry's Prometheus exporter at GET /metrics. The test reads the example
 * over real HTTP and scrapes it as Prometheus would; each job's series must equal what the
 * responses' `X-Cache` headers say the cache did.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type ExampleServer, startExampleServer } from "./fixtures/exampleServer.js"

/** Entries go stale two seconds after their fetch, so that the test sees stale reads too. */
const lifetimeMs = 2_000

let server: ExampleServer

beforeAll(async () => {
  server = await startExampleServer({ LIFETIME_SECONDS: String(lifetimeMs / 1000) })
})

afterAll(() => server?.stop())

interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

/** The samples of Prometheus' text format (comments skipped, label values unescaped). */
const parse = (text: string): Array<Sample> =>
  text.split("\n").filter((line) => line !== "" && !line.startsWith("#")).map((line) => {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (match === null) throw new Error(`not a Prometheus sample: ${line}`)
    const labels: Record<string, string> = {}
    for (const [, key, value] of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[key!] = value!.replace(/\\(["\\n])/g, (_, c: string) => (c === "n" ? "\n" : c))
    }
    return { name: match[1]!, labels, value: Number(match[3]) }
  })

const scrape = async () => {
  const response = await fetch(`${server.base}/metrics`)
  expect(response.status).toBe(200)
  expect(response.headers.get("content-type")).toContain("text/plain")
  return parse(await response.text())
}

/** The value of the one sample of `name` whose labels include `labels`; 0 when there is none. */
const valueOf = (samples: ReadonlyArray<Sample>, name: string, labels: Record<string, string>) => {
  const found = samples.filter((sample) => Object.entries(labels).every(([key, value]) => sample.labels[key] === value) && sample.name === name)
  expect(found.length, `samples of ${name} ${JSON.stringify(labels)}`).toBeLessThanOrEqual(1)
  return found[0]?.value ?? 0
}

type Status = "hit" | "stale" | "miss"

/** What the cache did, by job name, as the responses said. */
const did = new Map<string, Record<Status, number>>()

/** One GET; counts its `X-Cache` under `job`. */
const read = async (path: string, job: string) => {
  const response = await fetch(`${server.base}${path}`)
  await response.arrayBuffer()
  const status = response.headers.get("x-cache") as Status
  expect(["hit", "stale", "miss"]).toContain(status)
  const counts = did.get(job) ?? { hit: 0, stale: 0, miss: 0 }
  counts[status]++
  did.set(job, counts)
  return status
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe("examples/server.ts: GET /metrics", () => {
  it("each job's series equal what the reads did", async () => {
    // The job names, as the example's jobs report them: labels of the series.
    const jobs = { staff: "", user: "" }
    const N = 5
    const M = 3
    for (let i = 0; i < N; i++) await read("/staff", "staff")
    for (let i = 0; i < M; i++) await read("/users/alan", "user")
    await read("/users/nobody", "user") // 404: a miss whose fetch failed, not cached
    expect(did.get("staff")).toMatchObject({ miss: 1 })
    expect(did.get("user")).toMatchObject({ miss: 2 })

    // Past the lifetime: one stale read each, which enqueues one refresh each.
    await sleep(lifetimeMs + 500)
    expect(await read("/staff", "staff")).toBe("stale")
    expect(await read("/users/alan", "user")).toBe("stale")

    const first = await scrape()
    for (const sample of first.filter((sample) => sample.name === "cacheback_misses_total")) {
      const job = sample.labels.job!
      if (job.startsWith("QueryJob.filter(User#")) jobs.staff = job
      if (job.startsWith("QueryJob.get(User#")) jobs.user = job
    }
    expect(jobs.staff).not.toBe("")
    expect(jobs.user).not.toBe("")

    // The refreshes run in the background: wait until each job has stored its value.
    const deadline = performance.now() + 10_000
    for (;;) {
      const samples = await scrape()
      const refreshed = Object.values(jobs).map((job) => valueOf(samples, "cacheback_refreshed_total", { job }))
      if (refreshed.every((n) => n >= 1)) break
      if (performance.now() > deadline) throw new Error(`refreshes not done within 10 s:\n${server.output()}`)
      await sleep(50)
    }
    // A refreshed value is fresh: a hit.
    expect(await read("/staff", "staff")).toBe("hit")
    expect(await read("/users/alan", "user")).toBe("hit")

    const samples = await scrape()
    for (const [name, job] of Object.entries(jobs)) {
      const { hit, miss, stale } = did.get(name)!
      const series = (metric: string, labels: Record<string, string> = {}) => valueOf(samples, metric, { job, ...labels })
      expect({
        hits: series("cacheback_hits_total"),
        staleHits: series("cacheback_stale_hits_total"),
        misses: series("cacheback_misses_total"),
        syncFetches: series("cacheback_sync_fetches_total"),
        refreshed: series("cacheback_refreshed_total"),
        enqueued: series("cacheback_enqueued_total"),
        syncFetchDurations: series("cacheback_fetch_duration_ms_count", { where: "sync" }),
        backgroundFetchDurations: series("cacheback_fetch_duration_ms_count", { where: "background" }),
        waiting: series("cacheback_refreshes_waiting")
      }, name).toEqual({
        hits: hit,
        staleHits: stale,
        // Every miss fetched while its caller waited (the example's jobs fetch on a miss).
        misses: miss,
        syncFetches: miss,
        // Each stale read enqueued one refresh (its write-back made the next read a hit),
        // and each ran once.
        refreshed: stale,
        enqueued: stale,
        syncFetchDurations: miss,
        backgroundFetchDurations: stale,
        waiting: 0
      })
    }
    expect(did.get("staff")).toEqual({ miss: 1, hit: N, stale: 1 })
  }, 30_000)
})
