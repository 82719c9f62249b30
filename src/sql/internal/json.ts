/**
 * Values as drivers bind and return them (strings, numbers, booleans, null, bigints, dates,
 * bytes) as JSON and back, so that filters and rows can leave the process: to Redis, and in
 * tasks for remote workers. Non-JSON values are wrapped in an object with one key that names
 * their kind; other objects (JSON columns) are wrapped too, so no value is mistaken for
 * another.
 */
import * as Schema from "effect/Schema"

const BigIntJson = Schema.transform(Schema.Struct({ bigint: Schema.BigInt }), Schema.BigIntFromSelf, {
  strict: true,
  decode: ({ bigint }) => bigint,
  encode: (bigint) => ({ bigint })
})

const DateJson = Schema.transform(Schema.Struct({ date: Schema.DateFromString }), Schema.DateFromSelf, {
  strict: true,
  decode: ({ date }) => date,
  encode: (date) => ({ date })
})

const BytesJson = Schema.transform(Schema.Struct({ bytes: Schema.Uint8ArrayFromBase64 }), Schema.Uint8ArrayFromSelf, {
  strict: true,
  decode: ({ bytes }) => bytes,
  encode: (bytes) => ({ bytes })
})

const ObjectJson = Schema.transform(Schema.Struct({ json: Schema.Unknown }), Schema.Object, {
  strict: true,
  decode: ({ json }) => json as object,
  encode: (json) => ({ json })
})

/**
 * A stored value as JSON. Members are tried in order; the object member comes last, after
 * dates and bytes, which are objects too.
 */
export const SqlValueJson = Schema.Union(
  Schema.String,
  Schema.Number,
  Schema.Boolean,
  Schema.Null,
  BigIntJson,
  DateJson,
  BytesJson,
  ObjectJson
)

/**
 * The value schema of a model's rows: the model's own encoding (to what the driver returns),
 * then each column as JSON. Decoding gives instances of the model's class.
 */
export const rowSchema = <A, I>(
  model: Schema.Schema<A, I, never>
): Schema.Schema<A, { readonly [column: string]: typeof SqlValueJson.Encoded }, never> =>
  Schema.compose(Schema.Record({ key: Schema.String, value: SqlValueJson }), model, { strict: false })
