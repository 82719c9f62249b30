/**
 * Which ioredis runs: `npm test` runs under the development default (the newest 6.x), and
 * `npm run test:ioredis5` under a second install of 5. This checks the major actually
 * loaded by the test process, by a child process and by BullMQ's own connections, so
 * that a pass under "ioredis 5" cannot be a pass under 6 (or the reverse).
 */
import { describe, expect, it } from "@effect/vitest"
import { Queue } from "bullmq"
import { execFileSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { Redis } from "ioredis"
import { redisUrl, requireService } from "../support/services.js"

const require = createRequire(import.meta.url)
const expected = process.env.EXPECT_IOREDIS ?? String(
  JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")).devDependencies.ioredis.replace(/^\D*/, "")
).split(".")[0]
const major = (version: string) => version.split(".")[0]
const up = await requireService("redis")

describe.skipIf(!up)(`ioredis ${expected} is the one loaded`, () => {
  it("by this process", () => {
    expect(major(require("ioredis/package.json").version)).toBe(expected)
  })

  it("by a child process", () => {
    const version = execFileSync(process.execPath, ["-e", "process.stdout.write(require('ioredis/package.json').version)"], {
      cwd: new URL("../..", import.meta.url)
    }).toString()
    expect(major(version)).toBe(expected)
  })

  it("by BullMQ, for its connections", async () => {
    const fromBull = createRequire(require.resolve("bullmq"))
    expect(major(fromBull("ioredis/package.json").version)).toBe(expected)
    // The client a Queue makes from options is an instance of that same ioredis.
    const { hostname, port } = new URL(redisUrl)
    const queue = new Queue(`ioredis-version-${process.pid}`, { connection: { host: hostname, port: Number(port || 6379) } })
    try {
      expect(await queue.getBackend().client).toBeInstanceOf(Redis)
    } finally {
      await queue.close()
    }
  })
})
