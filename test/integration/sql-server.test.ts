/**
 * examples/server.ts as users run it: a child process on a free port, read over real HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { rmSync } from "node:fs"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../..", import.meta.url))
const file = join(tmpdir(), `effect-cacheback-server-${randomUUID()}.db`)
let server: ChildProcess
let output = ""
let base = ""

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const probe = net.createServer()
    probe.once("error", reject)
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as net.AddressInfo
      probe.close(() => resolve(port))
    })
  })

/** Resolves once the server answers any request; fails with its output if it exits first. */
const answering = async (url: string) => {
  for (let attempt = 0; attempt < 200; attempt++) {
    if (server.exitCode !== null) throw new Error(`examples/server.ts exited (${server.exitCode}):\n${output}`)
    try {
      await fetch(url)
      return
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  throw new Error(`examples/server.ts did not answer at ${url}:\n${output}`)
}

beforeAll(async () => {
  const port = await freePort()
  base = `http://127.0.0.1:${port}`
  server = spawn(process.execPath, ["--import", "tsx", "examples/server.ts"], {
    cwd: root,
    env: { ...process.env, PORT: String(port), SQLITE_FILE: file },
    stdio: ["ignore", "pipe", "pipe"]
  })
  server.stdout!.on("data", (chunk) => (output += chunk))
  server.stderr!.on("data", (chunk) => (output += chunk))
  await answering(`${base}/`)
})

afterAll(async () => {
  if (server.exitCode === null) {
    const exited = new Promise((resolve) => server.once("exit", resolve))
    server.kill("SIGTERM")
    await exited
  }
  rmSync(file, { force: true })
})

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
