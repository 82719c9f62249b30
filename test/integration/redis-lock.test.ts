/**
 * One fetch across processes (DESIGN.md §3.1), with four reader processes on the
 * real Redis, and on the local Redis Cluster: a lock per key elects one fetcher,
 * the others wait for its value. The processes share nothing but Redis. The SIGKILL test
 * runs last: it ends one of them.
 */
import calculateSlot from "cluster-key-slot"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { clusterNodes, redisUrl, requireService } from "../support/services.js"
import { cleanUp, eventually, keyOf, rawClient, unique } from "./fixtures/redis.js"
import { shared } from "./fixtures/store-jobs.js"
import { endStoreHost, type Result, spawnStoreHost, type StoreHost } from "./fixtures/store-hosts.js"
import * as Targets from "./fixtures/targets.js"

const up = await requireService("redis")
const onCluster = (await Targets.targets()).find((target) => target.name === "a Redis Cluster")!

describe.skipIf(!up)("one fetch across processes", () => {
  const raw = rawClient()
  const prefixes: Array<string> = []
  const clusterPrefixes: Array<string> = []
  const clusterRaw = onCluster.up ? onCluster.raw() : undefined
  let hosts: ReadonlyArray<StoreHost> = []

  beforeAll(async () => {
    hosts = await Promise.all(["reader-1", "reader-2", "reader-3", "reader-4"].map((who) => spawnStoreHost(who)))
  }, 60_000)
  afterAll(async () => {
    await Promise.all(hosts.map(endStoreHost))
    await cleanUp(raw, prefixes, [])
    raw.disconnect()
    if (clusterRaw !== undefined) await Targets.cleanUp(onCluster, clusterRaw, clusterPrefixes, [])
  }, 30_000)
  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => {
      for (const host of hosts) console.log(`--- output of ${host.who} ---\n${host.output.join("")}`)
    })
  })

  const openAll = async (
    label: string,
    options: { url?: string; cluster?: boolean; lockTtl?: number; near?: { capacity: number }; commandTimeout?: number } = {},
    among = hosts
  ) => {
    const prefix = unique(label)
    ;(options.cluster ? clusterPrefixes : prefixes).push(prefix)
    await Promise.all(among.map((host) =>
      host.open({
        ...(options.cluster ? { cluster: clusterNodes } : { url: options.url ?? redisUrl }),
        prefix,
        ...(options.lockTtl ? { lockTtl: options.lockTtl } : {}),
        ...(options.near ? { near: options.near } : {}),
        ...(options.commandTimeout ? { commandTimeout: options.commandTimeout } : {})
      })
    ))
    return prefix
  }
  const fetchesOf = (input: string, among = hosts) => among.flatMap((host) => host.fetches.filter((fetch) => fetch.input === input))

  it("4 processes × 250 concurrent reads of a cold key: exactly one fetch, every read its value", async () => {
    await openAll("cold")
    const input = `cold-${unique("k")}@300`
    const results = (await Promise.all(hosts.map((host) => host.get("shared", input, 250)))).flat()
    expect(results).toHaveLength(1_000)
    expect(results.filter((result) => !result.ok)).toEqual([])
    expect(fetchesOf(input)).toHaveLength(1)
    const by = fetchesOf(input)[0]!.by
    expect(new Set(results.map((result) => result.value!.by))).toEqual(new Set([by]))
  }, 30_000)

  it("with near caches on (waiters are also woken by the value's invalidation): still one fetch for 4 × 250 reads", async () => {
    await openAll("cold-near", { near: { capacity: 100 } })
    await new Promise((resolve) => setTimeout(resolve, 300)) // tracking confirmed
    const input = `cold-near-${unique("k")}@300`
    const results = (await Promise.all(hosts.map((host) => host.get("shared", input, 250)))).flat()
    expect(results.filter((result) => !result.ok)).toEqual([])
    expect(fetchesOf(input)).toHaveLength(1)
    expect(new Set(results.map((result) => result.value!.by)).size).toBe(1)
  }, 30_000)

  it.skipIf(!onCluster.up)("on a Redis Cluster: 4 processes × 250 concurrent reads of a cold key, one fetch; its lock is in its entry's slot", async () => {
    const prefix = await openAll("cluster-cold", { cluster: true })
    const input = `cluster-cold-${unique("k")}@500`
    const asked = Promise.all(hosts.map((host) => host.get("shared", input, 250)))
    // While the fetch runs, its lock is held: at <prefix>|lock:{<key>}, in the slot of <prefix>:{<key>}.
    const key = keyOf(shared, input)
    const lock = await eventually("the fetch lock is taken", 5_000, async () =>
      (await onCluster.keys(clusterRaw!, prefix)).find((found) => found.startsWith(`${prefix}|lock:`)))
    expect(lock).toBe(`${prefix}|lock:{${key}}`)
    expect(calculateSlot(lock)).toBe(calculateSlot(onCluster.entryKey(prefix, key)))
    const results = (await asked).flat()
    expect(results).toHaveLength(1_000)
    expect(results.filter((result) => !result.ok)).toEqual([])
    expect(fetchesOf(input)).toHaveLength(1)
    expect(new Set(results.map((result) => result.value!.by))).toEqual(new Set([fetchesOf(input)[0]!.by]))
    expect(await clusterRaw!.exists(onCluster.entryKey(prefix, key))).toBe(1)
  }, 30_000)

  it.skipIf(!onCluster.up)("on a Redis Cluster with near caches on (tracking every master): one fetch for 4 × 250 reads of each of 6 keys", async () => {
    // 6,000 reads at once on a shared 2-core host can keep a lookup past the default 1 s
    // timeout, and a read whose lookup timed out fetches alone (by design: it must answer
    // within one store timeout plus its fetch). What is tested here is the lock.
    await openAll("cluster-near", { cluster: true, near: { capacity: 100 }, commandTimeout: 5_000 })
    await new Promise((resolve) => setTimeout(resolve, 500)) // tracking confirmed on every master
    const inputs = Array.from({ length: 6 }, () => `cluster-near-${unique("k")}@300`)
    const results = (await Promise.all(inputs.flatMap((input) => hosts.map((host) => host.get("shared", input, 250))))).flat()
    expect(results.filter((result) => !result.ok)).toEqual([])
    for (const input of inputs) expect(fetchesOf(input)).toHaveLength(1)
  }, 30_000)

  it("Job.withSingleFlight(\"process\"): each process fetches once, with no lock", async () => {
    const prefix = await openAll("local")
    const input = `local-${unique("k")}@300`
    const results = (await Promise.all(hosts.map((host) => host.get("local", input, 50)))).flat()
    expect(results.filter((result) => !result.ok)).toEqual([])
    for (const host of hosts) expect(host.fetches.filter((fetch) => fetch.input === input)).toHaveLength(1)
    expect(await raw.keys(`${prefix}|lock:*`)).toEqual([])
  }, 30_000)

  it("a failing fetch: every read gets the error (its holder's, or its own fetch's), and none waits for the lock's TTL", async () => {
    // A TTL far longer than the test's deadline: a waiter that waited it out would show.
    await openAll("failing", { lockTtl: 20_000 })
    const input = `fails-${unique("k")}@200`
    const asked = performance.now()
    const results = (await Promise.all(hosts.map((host) => host.get("failing", input, 50)))).flat()
    const answered = Math.max(...results.map((result) => result.at - performance.timeOrigin))
    expect(results.every((result) => !result.ok && result.error === "Unavailable")).toBe(true)
    // The holder's fetch fails and marks the lock: the others fetch themselves (at most one
    // fetch per process), within a few fetches' time.
    expect(fetchesOf(input).length).toBeGreaterThanOrEqual(1)
    expect(fetchesOf(input).length).toBeLessThanOrEqual(4)
    expect(answered - asked).toBeLessThan(5_000)
  }, 30_000)

  it("Redis unreachable: each process single-flights alone, and no read fails", async () => {
    // A port nothing listens on.
    await openAll("unreachable", { url: "redis://127.0.0.1:1" }, hosts.slice(0, 2))
    const input = `down-${unique("k")}@200`
    const results = (await Promise.all(hosts.slice(0, 2).map((host) => host.get("shared", input, 100)))).flat()
    expect(results.filter((result) => !result.ok)).toEqual([])
    for (const host of hosts.slice(0, 2)) {
      expect(host.fetches.filter((fetch) => fetch.input === input)).toHaveLength(1)
    }
  }, 30_000)

  it("the lock holder SIGKILLed mid-fetch: the others answer within the lock TTL plus one fetch, with exactly one more fetch", async () => {
    await openAll("killed")
    const input = `killed-${unique("k")}@2000`
    const asked = hosts.map((host) => host.get("shared", input, 50))
    const holder = await eventually("a process fetches", 5_000, () => hosts.find((host) => host.fetches.some((fetch) => fetch.input === input)))
    const others = hosts.filter((host) => host !== holder)
    holder.child.kill("SIGKILL")
    const killedAt = performance.now()
    const results: Array<Result> = (await Promise.all(asked.filter((_, i) => hosts[i] !== holder))).flat()
    const answered = Math.max(...results.map((result) => result.at - performance.timeOrigin))
    expect(results).toHaveLength(150)
    expect(results.filter((result) => !result.ok)).toEqual([])
    expect(fetchesOf(input, others)).toHaveLength(1)
    // The lock's TTL (3 s) + one fetch (2 s), and 1.5 s for two polls and a loaded machine.
    expect(answered - killedAt).toBeLessThan(3_000 + 2_000 + 1_500)
    expect(new Set(results.map((result) => result.value!.by))).toEqual(new Set([fetchesOf(input, others)[0]!.by]))
  }, 30_000)
})
