/**
 * Work after a read's decision (DESIGN.md §3.3): writes back a stale value or stores a
 * pending marker, then enqueues a refresh; when the queue refuses, refreshes in the
 * background instead. None of it adds its wait to the reader's: it runs in a fiber of the
 * store's engine, within its budget. Also the enqueue itself, shared with the operations
 * that ask for a refresh (`Job.asyncRefresh`, `Job.invalidate`), and early refreshes.
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import type * as Entry from "../Entry.js"
import type { FetchTimeout, KeyError } from "../Errors.js"
import { type Policy as RefreshPolicy, RefreshQueue, type Task } from "../RefreshQueue.js"
import { degrade } from "./faults.js"
import { fetchShared, refreshAttempt, type Target, tokenNow, write } from "./fetch.js"
import * as Metrics from "./metrics.js"

/** A target with the services of the caller that asked: a refresh it enqueues runs with them. */
export interface Asked<I, A, E, R> extends Target<I, A, E, R> {
  readonly context: Context.Context<R | RefreshQueue>
}

/**
 * Writes `entry` back (a stale value for a refresh timeout, or a pending marker; nothing when
 * `undefined`), then enqueues a refresh, all in the background. The write-back keeps the token `token` of what
 * the read found, and lands only while that is still there: never over a write made since.
 */
export const writeBackThenRefresh = <I, A, E, R>(
  asked: Asked<I, A, E, R>,
  entry: Entry.Value<A> | Entry.Pending | undefined,
  token: string
): Effect.Effect<void> => {
  const { engine } = asked.store
  const refresh = enqueueElseRefreshLater(asked, token)
  return engine.fork(
    asked.job.name,
    asked.key,
    entry === undefined ? refresh : Effect.zipRight(degrade(engine.throttle, asked.job.name, write(asked, entry, token), false), refresh)
  )
}

/**
 * An early refresh of a hit (XFetch): enqueued in the background, once per fetched value in
 * this runtime (after that a refresh of it is waiting or running), then collapsed by the
 * queue across processes.
 */
export const refreshEarly = <I, A, E, R>(asked: Asked<I, A, E, R>, entry: Entry.Value<A>): Effect.Effect<void> =>
  Effect.suspend(() => {
    const { engine } = asked.store
    if (!engine.askEarly(asked.key, entry.fetchedAt)) return Effect.void
    Metrics.bump(Metrics.forJob(asked.job.name).earlyRefreshes)
    return engine.fork(asked.job.name, asked.key, enqueueElseRefreshLater(asked, entry.token ?? ""))
  })

/**
 * Enqueues a refresh of the key; when the queue refuses it, refreshes now over the key's
 * token `token` (sharing a fetch of the key in flight that read it): `Job.asyncRefresh` and
 * `Job.invalidate` (cacheback). Answers the fetched value in that case, `None` when queued;
 * fails with the fetch's error.
 */
export const enqueueElseRefresh = <I, A, E, R>(
  asked: Asked<I, A, E, R>,
  token: string | undefined
): Effect.Effect<Option.Option<A>, E | FetchTimeout | KeyError, R> =>
  Effect.flatMap(
    enqueue(asked, "refreshing synchronously"),
    (queued) => queued === "queued" ? Effect.succeedNone : Effect.asSome(refreshNow(asked, token))
  )

/** A shared fetch over `token`, or, when it is not known, over the token the store holds now (`""` if it cannot tell). */
const refreshNow = <I, A, E, R>(asked: Asked<I, A, E, R>, token: string | undefined): Effect.Effect<A, E | FetchTimeout | KeyError, R> =>
  token !== undefined
    ? fetchShared(asked, token)
    : Effect.flatMap(degrade(asked.store.engine.throttle, asked.job.name, tokenNow(asked), ""), (now) => fetchShared(asked, now))

/**
 * Enqueues a refresh of the key; when the queue refuses it, runs the refresh in the
 * background of the store's engine instead, over the key's token `token` (logged when it
 * fails: nobody waits for it).
 */
const enqueueElseRefreshLater = <I, A, E, R>(asked: Asked<I, A, E, R>, token: string): Effect.Effect<void> =>
  Effect.flatMap(enqueue(asked, "refreshing in the background"), (queued) =>
    queued === "queued" ? Effect.void : Effect.asVoid(asked.store.engine.start(
      Effect.catchAllCause(
        Effect.provide(fetchShared(asked, token), asked.context),
        (cause) =>
          Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logWarning(
            `cacheback: job "${asked.job.name}": the background refresh of "${asked.key}" failed; the entry stays as it was`,
            cause
          )
      )
    )))

/**
 * The lifetime and cache TTL the job gives `input`, for the task; none when a function of
 * the job's fails on it (the refresh then fails the same way, in the background, never the
 * read that asked).
 */
const policyOf = <I, A, E, R>(job: Asked<I, A, E, R>["job"], input: I): RefreshPolicy | undefined => {
  try {
    return { lifetime: Duration.toMillis(job.expiry(input)), cacheTtl: Duration.toMillis(job.cacheTtl(input)) }
  } catch {
    return undefined
  }
}

/**
 * Puts a refresh of the key on the queue: `queued` (or collapsed into a waiting task,
 * counted as deduplicated, or skipped when the queue is full, counted), or `refused` when the caller must refresh (counted in
 * `cacheback_enqueue_errors`, and logged once per job every 10 s, saying what follows).
 */
export const enqueue = <I, A, E, R>(asked: Asked<I, A, E, R>, fallback: string): Effect.Effect<"queued" | "refused"> => {
  const { job, key, store } = asked
  const task: Task = {
    job: job.name,
    key,
    store: store.identity,
    input: asked.input,
    inputSchema: job.inputSchema,
    options: job.queueOptions,
    policy: policyOf(job, asked.input),
    // The span of the request that asked, for the refresh's span to link to.
    span: Option.getOrUndefined(Context.getOption(asked.context, Tracer.ParentSpan)),
    // One attempt with the caller's services, in a scope of its own: the caller's scope (a
    // request's) may be long closed when it runs.
    refresh: Effect.provide(Effect.scoped(refreshAttempt(asked)), asked.context)
  }
  const counters = Metrics.forJob(job.name)
  return Effect.matchEffect(Context.get(asked.context, RefreshQueue).enqueue(task), {
    onFailure: (error) => {
      Metrics.bump(counters.enqueueErrors)
      return Effect.as(
        store.engine.throttle.fault("enqueue", job.name, `cannot enqueue a refresh of "${key}": ${error.reason}; ${fallback}`),
        "refused" as const
      )
    },
    onSuccess: (enqueued) => {
      if (enqueued !== "full") {
        Metrics.bump(enqueued === "enqueued" ? counters.enqueued : counters.deduplicated)
        return Effect.succeed("queued" as const)
      }
      // Skipped, not refreshed here: the workers are behind, likely because the origin is.
      Metrics.bump(counters.queueFull)
      return Effect.as(
        store.engine.throttle.fault("enqueue", job.name, `the queue holds its maximum of waiting tasks: the refresh of "${key}" is skipped`),
        "queued" as const
      )
    }
  })
}
