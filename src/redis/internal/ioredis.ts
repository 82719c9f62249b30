/**
 * The boundary with ioredis, which users have in two majors (5 and 6): the options this
 * library passes are typed by the installed major, and cross into its constructors here.
 *
 * - ioredis 6 types `replyMapping` twice, in `RedisOptions` with `undefined` and in its
 *   constructors without, so options spread from a user's `RedisOptions` do not type-check
 *   against its constructors under `exactOptionalPropertyTypes`; they are the same options.
 * - `protocol` (RESP2 or RESP3) is ioredis 6's; 5 speaks RESP2 only, ignores the option and
 *   lacks it in its types.
 */
import { Cluster, type ClusterNode, type ClusterOptions, Redis, type RedisOptions } from "ioredis"

/** A client of one Redis from `options`, and a URL when given. */
export const redis = (options: RedisOptions, url?: string): Redis =>
  // The constructors take these options; see above for why the types disagree.
  url === undefined ? new Redis(options as never) : new Redis(url, options as never)

/** A Redis Cluster client. */
export const cluster = (nodes: ReadonlyArray<ClusterNode>, options: ClusterOptions): Cluster =>
  new Cluster([...nodes], options as never)

/**
 * Options that make a connection speak RESP2, under either major: the near cache's
 * subscriber must, because Redis sends invalidations to a RESP3 connection as push
 * messages, which ioredis 6 does not deliver as `__redis__:invalidate` messages (DESIGN.md §7).
 */
export const resp2 = { protocol: 2 } as unknown as Partial<RedisOptions>

/**
 * What this library's own connections rely on, set the same under either major (ioredis 6
 * changed the defaults: RESP3, a 30 s TCP keep-alive, another retry strategy): RESP2, whose
 * replies every script and read here were written and measured for, and a TCP keep-alive
 * of 30 s, which finds a connection whose peer vanished without a word. Each connection adds
 * its own retry strategy and timeouts; a client the user passes in is used as it is.
 */
export const ownDefaults = { ...resp2, keepAlive: 30_000 } as Partial<RedisOptions>
