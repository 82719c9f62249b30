/**
 * RedisCacheStore on a Redis Cluster whose topology changes under traffic: slots moved to
 * another master, and a master SIGKILLed. On a private cluster of the suite (on free ports),
 * so that the shared one stays healthy for the suites that run meanwhile. The
 * resharding runs first: the failover leaves a master without its replica.
 */
import calculateSlot from "cluster-key-slot"
import { Clock, Effect, Layer, Option, Schema } from "effect"
import { type CacheStore, Job, RefreshQueue } from "effect-cacheback"
import { BullRefreshQueue, RedisCacheStore, RefreshWorker } from "effect-cacheback/redis"
import { Cluster, Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freeRange } from "../support/ports.js"
import { requireService } from "../support/services.js"
import { type PrivateCluster, startPrivateCluster } from "./fixtures/private-cluster.js"
import { eventually, keyOf, poll, quiet, unique } from "./fixtures/redis.js"
import { version } from "./fixtures/store-jobs.js"
import { monitor } from "../support/monitor.js"

// The private cluster is made by the same script, from the same redis-server.
const up = await requireService("cluster")

type Stores = CacheStore.CacheStore | RefreshQueue.RefreshQueue

describe.skipIf(!up)("RedisCacheStore on a cluster whose topology changes", () => {
  let cluster: PrivateCluster
  let raw: Cluster

  beforeAll(async () => {
    cluster = await startPrivateCluster(await freeRange(6))
    raw = new Cluster([...cluster.nodes], { redisOptions: { maxRetriesPerRequest: 1 } })
    await raw.ping()
  }, 60_000)
  afterAll(async () => {
    raw?.disconnect()
    await cluster?.stop()
  }, 30_000)

  /** A store on the private cluster under `prefix`, built in the scope. */
  const storeOn = (prefix: string, nearCache?: { readonly capacity: number }) =>
    Effect.map(
      Layer.build(Layer.merge(
        RedisCacheStore.layer({ cluster: { nodes: cluster.nodes }, prefix, ...(nearCache === undefined ? {} : { nearCache }) }),
        RefreshQueue.layerMemory({ concurrency: 4 })
      )),
      (context) => <A, E>(effect: Effect.Effect<A, E, Stores>) => Effect.provide(effect, context)
    )

  it("the slots of 10 keys move to other masters while they are read and written: every read answers the latest value written; near caches track every master and are emptied when slots move", async () => {
    const prefix = unique("reshard")
    const entryKey = (input: string) => `${prefix}:{${keyOf(version, input)}}`
    const moving = Array.from({ length: 10 }, (_, i) => `moving-${i}`)
    // A key of another slot, that B holds near and does not read while the slots move.
    const still = Array.from({ length: 100 }, (_, i) => `still-${i}`).find((input) =>
      !moving.some((other) => calculateSlot(entryKey(other)) === calculateSlot(entryKey(input))))!
    // How often B's reads of `still` reach Redis.
    const monitors = await Promise.all(raw.nodes("master").map(monitor))
    let stillReads = 0
    for (const monitor of monitors) {
      monitor.on("monitor", (_time: string, args: ReadonlyArray<string>) => {
        const command = args[0]!.toLowerCase()
        if ((command === "get" || command === "mget") && args.includes(entryKey(still))) stillReads++
      })
    }
    const counted = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.gen(function*() {
        yield* Effect.promise(() => Promise.all(raw.nodes("master").map((node) => node.ping())))
        const before = stillReads
        yield* effect
        // MONITOR reports commands as Redis runs them.
        yield* Effect.promise(() => Promise.all(raw.nodes("master").map((node) => node.ping())))
        yield* Effect.sleep("100 millis")
        return stillReads - before
      })

    try {
      await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        // A writes, then reads its own write; B reads with a near cache; C reads without one.
        const inA = yield* storeOn(prefix, { capacity: 1_000 })
        const inB = yield* storeOn(prefix, { capacity: 1_000 })
        const inC = yield* storeOn(prefix)
        yield* Effect.sleep("500 millis") // tracking confirmed on every master
        for (const input of [...moving, still]) yield* inA(Job.set(version, input, { n: 1 }))
        // Other keys in the slots that move, so that each move takes a while (a MIGRATE of 20
        // keys at a time): meanwhile a slot's keys are on two masters, and ioredis follows ASK.
        yield* Effect.promise(() =>
          Promise.all(moving.map((input) => {
            const pipeline = raw.pipeline()
            for (let i = 0; i < 300; i++) pipeline.set(`fill:{${keyOf(version, input)}}:${i}`, "x".repeat(100), "EX", 600)
            return pipeline.exec()
          })))
        for (const input of [...moving, still]) {
          yield* Effect.promise(() =>
            eventually(`B reads version 1 of ${input}`, 2_000, () =>
              Effect.runPromise(inB(Job.get(version, input))).then(({ n }) => n === 1 || undefined)))
        }
        // B holds `still` near: reading it reaches Redis no more.
        expect(yield* counted(inB(Job.get(version, still)))).toBe(0)

        let stop = false
        const reads = { a: 0, b: 0, c: 0 }
        const wrong: Array<string> = []
        const latest = new Map(moving.map((input) => [input, 1]))
        // A: for each key in turn, a new version, then a read that must answer it.
        const writer = Effect.gen(function*() {
          while (!stop) {
            for (const input of moving) {
              const n = latest.get(input)! + 1
              yield* inA(Job.set(version, input, { n }))
              latest.set(input, n)
              const read = yield* inA(Job.get(version, input))
              reads.a++
              if (read.n !== n) wrong.push(`A wrote ${input} v${n} and read v${read.n}`)
            }
          }
        })
        // C: a read answers at least the version written before it was issued, and so does each
        // key of a getMany (an MGET per slot, pipelined per master). B: a version
        // never older than one it read before (its near cache learns of A's writes from Redis,
        // a moment after they resolve), and the last one once the writes stop.
        const seenByB = new Map(moving.map((input) => [input, 1]))
        const readers = Effect.gen(function*() {
          while (!stop) {
            for (const input of moving) {
              const floor = latest.get(input)!
              const c = yield* inC(Job.get(version, input))
              reads.c++
              if (c.n < floor) wrong.push(`C read ${input} v${c.n} after v${floor} was written`)
              const b = yield* inB(Job.get(version, input))
              reads.b++
              if (b.n < seenByB.get(input)!) wrong.push(`B read ${input} v${b.n} after v${seenByB.get(input)}`)
              seenByB.set(input, b.n)
            }
            const floors = moving.map((input) => latest.get(input)!)
            const many = yield* inC(Job.getMany(version, moving))
            reads.c += moving.length
            many.forEach(({ n }, i) => {
              if (n < floors[i]!) wrong.push(`C's getMany read ${moving[i]} v${n} after v${floors[i]} was written`)
            })
          }
        })
        const traffic = yield* Effect.fork(Effect.all([writer, readers], { concurrency: "unbounded", discard: true }))
        yield* Effect.sleep("300 millis")
        const moves: Array<{ readonly slot: number; readonly from: number; readonly to: number }> = []
        for (const input of moving) {
          const slot = calculateSlot(entryKey(input))
          const from = (yield* Effect.promise(() => cluster.ownerOf(slot))).port
          const to = (yield* Effect.promise(() => cluster.masters())).find((master) => master.port !== from)!.port
          yield* Effect.promise(() => cluster.moveSlot(slot, to, 20))
          moves.push({ slot, from, to })
        }
        yield* Effect.sleep("500 millis")
        stop = true
        yield* traffic.await

        console.log(
          `resharding: ${moves.length} slots moved (${moves.map(({ from, slot, to }) => `${slot}: ${from}→${to}`).join(", ")}); ` +
            `reads while moving: A ${reads.a} (its own writes), B ${reads.b} (near), C ${reads.c}; wrong reads: ${wrong.length}`
        )
        expect(wrong).toEqual([])
        expect(Math.min(reads.a, reads.b, reads.c)).toBeGreaterThan(100)
        for (const { slot, to } of moves) expect((yield* Effect.promise(() => cluster.ownerOf(slot))).port).toBe(to)
        // Every key answers its last version, in B too.
        for (const input of moving) {
          expect((yield* inC(Job.get(version, input))).n).toBe(latest.get(input))
          yield* Effect.promise(() =>
            eventually(`B reads the last version of ${input}`, 1_000, () =>
              Effect.runPromise(inB(Job.get(version, input))).then(({ n }) => n === latest.get(input) || undefined)))
        }
        // The moves emptied B's near cache: `still`, untouched, is read from Redis once, then near again.
        expect(yield* counted(inB(Job.get(version, still)))).toBe(1)
        expect(yield* counted(Effect.repeatN(inB(Job.get(version, still)), 9))).toBe(0)
      }).pipe(quiet)))
    } finally {
      for (const monitor of monitors) monitor.disconnect()
    }
  }, 120_000)

  it("a master SIGKILLed mid-traffic, with a BullMQ queue and worker on the cluster: no read fails, reads of its keys fetch until its replica is promoted, hits resume, every key read stale meanwhile is refreshed, the near cache tracks the new master", async () => {
    const prefix = unique("failover")
    const queueName = `{${unique("failover")}}`
    const refreshTimeout = 5_000
    const job = Job.make({
      name: "cluster.failover",
      fetch: (input: string) => Effect.map(Clock.currentTimeMillis, (at) => ({ input, at }))
    }).pipe(
      Job.withLifetime("1 second"),
      Job.withCacheTtl("10 minutes"),
      Job.withRefreshTimeout(refreshTimeout),
      Job.withSchema({ input: Schema.String, value: Schema.Struct({ input: Schema.String, at: Schema.Number }) })
    )
    const entryKey = (input: string) => `${prefix}:{${keyOf(job, input)}}`
    const inputs = Array.from({ length: 30 }, (_, i) => `key-${i}`)
    const masters = await cluster.masters()
    const ownerOf = (key: string) => masters.find((master) => master.ranges.some(([first, last]) => calculateSlot(key) >= first && calculateSlot(key) <= last))!
    const byMaster = new Map(masters.map((master) => [master.port, inputs.filter((input) => ownerOf(entryKey(input)) === master)]))
    expect(Math.min(...Array.from(byMaster.values(), (keys) => keys.length))).toBeGreaterThanOrEqual(3)
    // The victim is a master of keys, not of the queue: this test is about the store's reads.
    const queueMaster = ownerOf(queueName)
    const victim = masters.find((master) => master !== queueMaster)!
    const victimKeys = new Set(byMaster.get(victim.port)!)

    const layer = Layer.mergeAll(
      RedisCacheStore.layer({ cluster: { nodes: cluster.nodes }, prefix }),
      BullRefreshQueue.layer({ cluster: { nodes: cluster.nodes }, queueName })
    )
    interface Read {
      readonly input: string
      readonly start: number
      readonly end: number
      readonly status?: "hit" | "stale" | "miss"
      readonly failure?: string
    }
    const records: Array<Read> = []
    /** Reads through B, a store with a near cache: they must not fail either. */
    const nearRecords: Array<Read> = []
    const figures = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      yield* RefreshWorker.start({ jobs: [job], concurrency: 4 })
      const inB = yield* storeOn(prefix, { capacity: 1_000 })
      for (const input of inputs) yield* Job.set(job, input, { input, at: 0 })
      let stop = false
      let next = 0
      const now = () => performance.timeOrigin + performance.now()
      const reader = <R>(into: Array<Read>, lookup: (input: string) => Effect.Effect<{ readonly status: NonNullable<Read["status"]> }, unknown, R>) =>
        Effect.gen(function*() {
          while (!stop) {
            const input = inputs[next++ % inputs.length]!
            const start = now()
            const exit = yield* Effect.exit(lookup(input))
            into.push(
              exit._tag === "Success"
                ? { input, start, end: now(), status: exit.value.status }
                : { input, start, end: now(), failure: String(exit.cause) }
            )
            yield* Effect.sleep("2 millis")
          }
        })
      const readers = [
        ...Array.from({ length: 8 }, () => reader(records, (input) => Job.lookup(job, input))),
        reader(nearRecords, (input) => inB(Job.lookup(job, input)))
      ]
      const traffic = yield* Effect.fork(Effect.all(readers, { concurrency: "unbounded", discard: true }))
      yield* Effect.sleep("2 seconds")

      cluster.kill(victim.port)
      const killedAt = now()
      // Promoted: three masters answer for every slot again, the victim not among them.
      const promotedAt = yield* Effect.promise(() =>
        eventually("a replica is promoted", 30_000, async () => {
          const live = await cluster.masters().catch(() => [])
          return live.length === 3 && !live.some((master) => master.port === victim.port) ? now() : undefined
        }, 50))
      // Hits resume: a read of one of the victim's keys answered from Redis, after they fetched.
      const degraded = () => records.find((read) => read.start > killedAt && victimKeys.has(read.input) && read.status === "miss")
      const resumed = yield* Effect.promise(() =>
        eventually("reads of the victim's keys are answered by Redis again", 30_000, () => {
          const first = degraded()
          return first === undefined
            ? undefined
            : records.find((read) => read.start > first.end && victimKeys.has(read.input) && (read.status === "hit" || read.status === "stale"))
        }, 50))
      const resumedAt = resumed.end
      yield* Effect.sleep("1 second")
      const during = records.filter((read) => read.start >= killedAt && read.start <= resumedAt)

      // Every key read stale during the failover is refreshed (stored with a newer fetch)
      // within its refresh timeout + 30 s after hits resume; reads go on meanwhile.
      const staleAt = new Map<string, number>()
      for (const read of during) if (read.status === "stale") staleAt.set(read.input, Math.max(staleAt.get(read.input) ?? 0, read.start))
      const refreshedBy = resumedAt + refreshTimeout + 30_000
      for (const [input, at] of staleAt) {
        yield* poll(
          `${input}, read stale at +${Math.round(at - killedAt)} ms, is refreshed`,
          Math.max(0, refreshedBy - now()),
          Effect.map(Effect.orElseSucceed(Job.rawGet(job, input), () => Option.none()), (entry) =>
            Option.isSome(entry) && entry.value._tag === "Value" && entry.value.fetchedAt >= at ? true : undefined)
        )
      }
      stop = true
      yield* traffic.await

      // B's near cache tracks the promoted master: a write there reaches B, whose reads are
      // then near hits again (none reaches the master).
      const promoted = (yield* Effect.promise(() => cluster.masters())).find((master) => !masters.some((before) => before.port === master.port))!
      const input = Array.from({ length: 1_000 }, (_, i) => `near-${i}`).find((input) =>
        promoted.ranges.some(([first, last]) => {
          const slot = calculateSlot(`${prefix}:{${keyOf(version, input)}}`)
          return slot >= first && slot <= last
        }))!
      const admin = yield* Effect.acquireRelease(
        Effect.sync(() => new Redis({ host: "127.0.0.1", port: promoted.port }).on("error", () => {})),
        (client) => Effect.sync(() => client.disconnect())
      )
      const gets = yield* Effect.acquireRelease(Effect.promise(() => monitor(admin)), (monitor) => Effect.sync(() => monitor.disconnect()))
      let reachedMaster = 0
      gets.on("monitor", (_time: string, args: ReadonlyArray<string>) => {
        if (args.includes(`${prefix}:{${keyOf(version, input)}}`) && args[0]!.toLowerCase() !== "set") reachedMaster++
      })
      const readsOfB = (n: number) => poll(`B reads v${n} of the key on the promoted master`, 1_000, Effect.map(inB(Job.get(version, input)), (read) => read.n === n || undefined))
      yield* Job.set(version, input, { n: 1 })
      yield* readsOfB(1)
      // The read that saw v1 may have raced the write's invalidation, and then rightly not
      // been kept: once that invalidation is in, one more read fills the near cache.
      yield* Effect.sleep("100 millis")
      yield* inB(Job.get(version, input))
      const before = reachedMaster
      yield* Effect.repeatN(inB(Job.get(version, input)), 19)
      // MONITOR reports commands as Redis runs them.
      yield* Effect.promise(() => admin.ping())
      yield* Effect.sleep("100 millis")
      const nearAfterFailover = reachedMaster - before
      yield* Job.set(version, input, { n: 2 })
      yield* readsOfB(2)
      return {
        nearAfterFailover,
        killedAt,
        promotedAfter: Math.round(promotedAt - killedAt),
        hitsResumeAfter: Math.round(resumedAt - killedAt),
        staleDuring: staleAt.size,
        readsDuring: during.length,
        fetchedDuring: during.filter((read) => read.status === "miss").length,
        maxLatencyDuring: Math.round(Math.max(...records.filter((read) => read.start >= killedAt && read.start <= resumedAt + 1_000).map((read) => read.end - read.start)))
      }
    }).pipe(Effect.provide(layer), quiet)))
    const failures = records.filter((read) => read.failure !== undefined)
    console.log(
      `failover: ${records.length} reads, ${failures.length} failed; master ${victim.port} SIGKILLed, replica promoted after ${figures.promotedAfter} ms, ` +
        `hits resume after ${figures.hitsResumeAfter} ms; until then ${figures.readsDuring} reads, ${figures.fetchedDuring} of them fetched, ` +
        `max read latency ${figures.maxLatencyDuring} ms; ${figures.staleDuring} keys read stale meanwhile, each refreshed`
    )
    expect(failures).toEqual([])
    expect(nearRecords.filter((read) => read.failure !== undefined)).toEqual([])
    expect(nearRecords.length).toBeGreaterThan(100)
    expect(figures.fetchedDuring).toBeGreaterThan(0)
    expect(figures.nearAfterFailover).toBe(0)
  }, 120_000)
})
