/**
 * Tags on Redis (DESIGN.md §8.3): each tag is one key holding a random token, replaced at every
 * invalidation; one more key, the generation, changes with every invalidation. The keys
 * have no TTL, so that they outlive the entries that recorded them (with a `volatile-*`
 * `maxmemory-policy` Redis evicts entries, which have one, and never tags); a tag that is
 * gone anyway only makes its entries stale. They live in Redis, so they outlive the
 * processes too: a restarted process reads the tokens and generation its entries recorded.
 * All of a prefix's tag keys share one hash tag (`keys.ts`), so that the scripts touching
 * several of them stay in one slot of a cluster.
 */
import * as Effect from "effect/Effect"
import type { Cluster, Redis } from "ioredis"
import type { Tags } from "../../CacheStore.js"
import { StoreError } from "../../Errors.js"
import type { Layout } from "./keys.js"
import { tagList } from "../../internal/describe.js"
import * as Token from "../../internal/token.js"
import type { Reads } from "./reads.js"

/**
 * Tags per script call: a call's arguments are spread onto the stack (10⁵ of them overflow
 * it) and one script blocks Redis for its length.
 */
const chunk = 1_000

const chunks = <A>(all: ReadonlyArray<A>): ReadonlyArray<ReadonlyArray<A>> => {
  const out: Array<ReadonlyArray<A>> = []
  for (let i = 0; i < all.length; i += chunk) out.push(all.slice(i, i + chunk))
  return out
}

const tokens = (n: number) => Effect.replicateEffect(Token.make, n)

/** Reads each tag's token, giving one to a tag without: `KEYS` the tags, `ARGV` fresh tokens. */
export const tokensOrCreate = `
local out = {}
for i, key in ipairs(KEYS) do
  local token = redis.call("GET", key)
  if not token then
    token = ARGV[i]
    redis.call("SET", key, token)
  end
  out[i] = token
end
return out`

/** Gives each tag a new token, then the generation: `KEYS` the tags and last the generation. */
export const invalidateAll = `
for i, key in ipairs(KEYS) do
  redis.call("SET", key, ARGV[i])
end
return #KEYS`

/**
 * A tagged hit checks its tags' tokens through the store's shared reads (`reads.ts`): one
 * round trip more than an untagged hit, and concurrent hits' checks go out together with
 * other reads rather than as an `MGET` each.
 */
export const make = (client: Redis | Cluster, reads: Reads, layout: Layout, timeout: number): Tags => {
  const keyOf = layout.tag
  const generationKey = layout.generation
  const run = <A>(operation: StoreError["operation"], what: string, command: () => Promise<A>) =>
    Effect.async<A, StoreError>((resume) => {
      command().then(
        (value) => resume(Effect.succeed(value)),
        (cause) => resume(Effect.fail(new StoreError({ operation, key: what, cause })))
      )
    }).pipe(
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () => new StoreError({ operation, key: what, cause: new Error(`Redis did not answer within ${timeout} ms`) })
      })
    )
  return {
    tokens: (names, create) =>
      names.length === 0
        ? Effect.succeed([])
        : create
        ? Effect.map(
          Effect.forEach(chunks(names), (part) =>
            Effect.flatMap(tokens(part.length), (fresh) =>
              run("get", tagList(part), () =>
                client.eval(tokensOrCreate, part.length, ...part.map(keyOf), ...fresh) as Promise<Array<string>>))),
          (parts) => parts.flat()
        )
        : Effect.async<ReadonlyArray<string | undefined>, StoreError>((resume) => {
          reads.getAll(names.map(keyOf), (cause, tokens) =>
            resume(
              cause == null
                ? Effect.succeed(tokens.map((token) => token ?? undefined))
                : Effect.fail(new StoreError({ operation: "get", key: tagList(names), cause }))
            ))
        }),
    generation: Effect.map(run("get", generationKey, () => client.get(generationKey)), (token) => token ?? ""),
    // In chunks, one after another, each moving the generation: a failure part-way fails the
    // call, and the chunks before it stay invalidated (DESIGN.md §8.3).
    invalidate: (names) =>
      Effect.forEach(chunks(names), (part) =>
        Effect.flatMap(tokens(part.length + 1), (fresh) =>
          run("invalidateTags", tagList(part), () =>
            client.eval(invalidateAll, part.length + 1, ...part.map(keyOf), generationKey, ...fresh))), { discard: true })
  }
}
