/**
 * examples/server.ts as users run it: a child process on a free port, read over real HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type ExampleServer, startExampleServer } from "./fixtures/exampleServer.js"

let server: ExampleServer
let base = ""

beforeAll(async () => {
  server = await startExampleServer()
  base = server.base
})

afterAll(() => server?.stop())

describe("examples/server.ts", () => {
  it("GET /users/:username: a miss, then a hit", async () => {
    const first = await fetch(`${base}/users/alan`)
    expect(first.status).toBe(200)
    expect(first.headers.get("x-cache")).toBe("miss")
    expect(await first.json()).toEqual({ id: 1, username: "alan", isStaff: true })

    const second = await fetch(`${base}/users/alan`)
    expect(second.headers.get("x-cache")).toBe("hit")
    expect(await second.json()).toEqual({ id: 1, username: "alan", isStaff: true })
  })

  it("GET /users/:username of an unknown user: 404", async () => {
    const response = await fetch(`${base}/users/nobody`)
    expect(response.status).toBe(404)
    const body = (await response.json()) as { error: string }
    expect(body.error).toContain(`no row of table "users"`)
  })

  it("GET /staff: the staff, a miss then a hit", async () => {
    const first = await fetch(`${base}/staff`)
    expect(first.status).toBe(200)
    expect(first.headers.get("x-cache")).toBe("miss")
    const users = (await first.json()) as Array<{ username: string }>
    expect(users.map((user) => user.username)).toEqual(["alan", "grace"])
    expect((await fetch(`${base}/staff`)).headers.get("x-cache")).toBe("hit")
  })
})
