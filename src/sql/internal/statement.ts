/**
 * The SELECT of a query job. Identifiers (table, columns) go through the client's escaping
 * and name transform; every value is a bound parameter, LIKE patterns included, with their
 * wildcards escaped so that a caller's `%` or `_` means itself. The escape character is `!`
 * rather than a backslash, whose meaning in string literals varies by dialect and setting.
 *
 * What the database would refuse, or answer wrongly, is a `FilterError` before the SELECT
 * runs: more bound parameters than the dialect takes, and strings holding NUL where the
 * dialect cannot bind or match them.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as Statement from "@effect/sql/Statement"
import * as Either from "effect/Either"
import { FilterError } from "../Errors.js"
import type { Condition } from "./filter.js"
import type { Source } from "./source.js"

export interface Order {
  readonly column: string
  readonly descending: boolean
}

/** The SELECT of `conditions`, or why the client's database would not run it as meant. */
export const select = (
  sql: SqlClient.SqlClient,
  source: Source,
  conditions: ReadonlyArray<Condition>,
  options: { readonly orderBy: ReadonlyArray<Order>; readonly limit: number | undefined }
): Either.Either<Statement.Statement<object>, FilterError> => {
  const dialect = dialectOf(sql)
  const fail = (field: string | undefined, reason: string) =>
    Either.left(new FilterError({ model: source.identifier, table: source.table, field, reason }))
  const count = parameters(conditions, options.limit)
  if (count > dialect.maxParameters) {
    return fail(
      undefined,
      `the SELECT needs ${thousands(count)} bound parameters (one for each in value, comparison and pattern, ` +
        `and the LIMIT); ${dialect.name} takes at most ${thousands(dialect.maxParameters)} in one statement. ` +
        `Split the filter: read a long in list in chunks, one filter each, with Job.getMany`
    )
  }
  for (const condition of conditions) {
    const nul = dialect.refusesNul(condition)
    if (nul !== undefined) return fail(condition.field.name, nul)
  }
  return Either.right(statement(sql, source, conditions, options))
}

const statement = (
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

/** The values `statement` binds: as `where` and the LIMIT build them. */
const parameters = (conditions: ReadonlyArray<Condition>, limit: number | undefined): number => {
  let count = limit === undefined ? 0 : 1
  for (const condition of conditions) {
    switch (condition._tag) {
      case "Compare":
      case "Text":
        count += 1
        break
      case "In":
        // An empty list is the literal `1=0`.
        count += condition.values.length
        break
      case "IsNull":
        break
    }
  }
  return count
}

interface Dialect {
  readonly name: string
  readonly maxParameters: number
  /** Why the condition holds a string the dialect cannot bind or match as given, if it does. */
  readonly refusesNul: (condition: Condition) => string | undefined
}

const dialectOf = (sql: SqlClient.SqlClient): Dialect =>
  sql.onDialectOrElse({
    // The Bind message counts its parameters in 16 bits; PostgreSQL's text types cannot
    // hold NUL (the server rejects the parameter as invalid UTF8).
    pg: () => ({
      name: "PostgreSQL",
      maxParameters: 65_535,
      refusesNul: (condition) =>
        strings(condition).some(hasNul)
          ? "a string holding NUL (\\u0000): PostgreSQL's text cannot hold it, so it cannot be bound"
          : undefined
    }),
    // SQLITE_MAX_VARIABLE_NUMBER's default since SQLite 3.32.0, libsql's too. SQLite binds
    // and compares strings holding NUL exactly, but LIKE ends its pattern at the NUL, so
    // `contains: "\u0000"` would match every row.
    sqlite: () => ({
      name: "SQLite",
      maxParameters: 32_766,
      refusesNul: (condition) =>
        condition._tag === "Text" && hasNul(condition.text)
          ? `${condition.lookup} with a string holding NUL (\\u0000): SQLite's LIKE ends the pattern there, so it would match rows that do not ${
            condition.lookup === "contains" ? "contain" : condition.lookup === "startsWith" ? "start with" : "end with"
          } it`
          : undefined
    }),
    // MySQL, SQL Server, ClickHouse and any later dialect are not tested here: they get the
    // smallest limit known here (SQLite's), so that a long list fails the same way on every
    // database; one with a lower limit of its own still answers with its SqlError. NUL is
    // left to them.
    orElse: () => ({ name: "this database", maxParameters: 32_766, refusesNul: () => undefined })
  })

const strings = (condition: Condition): ReadonlyArray<unknown> => {
  switch (condition._tag) {
    case "Compare":
      return [condition.value]
    case "In":
      return condition.values
    case "Text":
      return [condition.text]
    case "IsNull":
      return []
  }
}

const hasNul = (value: unknown) => typeof value === "string" && value.includes("\u0000")

/** 65535 as "65,535", the same under every locale. */
const thousands = (n: number) => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",")
