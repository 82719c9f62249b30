/**
 * A `RefreshQueue` on BullMQ: refreshes leave the process as tasks `{ job, key,
 * input, store }` and run in `RefreshWorker`s, in any number of processes. `store` is the
 * identity of the producer's cache store (`redis:<prefix>`; absent for an in-process
 * store), so that a worker writing elsewhere refuses the task instead of refreshing
 * entries nobody reads.
 *
 * - Enqueues of one key collapse while its task waits; while it runs, one more may wait
 *   (BullMQ deduplication with `keepLastIfActive`).
 * - `Job.withQueueOptions` picks the BullMQ queue, priority, attempts and backoff.
 * - An enqueue never hangs: when BullMQ does not answer within `enqueueTimeout` (Redis
 *   unreachable) it fails with `EnqueueError`; a stale read has answered already and
 *   refreshes in its process, in the background (`Job.asyncRefresh` synchronously).
 *
 * @since 0.1.0
 */
import { type ConnectionOptions, type JobsOptions, Queue } from "bullmq"
import * as Context from "effect/Context"
import type * as Clock from "effect/Clock"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import type { ClusterNode, ClusterOptions } from "ioredis"
import { EnqueueError } from "../Errors.js"
import { describe } from "../internal/describe.js"
import * as Token from "../internal/token.js"
import { integer, nonEmpty, positiveMillis } from "../internal/options.js"
import {
  defaultAttempts,
  defaultBackoff,
  type Enqueued,
  type QueueOptions,
  RefreshQueue,
  type Task
} from "../RefreshQueue.js"
import {
  connect,
  type Connection,
  isClusterConnection,
  isConnected,
  onCluster,
  untagged
} from "./internal/bullConnection.js"
import { neverThrow } from "./internal/connection.js"
import * as TaskData from "./internal/task.js"

/**
 * What a `RefreshWorker` needs to consume the tasks of this queue: the same connection, the
 * same queue names, the same BullMQ prefix.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** The connection as given to the layer: its `connection` (ioredis options or a client), or `{ cluster }`. */
  readonly connection: ConnectionOptions | { readonly cluster: ClusterConnection }
  /** The queue of jobs without a `queue` option. */
  readonly queueName: string
  /** BullMQ's key prefix (its default: `"bull"`). */
  readonly prefix: string | undefined
  /** The BullMQ queue a job's tasks go to: its `queue` option, else `queueName`. */
  readonly queueOf: (options: QueueOptions) => string
}

/**
 * @since 0.1.0
 * @category tags
 */
export class BullRefreshQueue extends Context.Tag("effect-cacheback/BullRefreshQueue")<BullRefreshQueue, Service>() {}

/**
 * @since 0.1.0
 * @category models
 */
export type Options = CommonOptions & (
  | {
    /**
     * As BullMQ takes it: ioredis options of one Redis (`{ host, port }`, `{ url }`) or a
     * client (a `Redis`, or a `Cluster`). With options, the layer and each worker create
     * their clients and close them; a client is shared by the producer's queues and the
     * workers (which duplicate it for their blocking connection), and left open. A client
     * should have `enableOfflineQueue: false` for the producer, `maxRetriesPerRequest: null`
     * for workers (on a `Cluster`: in its `redisOptions`).
     */
    readonly connection: ConnectionOptions
    readonly cluster?: never
  }
  | {
    /**
     * A Redis Cluster (DESIGN.md §5.3): its seed nodes and ioredis `Cluster` options. The layer
     * and each worker create their `Cluster` clients: the producer's fails an enqueue at
     * once while a node is down or failing over, the workers' wait. On a cluster the
     * prefix or every queue name needs a hash tag (`queueName: "{cacheback-refresh}"`).
     */
    readonly cluster: ClusterConnection
    readonly connection?: never
  }
)

/**
 * @since 0.2.0
 * @category models
 */
export interface ClusterConnection {
  /** Seed nodes, as `new Cluster(nodes)` takes them: `[{ host, port }]` or `["host:port"]`. */
  readonly nodes: ReadonlyArray<ClusterNode>
  /** ioredis `Cluster` options; `redisOptions.maxRetriesPerRequest` is set per role. */
  readonly options?: ClusterOptions
}

/**
 * What every `Options` has, whatever the connection.
 *
 * @since 0.2.0
 * @category models
 */
export interface CommonOptions {
  /**
   * The queue of jobs that name none with `Job.withQueueOptions({ queue })`. No `:`. On a
   * cluster, it needs a hash tag (`"{cacheback-refresh}"`) unless `prefix` has one.
   */
  readonly queueName: string
  /** BullMQ's key prefix. Default `"bull"`. */
  readonly prefix?: string
  /** The longest an enqueue waits for BullMQ before it fails. Default 1 second. */
  readonly enqueueTimeout?: Duration.DurationInput
  /** How many completed tasks each queue keeps, for inspection. Default 100. */
  readonly keepCompleted?: number
  /** How many failed tasks each queue keeps, with their reasons. Default 1,000. */
  readonly keepFailed?: number
  /**
   * The most tasks a queue may hold waiting (waiting and prioritized): beyond, an enqueue
   * answers `"full"`, and a stale read answers stale without a refresh (counted in
   * `cacheback_queue_full`; the workers are behind, likely because the origin is). The
   * count is this producer's, read from Redis at most once a second and counted up
   * between reads: approximate, never a round trip per enqueue. Default 100,000.
   */
  readonly maxWaiting?: number
}

/**
 * Tasks go to BullMQ. Provides `RefreshQueue` (what `Job.get` enqueues to) and
 * `BullRefreshQueue` (what `RefreshWorker.run` and `start` consume). Queues are opened when a job
 * first enqueues to them and closed with the layer's scope.
 *
 * Throws at once for an empty or `:`-containing queue name, bad counts or durations, or,
 * on a cluster, a prefix and a queue name without a hash tag.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<RefreshQueue | BullRefreshQueue> => {
  const settings = validate(options)
  return Layer.scopedContext(
    Effect.map(make(settings), (queue) =>
      Context.make(RefreshQueue, queue).pipe(Context.add(BullRefreshQueue, service(settings))))
  )
}

export {
  /**
   * The BullMQ attempts of a job without queue options: 3, the first included, as the
   * in-process queues.
   *
   * @since 0.1.0
   * @category defaults
   */
  defaultAttempts,
  /**
   * The BullMQ backoff of a job without queue options: exponential from 1 second, as the
   * in-process queues.
   *
   * @since 0.1.0
   * @category defaults
   */
  defaultBackoff
} from "../RefreshQueue.js"

// -----------------------------------------------------------------------------

interface Settings {
  readonly connection: Connection
  readonly cluster: boolean
  readonly queueName: string
  readonly prefix: string | undefined
  readonly enqueueTimeout: number
  readonly keepCompleted: number
  readonly keepFailed: number
  readonly maxWaiting: number
}

const service = (settings: Settings): Service => ({
  connection: settings.connection,
  queueName: settings.queueName,
  prefix: settings.prefix,
  queueOf: (options) => options.queue ?? settings.queueName
})

const make = (settings: Settings): Effect.Effect<RefreshQueue["Type"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const clock = yield* Effect.clock
    const client = yield* connect(
      settings.connection,
      "producer",
      `the BullMQ refresh queue "${settings.queueName}"`,
      "stale reads refresh in this process until it is back"
    )
    const queues = new Map<string, Queue>()
    let open = true
    yield* Effect.addFinalizer(() => Effect.sync(() => (open = false)))
    // Opened on a job's first enqueue to it; closed (before the client) with the scope.
    const queueFor = (name: string): Effect.Effect<Queue> =>
      Effect.suspend(() => {
        const existing = queues.get(name)
        if (existing !== undefined) return Effect.succeed(existing)
        const queue = neverThrow(
          new Queue(name, { connection: client, ...(settings.prefix !== undefined ? { prefix: settings.prefix } : {}) })
        )
        queues.set(name, queue)
        return Effect.as(
          Scope.addFinalizer(
            scope,
            Effect.zipRight(Effect.sync(() => (open = false)), close(() => queue.close(), () => queue.disconnect()))
          ),
          queue
        )
      })
    const options = jobOptions(settings)
    const counts = waitingCounts(settings.maxWaiting, clock)
    return RefreshQueue.of({
      enqueue: (task) =>
        Effect.suspend(() => {
          const refuse = (reason: string, cause?: unknown) =>
            Effect.fail(new EnqueueError({ job: task.job, key: task.key, reason, cause }))
          if (!open) return refuse("the BullMQ refresh queue is shut down (its layer's scope is closed)")
          const data = TaskData.encode(task)
          if (Either.isLeft(data)) return refuse(data.left)
          const name = task.options.queue ?? settings.queueName
          if (name.includes(":")) return refuse(`a BullMQ queue name cannot contain ":", and the job's queue option is "${name}"`)
          const tagless = settings.cluster ? untagged(settings.prefix, name) : undefined
          if (tagless !== undefined) return refuse(`the job's queue option: ${tagless}`)
          // Fails at once while the connection is down, rather than waiting for the timeout.
          if (!isConnected(client)) return refuse("Redis is unreachable: the BullMQ queue's connection is down")
          return Effect.flatMap(queueFor(name), (queue) => {
            const count = counts.of(name, queue)
            if (!count.reserve()) return Effect.succeed("full" as const)
            return Effect.onExit(
              add(queue, task, data.right, options(task)),
              (exit) => Effect.sync(() => count.settle(exit._tag === "Success" && exit.value === "enqueued"))
            )
          })
        }).pipe(
          Effect.timeoutFail({
            duration: settings.enqueueTimeout,
            onTimeout: () =>
              new EnqueueError({
                job: task.job,
                key: task.key,
                reason: `BullMQ did not answer within ${settings.enqueueTimeout} ms; is Redis reachable?`
              })
          })
        )
    })
  })

/**
 * The waiting tasks of each queue, as this producer knows them: read from Redis (waiting
 * and prioritized) in the background when the last read is over a second old, and counted
 * up by this producer's own enqueues between reads. A read that fails keeps the count.
 * Written by hand: BullMQ has no bound on a queue's length.
 */
const waitingCounts = (max: number, clock: Clock.Clock) => {
  const byQueue = new Map<string, { reserve: () => boolean; settle: (stored: boolean) => void }>()
  return {
    of: (name: string, queue: Queue) => {
      let known = byQueue.get(name)
      if (known !== undefined) return known
      // Known to be waiting when last read, and taken since by adds not yet answered.
      let read = 0
      let pending = 0
      let readAt = -Infinity
      let reading = false
      const refresh = () => {
        const now = clock.unsafeCurrentTimeMillis()
        if (reading || now - readAt < 1_000) return
        reading = true
        readAt = now
        // The count command follows the adds sent before it on the connection: what they
        // stored is in it, and what follows is still pending when it answers.
        queue.getJobCountByTypes("waiting", "prioritized").then(
          (waiting) => {
            read = waiting
            reading = false
          },
          () => {
            reading = false
          }
        )
      }
      // A place is taken before the add (concurrent enqueues see each other) and kept when
      // the add stored a task, until the next read counts it.
      known = {
        reserve: () => {
          refresh()
          if (read + pending >= max) return false
          pending++
          return true
        },
        settle: (stored: boolean) => {
          pending--
          if (stored) read++
        }
      }
      byQueue.set(name, known)
      return known
    }
  }
}

/**
 * One `queue.add`. The task's own id tells whether BullMQ stored it or collapsed it into
 * the waiting one (it then answers with that task's id). A collapse into a running task
 * (stored as the next run) is also reported as `deduplicated`.
 */
const add = (queue: Queue, task: Task, data: TaskData.TaskData, options: JobsOptions) =>
  Effect.flatMap(Token.make, (jobId) => Effect.async<Enqueued, EnqueueError>((resume) => {
    queue.add(task.job, data, { ...options, jobId }).then(
      (added) => resume(Effect.succeed(added.id === jobId ? "enqueued" : "deduplicated")),
      (cause) =>
        resume(Effect.fail(new EnqueueError({ job: task.job, key: task.key, reason: `BullMQ refused the task: ${describe(cause)}`, cause })))
    )
  }))

const jobOptions = (settings: Settings) => (task: Task): JobsOptions => {
  const { attempts, backoff, priority } = task.options
  return {
    deduplication: { id: task.key, keepLastIfActive: true },
    attempts: attempts ?? defaultAttempts,
    backoff: backoff ?? defaultBackoff,
    ...(priority !== undefined ? { priority } : {}),
    removeOnComplete: settings.keepCompleted,
    removeOnFail: settings.keepFailed
  }
}

/**
 * Closes a BullMQ object; when it does not close within 5 seconds (Redis unreachable),
 * drops its connections.
 *
 * @internal
 */
export const close = (graceful: () => Promise<unknown>, force: () => unknown): Effect.Effect<void> =>
  // Finalizers run uninterruptibly: without `interruptible` the timeout could not stop the wait.
  Effect.interruptible(Effect.tryPromise(graceful)).pipe(
    Effect.timeout("5 seconds"),
    Effect.catchAll(() => Effect.try(force)),
    Effect.ignore
  )

const validate = (options: Options): Settings => {
  const where = "BullRefreshQueue.layer"
  if (typeof options !== "object" || options === null) throw new TypeError(`${where}: expected options { connection, queueName } or { cluster, queueName }`)
  const connection = connectionOf(where, options)
  const queueName = nonEmpty(where, "queueName", options.queueName, "name the BullMQ queue the workers consume")
  if (queueName.includes(":")) throw new TypeError(`${where}: a BullMQ queue name cannot contain ":", got "${queueName}"`)
  const prefix = options.prefix === undefined ? undefined : nonEmpty(where, "prefix", options.prefix, "or leave it out for BullMQ's \"bull\"")
  const cluster = onCluster(connection)
  const tagless = cluster ? untagged(prefix, queueName) : undefined
  if (tagless !== undefined) throw new TypeError(`${where}: ${tagless}`)
  return {
    connection,
    cluster,
    queueName,
    prefix,
    enqueueTimeout: positiveMillis(`${where} enqueueTimeout`, options.enqueueTimeout ?? "1 second"),
    keepCompleted: integer(where, "keepCompleted", options.keepCompleted ?? 100, 0),
    keepFailed: integer(where, "keepFailed", options.keepFailed ?? 1000, 0),
    maxWaiting: integer(where, "maxWaiting", options.maxWaiting ?? 100_000, 1)
  }
}

const connectionOf = (where: string, options: Options): Connection => {
  const { cluster, connection } = options as { readonly cluster?: unknown; readonly connection?: unknown }
  if (cluster !== undefined && connection !== undefined) {
    throw new TypeError(`${where}: expected connection (one Redis) or cluster (a Redis Cluster), not both`)
  }
  if (cluster !== undefined) {
    if (!isClusterConnection(cluster) || cluster.nodes.length === 0) {
      throw new TypeError(`${where}: expected cluster to be { nodes, options? } with at least one seed node, e.g. { nodes: [{ host: "127.0.0.1", port: 7000 }] }`)
    }
    return { cluster }
  }
  if (typeof connection !== "object" || connection === null) {
    throw new TypeError(`${where}: expected connection to be ioredis options ({ host, port } or { url }) or an ioredis client, or cluster: { nodes }`)
  }
  return connection as ConnectionOptions
}
