/**
 * The SELECT of a query job. Identifiers (table, columns) go through the client's escaping
 * and name transform; every value is a bound parameter, LIKE patterns included, with their
 * wildcards escaped so that a caller's `%` or `_` means itself. The escape character is `!`
 * rather than a backslash, whose meaning in string literals varies by dialect and setting.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as Statement from "@effect/sql/Statement"
import type { Condition } from "./filter.js"
import type { Source } from "./source.js"

export interface Order {
  readonly column: string
  readonly descending: boolean
}

export const select = (
  sql: SqlClient.SqlClient,
  source: Source,
  conditions: ReadonlyArray<Condition>,
  options: { readonly orderBy: ReadonlyArray<Order>; readonly limit: number | undefined }
): Statement.Statement<object> => {
  const columns = Array.from(source.fields.values(), (field) => sql`${sql(field.column)}`)
  const orderBy = sql.csv(
    "ORDER BY",
    options.orderBy.map((order) => sql`${sql(order.column)} ${sql.literal(order.descending ? "DESC" : "ASC")}`)
  )
  const limit = options.limit === undefined ? sql.literal("") : sql`LIMIT ${options.limit}`
  return sql`SELECT ${sql.csv(columns)} FROM ${sql(source.table)} WHERE ${
    sql.and(conditions.map((condition) => where(sql, condition)))
  } ${orderBy} ${limit}`
}

const where = (sql: SqlClient.SqlClient, condition: Condition): Statement.Fragment => {
  const column = condition.field.column
  switch (condition._tag) {
    case "Compare":
      return sql`${sql(column)} ${sql.literal(condition.op)} ${condition.value}`
    case "In":
      return sql.in(column, condition.values)
    case "Text":
      return sql`${sql(column)} LIKE ${pattern(condition.lookup, condition.text)} ESCAPE '!'`
    case "IsNull":
      return sql`${sql(column)} ${sql.literal(condition.isNull ? "IS NULL" : "IS NOT NULL")}`
  }
}

const pattern = (lookup: "startsWith" | "endsWith" | "contains", text: string): string => {
  const literal = text.replace(/[!%_]/g, "!$&")
  return lookup === "startsWith" ? `${literal}%` : lookup === "endsWith" ? `%${literal}` : `%${literal}%`
}
