/**
 * effect-cacheback: serve stale, refresh in the background, never stampede.
 *
 * @since 0.1.0
 */

/**
 * Jobs: the record, its combinators and the operations (`get`, `lookup`, `refresh`, …).
 *
 * @since 0.1.0
 */
export * as Job from "./Job.js"

/**
 * The pure decision of `get`.
 *
 * @since 0.1.0
 */
export * as Policy from "./Policy.js"

/**
 * Stable cache keys.
 *
 * @since 0.1.0
 */
export * as Key from "./Key.js"

/**
 * Cache entries.
 *
 * @since 0.1.0
 */
export * as Entry from "./Entry.js"

/**
 * The cache store service and its in-process layers.
 *
 * @since 0.1.0
 */
export * as CacheStore from "./CacheStore.js"

/**
 * The refresh queue service and its in-process layers.
 *
 * @since 0.1.0
 */
export * as RefreshQueue from "./RefreshQueue.js"

/**
 * The test kit of `RefreshQueue.layerTest`.
 *
 * @since 0.1.0
 */
export * as TestRefreshQueue from "./TestRefreshQueue.js"

/**
 * @since 0.1.0
 */
export {
  /**
   * @since 0.1.0
   * @category errors
   */
  CodecError,
  /**
   * @since 0.1.0
   * @category errors
   */
  EnqueueError,
  /**
   * @since 0.2.0
   * @category errors
   */
  FetchTimeout,
  /**
   * @since 0.1.0
   * @category errors
   */
  KeyError,
  /**
   * @since 0.1.0
   * @category errors
   */
  StoreError
} from "./Errors.js"
