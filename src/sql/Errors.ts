/**
 * The typed errors of query jobs. Each names the model, the table and what was asked.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * A filter that does not fit the model: a field the model does not have, an unknown lookup,
 * or an operand that is not a value of its field. Or one the database would refuse or answer
 * wrongly: NaN, ±Infinity or an invalid Date (on every database); more bound parameters than
 * the database takes in one statement (65,535 on PostgreSQL, 32,766 on SQLite and any other
 * dialect; every `in` value, comparison and pattern, and the LIMIT, is one); a string holding
 * NUL on PostgreSQL, or in a `startsWith`/`endsWith`/`contains` pattern on SQLite. Raised
 * before any SQL runs.
 *
 * @since 0.1.0
 * @category errors
 */
export class FilterError extends Schema.TaggedError<FilterError>("effect-cacheback/FilterError")("FilterError", {
  model: Schema.String,
  table: Schema.String,
  field: Schema.optional(Schema.String),
  reason: Schema.String
}) {
  override get message(): string {
    const where = this.field === undefined ? "" : `, field "${this.field}"`
    return `QueryJob filter on ${this.model} (table "${this.table}")${where}: ${this.reason}`
  }
}

/**
 * `QueryJob.get` found no row.
 *
 * @since 0.1.0
 * @category errors
 */
export class NotFound extends Schema.TaggedError<NotFound>("effect-cacheback/NotFound")("NotFound", {
  model: Schema.String,
  table: Schema.String,
  filter: Schema.String
}) {
  override get message(): string {
    return `QueryJob.get: no row of table "${this.table}" (model ${this.model}) matches ${this.filter}; ` +
      `expected exactly one. Handle it with Effect.catchTag("NotFound"), or use QueryJob.filter when no row is an answer.`
  }
}

/**
 * `QueryJob.get` found more than one row.
 *
 * @since 0.1.0
 * @category errors
 */
export class MultipleFound extends Schema.TaggedError<MultipleFound>("effect-cacheback/MultipleFound")("MultipleFound", {
  model: Schema.String,
  table: Schema.String,
  filter: Schema.String
}) {
  override get message(): string {
    return `QueryJob.get: more than one row of table "${this.table}" (model ${this.model}) matches ${this.filter}; ` +
      `expected exactly one. Filter on a unique column, or use QueryJob.filter for many rows.`
  }
}
