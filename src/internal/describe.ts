import * as ParseResult from "effect/ParseResult"

/** How a cause reads in a message: an error's message (or name), a string, else its text. */
export const describe = (cause: unknown): string =>
  cause instanceof Error ? cause.message || cause.name : typeof cause === "string" ? cause : String(cause)

/** A schema's parse error as one readable tree, for the messages of typed errors. */
export const formatParseError = (error: ParseResult.ParseError): string => ParseResult.TreeFormatter.formatErrorSync(error)

/**
 * The tags of a call, for its error: the first five and how many, whatever it was given (a
 * caller without types may pass anything, and 10⁵ names would make a message of megabytes).
 */
export const tagList = (tags: unknown): string => {
  if (!Array.isArray(tags)) return `(${typeof tags})`
  const first = tags.slice(0, 5).map((tag) => (typeof tag === "string" ? tag : `(${typeof tag})`)).join(", ")
  return tags.length <= 5 ? first : `${first}, … (${tags.length} tags)`
}
