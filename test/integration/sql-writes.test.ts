/**
 * examples/writes.ts over real HTTP: after a write and `QueryJob.invalidateTable`,
 * the next read answers the cached rows while the refresh runs, and a read after it has the
 * new row — with an hour-long lifetime that would otherwise hide it.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type ExampleServer, startExampleServer } from "./fixtures/exampleServer.js"
import { eventually } from "./fixtures/redis.js"

let server: ExampleServer
let base = ""

beforeAll(async () => {
  server = await startExampleServer({}, "examples/writes.ts")
  base = server.base
})

afterAll(() => server?.stop())

const staff = async () => {
  const response = await fetch(`${base}/staff`)
  return { cache: response.headers.get("x-cache"), names: (await response.json()) as Array<string> }
}

describe("examples/writes.ts", () => {
  it("a write invalidates the table: stale once, then the new row", async () => {
    expect(await staff()).toEqual({ cache: "miss", names: ["alan", "grace"] })
    expect(await staff()).toEqual({ cache: "hit", names: ["alan", "grace"] })
    const created = await fetch(`${base}/staff/ada`, { method: "POST" })
    expect(created.status).toBe(201)
    expect(await staff()).toEqual({ cache: "stale", names: ["alan", "grace"] })
    const refreshed = await eventually("the refresh lands", 5_000, async () => {
      const read = await staff()
      return read.names.length === 3 ? read : undefined
    })
    expect(refreshed).toEqual({ cache: "hit", names: ["ada", "alan", "grace"] })
  })
})
