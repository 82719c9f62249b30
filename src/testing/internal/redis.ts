/**
 * The simulated Redis (DESIGN.md §11.3): the keys, their TTLs, the store's scripts
 * (`scripts.ts`), and server-assisted client tracking in broadcast mode with redirection,
 * behind connections that answer as ioredis's clients do, over a simulated network.
 *
 * What is faithful: one connection's commands run in order and its replies come back in
 * order (so a PONG on the subscriber still proves that every invalidation sent before it was
 * read); a script runs atomically; a write of a tracked key, by any connection, sends its
 * invalidation to the subscriber its tracker redirects to; an expired key is removed when
 * read and by a sweep ten times a second (as Redis's active expiry), with its invalidation;
 * a connection that drops loses its subscription, its tracking and its pending replies
 * (failed with "Connection is closed."), and fails new commands at once, as a client without
 * an offline queue does; it reconnects as a new client with a new id. What is not: Redis's
 * own bugs, memory limits and eviction, RESP3, and real network timing.
 */
import { EventEmitter } from "node:events"
import * as Scripts from "./scripts.js"
import type { Actor, World } from "./world.js"

interface Stored {
  readonly value: string
  expiresAt: number
}

/** How a process reaches Redis: changed by the schedule's partitions and invalidation faults. */
export interface Link {
  /** `down`: its connections are closed and do not reconnect until it is `up` again. */
  mode: "up" | "down"
  /** Extra one-way latency of every command, in ms (a slow network or a slow Redis). */
  slow: number
  /** Extra latency of what the subscriber receives (invalidations and replies alike). */
  invalidationDelay: number
}

export interface Latency {
  readonly min: number
  readonly max: number
}

export class SimulatedRedis {
  private readonly keys = new Map<string, Stored>()
  private nextId = 1
  /** Trackers by connection: where their invalidations go, for which prefixes. */
  private readonly trackers = new Map<Connection, { readonly redirect: number; readonly prefixes: ReadonlyArray<string> }>()
  private readonly connections = new Map<number, Connection>()
  readonly keyspace: Scripts.Keyspace

  constructor(
    readonly world: World,
    readonly latency: Latency,
    /** Told of every change of a key (its new text, or null when removed), for the trace. */
    private readonly changed: (key: string, text: string | null) => void
  ) {
    this.keyspace = {
      get: (key) => this.get(key),
      set: (key, value, px) => this.set(key, value, px),
      del: (key) => this.del(key),
      pexpire: (key, px) => {
        const found = this.live(key)
        if (found === undefined) return 0
        found.expiresAt = this.world.now + px
        // Redis counts a new TTL as a change of the key: its trackers are told (a renewed
        // lock wakes the processes waiting on it), though its value is the same.
        this.invalidate(key)
        return 1
      }
    }
    const sweep = () => {
      for (const [key, stored] of this.keys) if (stored.expiresAt <= this.world.now) this.expire(key)
      this.world.at(this.world.now + 100, undefined, sweep)
    }
    this.world.at(100, undefined, sweep)
  }

  /** A new client connection of `actor` over `link`. */
  connect(actor: Actor, link: Link): Connection {
    return new Connection(this, actor, link)
  }

  /** The text at `key`, or null. */
  get(key: string): string | null {
    return this.live(key)?.value ?? null
  }

  set(key: string, value: string, px?: number) {
    this.keys.set(key, { value, expiresAt: px === undefined ? Infinity : this.world.now + px })
    this.touched(key, value)
  }

  del(key: string): number {
    if (this.live(key) === undefined) return 0
    this.keys.delete(key)
    this.touched(key, null)
    return 1
  }

  /** A key that has not expired; an expired one is removed on the way, as Redis does. */
  private live(key: string): Stored | undefined {
    const found = this.keys.get(key)
    if (found === undefined) return undefined
    if (found.expiresAt > this.world.now) return found
    this.expire(key)
    return undefined
  }

  private expire(key: string) {
    this.keys.delete(key)
    this.touched(key, null)
  }

  private touched(key: string, text: string | null) {
    this.changed(key, text)
    this.invalidate(key)
  }

  private invalidate(key: string) {
    for (const [tracker, tracking] of this.trackers) {
      if (!tracking.prefixes.some((prefix) => key.startsWith(prefix))) continue
      const subscriber = this.connections.get(tracking.redirect)
      if (subscriber === undefined || tracker.closedSince !== undefined) continue
      subscriber.push(key)
    }
  }

  register(connection: Connection): number {
    const id = this.nextId++
    this.connections.set(id, connection)
    return id
  }

  /** A connection closed: its tracking and its id are gone. */
  forget(connection: Connection, id: number) {
    this.trackers.delete(connection)
    if (this.connections.get(id) === connection) this.connections.delete(id)
  }

  /** Runs one command of `connection` on the server; answers its reply, or throws Redis's error. */
  execute(connection: Connection, command: Command): unknown {
    if (command.name === "queue") return command.run()
    switch (command.name) {
      case "get":
        return this.get(command.args[0]!)
      case "mget":
        return command.args.map((key) => this.get(key))
      case "set": {
        const [key, value, px, ms] = command.args
        this.set(key!, value!, px === "PX" ? Number(ms) : undefined)
        return "OK"
      }
      case "del":
        return command.args.reduce((n, key) => n + this.del(key), 0)
      case "evalsha":
      case "eval": {
        const [script, count, ...rest] = command.args
        const mirror = Scripts.bySha.get(command.name === "eval" ? Scripts.shaOf(script!) : script!)
        if (mirror === undefined) {
          throw new Error(command.name === "evalsha" ? "NOSCRIPT No matching script." : "ERR a script the simulation does not mirror")
        }
        const n = Number(count)
        return mirror(this.keyspace, rest.slice(0, n), rest.slice(n))
      }
      case "client": {
        const [sub, ...rest] = command.args
        if (sub === "ID") return connection.id
        if (sub === "TRACKING" && rest[0] === "OFF") {
          this.trackers.delete(connection)
          return "OK"
        }
        if (sub === "TRACKING" && rest[0] === "ON") {
          const redirect = Number(rest[rest.indexOf("REDIRECT") + 1])
          const prefixes = rest.flatMap((word, i) => (word === "PREFIX" ? [rest[i + 1]!] : []))
          if (!this.connections.has(redirect)) throw new Error("ERR The client ID you want redirect to does not exist")
          this.trackers.set(connection, { redirect, prefixes })
          return "OK"
        }
        throw new Error(`ERR unknown CLIENT subcommand ${sub}`)
      }
      case "subscribe":
        connection.subscribed = true
        return 1
      case "ping":
        return "PONG"
    }
  }
}

type Command =
  | {
    readonly name: "get" | "mget" | "set" | "del" | "evalsha" | "eval" | "client" | "subscribe" | "ping"
    readonly args: ReadonlyArray<string>
  }
  /** A call of the simulated queue, which lives in the same Redis (as BullMQ's keys do). */
  | { readonly name: "queue"; readonly run: () => unknown }

type Callback = (error: Error | null, reply?: any) => void

/**
 * One client connection, answering the ioredis calls the store makes (`get` and `mget` with
 * callbacks or promises, `set`, `del`, `evalsha`, `eval`, `call("CLIENT", …)`, `subscribe`, `ping`,
 * `duplicate`, `disconnect`, its `status` and its events). Its promises are `Reply`s,
 * settled by the world rather than by Node's microtasks.
 */
export class Connection extends EventEmitter {
  status: "ready" | "reconnecting" | "end" = "ready"
  id: number
  subscribed = false
  /** When the connection last closed, while it is closed. */
  closedSince: number | undefined = undefined
  /** Bumped by each close: replies of an earlier connection are dropped. */
  private epoch = 0
  /** When the last command runs on the server and when its reply arrives (both in order). */
  private serverAt = 0
  private replyAt = 0
  private readonly pending = new Set<Callback>()
  private ended = false

  constructor(
    private readonly redis: SimulatedRedis,
    private readonly actor: Actor,
    readonly link: Link
  ) {
    super()
    this.id = redis.register(this)
    if (link.mode === "down") {
      this.close()
      this.reconnectLater()
    }
  }

  // --- the commands -------------------------------------------------------------

  // With a callback (the read batcher's) or without, answering a promise (the tags' generation
  // read), as ioredis's commands do: either way the command takes its place in the order.
  get(key: string, callback?: Callback) {
    if (callback !== undefined) this.send({ name: "get", args: [key] }, callback)
    else return this.promise({ name: "get", args: [key] })
  }
  mget(keys: ReadonlyArray<string>, callback?: Callback) {
    if (callback !== undefined) this.send({ name: "mget", args: [...keys] }, callback)
    else return this.promise({ name: "mget", args: [...keys] })
  }
  set(...args: Array<string | number>) {
    return this.promise({ name: "set", args: args.map(String) })
  }
  del(...keys: Array<string>) {
    return this.promise({ name: "del", args: keys })
  }
  evalsha(...args: Array<string | number>) {
    return this.promise({ name: "evalsha", args: args.map(String) })
  }
  eval(...args: Array<string | number>) {
    return this.promise({ name: "eval", args: args.map(String) })
  }
  call(command: string, ...args: Array<string | number>) {
    if (command.toUpperCase() !== "CLIENT") return Reply.failed(new Error(`ERR unknown command ${command}`))
    return this.promise({ name: "client", args: args.map(String) })
  }
  subscribe(_channel: string) {
    return this.promise({ name: "subscribe", args: [] })
  }
  ping(callback?: Callback) {
    if (callback !== undefined) this.send({ name: "ping", args: [] }, callback)
    else return this.promise({ name: "ping", args: [] })
  }
  /** Runs `run` on the server, in this connection's order; `callback` gets its answer. */
  queue(run: () => unknown, callback: Callback) {
    this.send({ name: "queue", run }, callback)
  }
  duplicate(): Connection {
    return this.redis.connect(this.actor, this.link)
  }
  /** Closes the connection; with `reconnect`, it comes back as a new client (ioredis's `disconnect(true)`). */
  disconnect(reconnect = false) {
    if (!reconnect) this.ended = true
    this.close()
    if (reconnect) this.reconnectLater()
    else this.status = "end"
  }

  // --- the network --------------------------------------------------------------

  private promise(command: Command): Reply<unknown> {
    const reply = new Reply<unknown>()
    this.send(command, (error, value) => (error === null ? reply.resolve(value) : reply.reject(error)))
    return reply
  }

  private send(command: Command, callback: Callback) {
    const world = this.redis.world
    if (!this.actor.alive) return // a crashed process's commands are lost
    if (this.status !== "ready") {
      world.task(this.actor, () => callback(new Error("Stream isn't writeable and enableOfflineQueue options is false")))
      return
    }
    const epoch = this.epoch
    const { max, min } = this.redis.latency
    const oneWay = () => world.draws.between(min, max) + this.link.slow
    this.serverAt = Math.max(this.serverAt, world.now + oneWay())
    this.pending.add(callback)
    world.at(this.serverAt, undefined, () => {
      if (epoch !== this.epoch) return
      let error: Error | null = null
      let value: unknown
      try {
        value = this.redis.execute(this, command)
      } catch (cause) {
        error = cause as Error
      }
      const back = oneWay() + (this.subscribed ? this.link.invalidationDelay : 0)
      this.replyAt = Math.max(this.replyAt, world.now + back)
      world.at(this.replyAt, this.actor, () => {
        if (epoch !== this.epoch || !this.pending.delete(callback)) return
        callback(error, value)
      })
    })
  }

  /** An invalidation of `key` for this subscriber, behind its earlier replies. */
  push(key: string) {
    if (!this.subscribed || this.status !== "ready") return
    const world = this.redis.world
    const epoch = this.epoch
    const { max, min } = this.redis.latency
    this.replyAt = Math.max(this.replyAt, world.now + world.draws.between(min, max) + this.link.slow + this.link.invalidationDelay)
    world.at(this.replyAt, this.actor, () => {
      if (epoch !== this.epoch) return
      this.emit("messageBuffer", Buffer.from("__redis__:invalidate"), [Buffer.from(key)])
    })
  }

  /** The link went down, or the connection was closed: Redis forgets it, its replies are lost. */
  close() {
    if (this.closedSince !== undefined) return
    const world = this.redis.world
    this.epoch++
    this.closedSince = world.now
    this.subscribed = false
    this.redis.forget(this, this.id)
    const failed = Array.from(this.pending)
    this.pending.clear()
    if (this.status === "ready") this.status = "reconnecting"
    world.task(this.actor, () => {
      for (const callback of failed) callback(new Error("Connection is closed."))
      this.emit("close")
    })
  }

  /** Comes back as a new client once its link is up (ioredis reconnects every ~50 ms). */
  reconnectLater() {
    const world = this.redis.world
    world.at(world.now + 50, this.actor, () => {
      if (this.ended || this.closedSince === undefined) return
      if (this.link.mode === "down") return this.reconnectLater()
      this.closedSince = undefined
      this.serverAt = world.now
      this.replyAt = world.now
      this.id = this.redis.register(this)
      this.status = "ready"
      this.emit("ready")
    })
  }
}

/**
 * A promise settled synchronously by the world: `then` and `catch` as a promise's, without
 * Node's microtask queue, whose order the world would not decide.
 */
export class Reply<A> {
  private state: "pending" | "resolved" | "rejected" = "pending"
  private value: unknown
  private readonly waiting: Array<() => void> = []

  static failed(error: Error): Reply<never> {
    const reply = new Reply<never>()
    reply.reject(error)
    return reply
  }

  resolve(value: A) {
    this.settle("resolved", value)
  }
  reject(error: unknown) {
    this.settle("rejected", error)
  }

  then<B = A, C = never>(
    onResolved?: ((value: A) => B | PromiseLike<B>) | null,
    onRejected?: ((error: any) => C | PromiseLike<C>) | null
  ): Reply<B | C> {
    const next = new Reply<B | C>()
    const run = () => {
      const handler = this.state === "resolved" ? onResolved : onRejected
      if (handler == null) return this.state === "resolved" ? next.resolve(this.value as B) : next.reject(this.value)
      try {
        const out = handler(this.value as A)
        if (out !== null && typeof out === "object" && typeof (out as PromiseLike<B>).then === "function") {
          ;(out as PromiseLike<B | C>).then((v) => next.resolve(v), (e) => next.reject(e))
        } else {
          next.resolve(out as B | C)
        }
      } catch (error) {
        next.reject(error)
      }
    }
    if (this.state === "pending") this.waiting.push(run)
    else run()
    return next
  }

  catch<C = never>(onRejected: (error: any) => C | PromiseLike<C>): Reply<A | C> {
    return this.then(undefined, onRejected)
  }

  private settle(state: "resolved" | "rejected", value: unknown) {
    if (this.state !== "pending") return
    this.state = state
    this.value = value
    for (const run of this.waiting.splice(0)) run()
  }
}
