/**
 * effect-cacheback/redis: the cache on Redis and the refreshes on BullMQ, for many
 * processes. Loads `ioredis` and `bullmq`; the main entry never does.
 *
 * @since 0.1.0
 */

/**
 * A `CacheStore` on Redis.
 *
 * @since 0.1.0
 */
export * as RedisCacheStore from "./RedisCacheStore.js"

/**
 * A `RefreshQueue` on BullMQ.
 *
 * @since 0.1.0
 */
export * as BullRefreshQueue from "./BullRefreshQueue.js"

/**
 * Worker processes for the tasks of a `BullRefreshQueue`.
 *
 * @since 0.1.0
 */
export * as RefreshWorker from "./RefreshWorker.js"

/**
 * @since 0.1.0
 */
export {
  /**
   * @since 0.1.0
   * @category errors
   */
  TaskDecodeError,
  /**
   * @since 0.2.0
   * @category errors
   */
  TaskKeyError,
  /**
   * @since 0.2.0
   * @category errors
   */
  TaskStoreError,
  /**
   * @since 0.1.0
   * @category errors
   */
  UnknownJobError
} from "./Errors.js"
