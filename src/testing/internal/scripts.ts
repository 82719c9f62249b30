/**
 * The Redis store's Lua scripts in TypeScript, one function per script, each named as the
 * script it mirrors (`redis/internal/scripts.ts`, `redis/internal/tags.ts`): what the
 * simulated Redis runs for `EVALSHA` and `EVAL`. A script runs atomically there, as in
 * Redis: nothing else runs between its commands.
 */
import { createHash } from "node:crypto"
import * as Scripts from "../../redis/internal/scripts.js"
import * as Tags from "../../redis/internal/tags.js"

/** The commands a script uses, on the simulated Redis's keys. */
export interface Keyspace {
  readonly get: (key: string) => string | null
  readonly set: (key: string, value: string, px?: number) => void
  readonly del: (key: string) => void
  readonly pexpire: (key: string, px: number) => number
}

type Mirror = (redis: Keyspace, keys: ReadonlyArray<string>, args: ReadonlyArray<string>) => unknown

const px = (arg: string | undefined) => (arg === undefined || arg === "" ? undefined : Number(arg))

/** `Scripts.compareAndSet`: writes the entry only while its header's token is the one expected. */
export const compareAndSet: Mirror = (redis, [entry], [expected, text, ms]) => {
  const head = (redis.get(entry!) ?? "").slice(0, 64)
  let token = ""
  if (head.startsWith("v2|")) {
    const bar = head.indexOf("|", 3)
    if (bar < 0) throw new Error("cacheback: an entry header longer than 64 bytes")
    token = head.slice(3, bar)
  }
  if (token !== expected) return 0
  redis.set(entry!, text!, px(ms))
  return 1
}

/** `Scripts.acquire`: takes the lock unless held (a failed holder's `!` mark is free); answers the holder and the entry. */
export const acquire: Mirror = (redis, [lock, entry], [token, ms]) => {
  let held = redis.get(lock!)
  if (held === null || held.startsWith("!")) {
    redis.set(lock!, token!, px(ms))
    held = token!
  }
  return [held, redis.get(entry!)]
}

/** `Scripts.peek`: the lock's value and the entry's text. */
export const peek: Mirror = (redis, [lock, entry]) => [redis.get(lock!), redis.get(entry!)]

/** `Scripts.renew`: extends the lock if it is still the caller's. */
export const renew: Mirror = (redis, [lock], [token, ms]) => redis.get(lock!) === token ? redis.pexpire(lock!, Number(ms)) : 0

/** `Scripts.release`: deletes the lock, or marks it failed, if it is still the caller's. */
export const release: Mirror = (redis, [lock], [token, mark, ms]) => {
  if (redis.get(lock!) !== token) return 0
  if (mark === "") redis.del(lock!)
  else redis.set(lock!, mark!, px(ms))
  return 1
}

/** `Tags.tokensOrCreate`: each tag's token, giving one to a tag without. */
export const tokensOrCreate: Mirror = (redis, keys, fresh) =>
  keys.map((key, i) => {
    const token = redis.get(key)
    if (token !== null) return token
    redis.set(key, fresh[i]!)
    return fresh[i]!
  })

/** `Tags.invalidateAll`: a new token for each tag, then the generation. */
export const invalidateAll: Mirror = (redis, keys, fresh) => {
  keys.forEach((key, i) => redis.set(key, fresh[i]!))
  return keys.length
}

const sha = (lua: string) => createHash("sha1").update(lua).digest("hex")

/** Every script of the store by its SHA1, as `EVALSHA` names it (and `EVAL`, by its text's). */
export const bySha: ReadonlyMap<string, Mirror> = new Map([
  [Scripts.compareAndSet.sha, compareAndSet],
  [Scripts.acquire.sha, acquire],
  [Scripts.peek.sha, peek],
  [Scripts.renew.sha, renew],
  [Scripts.release.sha, release],
  [sha(Tags.tokensOrCreate), tokensOrCreate],
  [sha(Tags.invalidateAll), invalidateAll]
])

export const shaOf = sha
