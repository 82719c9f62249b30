import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricKey from "effect/MetricKey"

/**
 * The counters of one job, tagged `job=<name>`. They are updated with `unsafeUpdate`: a
 * `Metric.increment` effect per read would cost a large share of a memory hit (DESIGN.md §2,
 * BENCHMARKS.md).
 */
export interface JobMetrics {
  readonly hits: Metric.Metric.Counter<number>
  readonly staleHits: Metric.Metric.Counter<number>
  readonly misses: Metric.Metric.Counter<number>
  readonly syncFetches: Metric.Metric.Counter<number>
  readonly enqueued: Metric.Metric.Counter<number>
  readonly deduplicated: Metric.Metric.Counter<number>
  readonly refreshed: Metric.Metric.Counter<number>
  readonly refreshFailures: Metric.Metric.Counter<number>
  readonly storeErrors: Metric.Metric.Counter<number>
  readonly enqueueErrors: Metric.Metric.Counter<number>
  readonly fetchTimeouts: Metric.Metric.Counter<number>
  readonly backgroundSkipped: Metric.Metric.Counter<number>
  readonly backgroundTimeouts: Metric.Metric.Counter<number>
  readonly writesSuperseded: Metric.Metric.Counter<number>
  readonly queueFull: Metric.Metric.Counter<number>
  readonly fingerprintMisses: Metric.Metric.Counter<number>
  readonly staleIfError: Metric.Metric.Counter<number>
  readonly earlyRefreshes: Metric.Metric.Counter<number>
  /** `cacheback_fetch_duration_ms` of the job, where the fetch ran. */
  readonly fetchDurations: { readonly [Where in FetchPlace]: Metric.Metric.Histogram<number> }
}

interface Counter {
  readonly name: string
  readonly description: string
}

const counter = (name: string, description: string): Counter => ({ name, description })

export const hits = counter("cacheback_hits", "reads answered by a fresh entry")
export const staleHits = counter("cacheback_stale_hits", "reads answered by a stale entry while a refresh is queued")
export const misses = counter("cacheback_misses", "reads that found no value")
export const syncFetches = counter("cacheback_sync_fetches", "fetches run while a caller waits")
export const enqueued = counter("cacheback_enqueued", "refreshes put on the queue")
export const deduplicated = counter("cacheback_deduplicated", "refreshes not enqueued because one for the key waits")
export const refreshed = counter("cacheback_refreshed", "refreshes that stored a new value")
export const refreshFailures = counter("cacheback_refresh_failures", "refreshes that failed after their last attempt")
export const storeErrors = counter("cacheback_store_errors", "cache reads or writes that failed and were degraded")
export const enqueueErrors = counter("cacheback_enqueue_errors", "refreshes the queue refused or did not take in time")
export const fetchTimeouts = counter("cacheback_fetch_timeouts", "fetches interrupted at their deadline (Job.withFetchTimeout)")
export const fingerprintMisses = counter(
  "cacheback_fingerprint_misses",
  "entries of another job version or value schema, read as misses"
)
export const staleIfError = counter(
  "cacheback_stale_if_error",
  "reads whose synchronous fetch of a stale value failed and that served the stale value (withStaleIfError)"
)
export const earlyRefreshes = counter("cacheback_early_refreshes", "refreshes asked by a hit before expiry (withEarlyRefresh)")
export const backgroundTimeouts = counter(
  "cacheback_background_timeouts",
  "writes and enqueues after a read's decision interrupted at the store's backgroundTimeout"
)
export const writesSuperseded = counter(
  "cacheback_writes_superseded",
  "writes not made because the key was written after the read or fetch that made them began"
)
export const queueFull = counter(
  "cacheback_queue_full",
  "refreshes skipped because their queue held its maximum of waiting tasks"
)
export const backgroundSkipped = counter(
  "cacheback_background_skipped",
  "writes and enqueues after a read's decision skipped because the process had its maximum running"
)

/**
 * `Metric.tagged` would union the tags on every update and miss the hook cache; a counter
 * made from a tagged key resolves its hook once.
 */
const tagged = (spec: Counter, tag: string, value: string): Metric.Metric.Counter<number> =>
  Metric.fromMetricKey(
    MetricKey.tagged(MetricKey.counter(spec.name, { description: spec.description, incremental: true }), tag, value)
  )

const decodeErrors = counter("cacheback_decode_errors", "entries that did not decode and counted as misses")
const decodeErrorsByStore = new Map<string, Metric.Metric.Counter<number>>()

/**
 * Entries that a store could not decode (garbage, an old format, another schema), tagged
 * `store=<name>`: a store does not know the job.
 */
export const decodeErrorsFor = (store: string): Metric.Metric.Counter<number> => {
  let metric = decodeErrorsByStore.get(store)
  if (metric === undefined) {
    metric = tagged(decodeErrors, "store", store)
    decodeErrorsByStore.set(store, metric)
  }
  return metric
}

const byJob = new Map<string, JobMetrics>()

export const forJob = (job: string): JobMetrics => {
  let metrics = byJob.get(job)
  if (metrics === undefined) {
    const tag = (spec: Counter) => tagged(spec, "job", job)
    metrics = {
      hits: tag(hits),
      staleHits: tag(staleHits),
      misses: tag(misses),
      syncFetches: tag(syncFetches),
      enqueued: tag(enqueued),
      deduplicated: tag(deduplicated),
      refreshed: tag(refreshed),
      refreshFailures: tag(refreshFailures),
      storeErrors: tag(storeErrors),
      enqueueErrors: tag(enqueueErrors),
      fetchTimeouts: tag(fetchTimeouts),
      backgroundSkipped: tag(backgroundSkipped),
      backgroundTimeouts: tag(backgroundTimeouts),
      writesSuperseded: tag(writesSuperseded),
      queueFull: tag(queueFull),
      fingerprintMisses: tag(fingerprintMisses),
      staleIfError: tag(staleIfError),
      earlyRefreshes: tag(earlyRefreshes),
      fetchDurations: { sync: fetchDuration(job, "sync"), background: fetchDuration(job, "background") }
    }
    byJob.set(job, metrics)
  }
  return metrics
}

const noTags: ReadonlyArray<never> = []

export const bump = (counter: Metric.Metric.Counter<number>): void => counter.unsafeUpdate(1, noTags)

/** Where a fetch ran: while a caller waited, or as a background refresh. */
export type FetchPlace = "sync" | "background"

const fetchDurations = new Map<string, Metric.Metric.Histogram<number>>()

/**
 * How long fetches take, in milliseconds, tagged `job` and `where` (`sync`, `background`):
 * `cacheback_fetch_duration_ms`, buckets from 1 ms doubling to about 65 s. On fetches only,
 * never on a hit.
 */
export const fetchDuration = (job: string, where: FetchPlace): Metric.Metric.Histogram<number> => {
  const id = `${where}:${job}`
  let metric = fetchDurations.get(id)
  if (metric === undefined) {
    metric = Metric.fromMetricKey(
      MetricKey.histogram(
        "cacheback_fetch_duration_ms",
        MetricBoundaries.exponential({ start: 1, factor: 2, count: 17 }),
        "how long fetches take, by job and where they ran (sync: a caller waited; background: a refresh)"
      ).pipe(MetricKey.tagged("job", job), MetricKey.tagged("where", where))
    )
    fetchDurations.set(id, metric)
  }
  return metric
}

const waitingByJob = new Map<string, Metric.Metric.Gauge<number>>()

/**
 * `cacheback_refreshes_waiting{job}`: refreshes of the job waiting in this process's memory
 * queues for a fiber to run them (not those running, owed after a running one, or waiting
 * out a retry's backoff).
 */
export const refreshesWaiting = (job: string): Metric.Metric.Gauge<number> => {
  let metric = waitingByJob.get(job)
  if (metric === undefined) {
    // From a tagged key, for the reason `tagged` gives: the memory queue moves it on every
    // enqueue and take, with `unsafeModify` rather than an effect.
    metric = Metric.fromMetricKey(MetricKey.tagged(
      MetricKey.gauge("cacheback_refreshes_waiting", { description: "refreshes waiting in a memory queue of this process, by job" }),
      "job",
      job
    ))
    waitingByJob.set(job, metric)
  }
  return metric
}

/** Moves a gauge by `delta`, as `bump` does a counter. */
export const shift = (gauge: Metric.Metric.Gauge<number>, delta: number): void => gauge.unsafeModify(delta, noTags)

const nearCacheOn = Metric.gauge("cacheback_near_cache_on", {
  description: "1 while a Redis store's near cache answers (every tracking link up), 0 while it is bypassed"
})

/** The gauge of a Redis store's near tier, tagged `store=<prefix>`, as a setter. */
export const nearOn = (prefix: string): (on: 0 | 1) => void => {
  const gauge = Metric.tagged(nearCacheOn, "store", prefix)
  gauge.unsafeUpdate(0, noTags)
  return (on) => gauge.unsafeUpdate(on, noTags)
}
