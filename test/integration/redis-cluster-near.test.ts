/**
 * The near cache on the local Redis Cluster (DESIGN.md §7): process B,
 * a reader process with a near cache, tracks every master; this process (A) writes through
 * a store without one. A key on each master is written while B reads it in a loop.
 */
import calculateSlot from "cluster-key-slot"
import { Effect, Layer } from "effect"
import { Job, RefreshQueue } from "effect-cacheback"
import { RedisCacheStore } from "effect-cacheback/redis"
import type { Cluster } from "ioredis"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { clusterNodes } from "../support/services.js"
import { eventually, keyOf, unique } from "./fixtures/redis.js"
import { version } from "./fixtures/store-jobs.js"
import { endStoreHost, spawnStoreHost, type StoreHost } from "./fixtures/store-hosts.js"
import { cleanUp, targets } from "./fixtures/targets.js"
import { monitor } from "../support/monitor.js"

const cluster = (await targets()).find((target) => target.name === "a Redis Cluster")!

describe.skipIf(!cluster.up)("near cache on a Redis Cluster", () => {
  const raw = cluster.raw() as Cluster
  const prefixes: Array<string> = []
  let reader: StoreHost

  beforeAll(async () => {
    reader = await spawnStoreHost("reader")
  }, 60_000)
  afterAll(async () => {
    await endStoreHost(reader)
    await cleanUp(cluster, raw, prefixes, [])
  }, 30_000)
  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => console.log(`--- output of the reader ---\n${reader.output.join("")}`))
  })

  it("B sees another client's writes of a key on each master within 1 s, never an older version after a newer one, reading mostly near hits", async () => {
    const prefix = unique("cluster-near")
    prefixes.push(prefix)
    await reader.open({ cluster: clusterNodes, prefix, near: { capacity: 1_000 } })
    const writer = Layer.merge(RedisCacheStore.layer({ cluster: { nodes: clusterNodes }, prefix }), RefreshQueue.layerMemory({ concurrency: 1 }))
    await raw.ping()
    // An input whose entry is on each master.
    const masters = new Set(raw.nodes("master").map((node) => `${node.options.host}:${node.options.port}`))
    const master = (input: string) => raw.slots[calculateSlot(cluster.entryKey(prefix, keyOf(version, input)))]![0]!
    const inputs = new Map<string, string>()
    for (let i = 0; inputs.size < masters.size; i++) {
      const input = `on-${i}`
      if (!inputs.has(master(input))) inputs.set(master(input), input)
    }
    expect(masters.size).toBe(3)

    // B's commands on this prefix that reached Redis, on every master.
    const monitors = await Promise.all(cluster.servers(raw).map(monitor))
    let redisReads = 0
    for (const monitor of monitors) {
      monitor.on("monitor", (_time: string, args: ReadonlyArray<string>) => {
        const command = args[0]!.toLowerCase()
        if ((command === "get" || command === "mget") && args.slice(1).some((arg) => arg.startsWith(`${prefix}:`))) redisReads++
      })
    }
    try {
      for (const [node, input] of inputs) {
        // Stored before B reads: B never fetches (its fetch is another writer, of version 0).
        await Effect.runPromise(Effect.provide(Job.set(version, input, { n: 0 }), writer))
        reader.seen.length = 0
        await reader.watch(input)
        const before = redisReads
        const written: Array<number> = []
        await Effect.runPromise(Effect.provide(
          Effect.gen(function*() {
            for (let n = 1; n <= 300; n++) {
              yield* Job.set(version, input, { n })
              written[n] = performance.timeOrigin + performance.now()
              yield* Effect.sleep("1 millis")
            }
          }),
          writer
        ))
        await eventually(`B reads the last version of the key on ${node}`, 1_000, () =>
          reader.seen.at(-1)?.version === 300 ? true : undefined)
        const { reads, regressions } = await reader.unwatch()
        expect(regressions).toBe(0)
        // For each write, when B first read it or a newer version.
        let i = 0
        for (let n = 1; n <= 300; n++) {
          while (i < reader.seen.length && reader.seen[i]!.version < n) i++
          expect(i < reader.seen.length ? reader.seen[i]!.at - written[n]! : Number.POSITIVE_INFINITY).toBeLessThanOrEqual(1_000)
        }
        // Near hits: far fewer reads reached Redis than B made. Without tracking on this
        // master the near cache would not answer at all.
        expect(reads).toBeGreaterThan(1_000)
        expect(redisReads - before).toBeLessThan(reads / 2)
      }
    } finally {
      for (const monitor of monitors) monitor.disconnect()
    }
  }, 60_000)
})
