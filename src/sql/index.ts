/**
 * effect-cacheback/sql: cached SQL reads on `@effect/sql`.
 *
 * @since 0.1.0
 */

/**
 * `QueryJob.get` and `QueryJob.filter`: query jobs over a model's table.
 *
 * @since 0.1.0
 */
export * as QueryJob from "./QueryJob.js"

/**
 * @since 0.1.0
 */
export {
  /**
   * @since 0.1.0
   * @category errors
   */
  FilterError,
  /**
   * @since 0.1.0
   * @category errors
   */
  MultipleFound,
  /**
   * @since 0.1.0
   * @category errors
   */
  NotFound
} from "./Errors.js"
