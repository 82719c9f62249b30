import * as ParseResult from "effect/ParseResult"

/** How a cause reads in a message: an error's message (or name), a string, else its text. */
export const describe = (cause: unknown): string =>
  cause instanceof Error ? cause.message || cause.name : typeof cause === "string" ? cause : String(cause)

/** A schema's parse error as one readable tree, for the messages of typed errors. */
export const formatParseError = (error: ParseResult.ParseError): string => ParseResult.TreeFormatter.formatErrorSync(error)
