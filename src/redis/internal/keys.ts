/**
 * Where the store's keys live, on one Redis and on a Redis Cluster (README, "What crosses the
 * wire"). The layout is chosen once, when the store is made, so that a read on one Redis
 * does nothing it did not do before clusters.
 *
 * On a cluster a Lua script runs on one node, so every key it touches must hash to one slot:
 * an entry and its lock (the fetch lock's scripts read both) carry the job key as a hash tag,
 * `<prefix>:{<key>}` and `<prefix>|lock:{<key>}`. Both end with the same `{<key>}`, so they hash
 * alike whatever braces the key holds, except a key that begins with `}`: its `{}` is empty,
 * and Redis then hashes the whole key (see `lockable`). Tags keep all their keys in the slot
 * of `{<prefix>}`, on one Redis too.
 */
export interface Layout {
  /** The Redis key of a job key's entry. */
  readonly entry: (key: string) => string
  /** The Redis key of a job key's fetch lock. */
  readonly lock: (key: string) => string
  /** The job key of an entry's Redis key; `undefined` for another key under `entryAt`. */
  readonly ofEntry: (redisKey: string) => string | undefined
  /** The job key of a lock's Redis key; `undefined` for another key. */
  readonly ofLock: (redisKey: string) => string | undefined
  /** Whether a key's entry and lock share a slot, so that one script may touch both. */
  readonly lockable: (key: string) => boolean
  /** The prefix of every entry, `<prefix>:`, tracked by the near cache. */
  readonly entryAt: string
  /** The prefix of everything else (locks, tags, the near cache's sentinels), `<prefix>|`. */
  readonly metaAt: string
  /** The key holding a tag's token. */
  readonly tag: (name: string) => string
  /** The key of the tags' generation. */
  readonly generation: string
}

const lockPath = "|lock:"

/** One Redis: `<prefix>:<key>` (the layout of 0.1) and `<prefix>|lock:<key>`. */
export const oneRedis = (prefix: string): Layout => {
  const entryAt = prefix + ":"
  const lockAt = prefix + lockPath
  return {
    entry: (key) => entryAt + key,
    lock: (key) => lockAt + key,
    ofEntry: (redisKey) => redisKey.startsWith(entryAt) ? redisKey.slice(entryAt.length) : undefined,
    ofLock: (redisKey) => redisKey.startsWith(lockAt) ? redisKey.slice(lockAt.length) : undefined,
    lockable: () => true,
    ...common(prefix)
  }
}

/** A cluster: `<prefix>:{<key>}` and `<prefix>|lock:{<key>}`. */
export const cluster = (prefix: string): Layout => {
  const entryAt = prefix + ":{"
  const lockAt = prefix + lockPath + "{"
  const inner = (at: string) => (redisKey: string) =>
    redisKey.startsWith(at) && redisKey.endsWith("}") ? redisKey.slice(at.length, -1) : undefined
  return {
    entry: (key) => entryAt + key + "}",
    lock: (key) => lockAt + key + "}",
    ofEntry: inner(entryAt),
    ofLock: inner(lockAt),
    // `{}` is no hash tag: such a key's entry and lock hash as whole keys, to two slots.
    lockable: (key) => !key.startsWith("}"),
    ...common(prefix)
  }
}

const common = (prefix: string) => ({
  entryAt: prefix + ":",
  metaAt: prefix + "|",
  tag: (name: string) => `${prefix}|tag:{${prefix}}:${name}`,
  generation: `${prefix}|tag:{${prefix}}`
})

/**
 * Why `prefix` cannot be a cluster store's, or `undefined`. A brace in it would decide the
 * hash tag of every key: one `{…}` pins every entry to one slot (one master holds the whole
 * cache), a lone `{` or `}` splits an entry from its lock.
 */
export const clusterPrefixProblem = (prefix: string): string | undefined =>
  /[{}]/.test(prefix)
    ? `on a Redis Cluster the prefix may not contain "{" or "}" (got ${JSON.stringify(prefix)}): each entry gets a hash tag ` +
      `of its own ("<prefix>:{<key>}"), so that entries spread over the masters and a key's entry and lock share a slot; ` +
      `a brace in the prefix would pin every entry to one slot, or split an entry from its lock`
    : undefined
