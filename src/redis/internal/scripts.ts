/**
 * The Lua scripts of the Redis store, and how they run: `EVALSHA`, and `EVAL` (which loads
 * the script) when Redis answers `NOSCRIPT` (a restarted or flushed server; on a cluster,
 * each master the first time). On a cluster every key of one script must be in one slot
 * (`keys.ts` lays out an entry and its lock so).
 */
import { createHash } from "node:crypto"
import type { Cluster, Redis } from "ioredis"

export interface Script {
  readonly lua: string
  readonly sha: string
  readonly keys: number
}

const script = (keys: number, lua: string): Script => ({ lua, keys, sha: createHash("sha1").update(lua).digest("hex") })

/** Runs `script` with its keys then its arguments. */
export const run = (client: Redis | Cluster, which: Script, args: ReadonlyArray<string | number>): Promise<unknown> =>
  client.evalsha(which.sha, which.keys, ...args).catch((error: unknown) =>
    error instanceof Error && error.message.startsWith("NOSCRIPT")
      ? client.eval(which.lua, which.keys, ...args)
      : Promise.reject(error)
  )

/**
 * Writes an entry only while the key's token is the one expected
 * (`CacheStore.Backend.compareAndSet`; `wire.ts` has the header it reads): KEYS[1] the entry;
 * ARGV[1] the expected token ("" for nothing stored, or an entry without a token), ARGV[2] the
 * text, ARGV[3] PX ms or "". Answers 1 written, 0 left alone.
 */
export const compareAndSet = script(1, `
local head = redis.call("GETRANGE", KEYS[1], 0, 63)
local token = ""
if string.sub(head, 1, 3) == "v2|" then
  local bar = string.find(head, "|", 4, true)
  if not bar then return redis.error_reply("cacheback: an entry header longer than 64 bytes") end
  token = string.sub(head, 4, bar - 1)
end
if token ~= ARGV[1] then return 0 end
if ARGV[3] == "" then
  redis.call("SET", KEYS[1], ARGV[2])
else
  redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3])
end
return 1
`)

/**
 * Takes the lock of a key unless another process holds it: KEYS[1] the lock, KEYS[2] the
 * entry; ARGV[1] the token, ARGV[2] PX ms. A lock whose holder failed (`!<token>`) is free.
 * Answers the holder's token (ARGV[1] when taken) and the entry's text, read after taking it.
 */
export const acquire = script(2, `
local held = redis.call("GET", KEYS[1])
if not held or string.sub(held, 1, 1) == "!" then
  redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
  held = ARGV[1]
end
return { held, redis.call("GET", KEYS[2]) or false }
`)

/** The lock's value and the entry's text in one round trip: KEYS[1] the lock, KEYS[2] the entry. */
export const peek = script(2, `
return { redis.call("GET", KEYS[1]) or false, redis.call("GET", KEYS[2]) or false }
`)

/** Extends the lock if it is still the caller's: KEYS[1] the lock; ARGV[1] token, ARGV[2] PX ms. Answers 1 or 0. */
export const renew = script(1, `
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0
`)

/**
 * Releases the lock if it is still the caller's: KEYS[1] the lock; ARGV[1] token, ARGV[2] ""
 * (deleted: the value is stored) or the mark of a fetch that ended without one, kept ARGV[3]
 * ms for the waiting processes to see. Answers 1 or 0.
 */
export const release = script(1, `
if redis.call("GET", KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == "" then
  redis.call("DEL", KEYS[1])
else
  redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3])
end
return 1
`)
