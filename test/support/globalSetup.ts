/**
 * Before the suites: when no Redis Cluster is named (`REDIS_CLUSTER_NODES`), `npm test` starts
 * one with the project's script on free ports, in a directory of its own, and stops it after,
 * so that a newcomer's run skips nothing CI runs. It needs `redis-server` and `redis-cli`;
 * without them the cluster suites say how to start one (and fail under `CI=true`).
 */
import { execFile } from "node:child_process"
import { rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { freeRange } from "./ports.js"

const run = promisify(execFile)
const script = fileURLToPath(new URL("../../scripts/redis-cluster.sh", import.meta.url))

export default async function setup() {
  if (process.env.REDIS_CLUSTER_NODES !== undefined) return
  const base = await freeRange(6)
  const dir = join(tmpdir(), `cacheback-test-cluster-${process.pid}`)
  const env = { ...process.env, CLUSTER_BASE_PORT: String(base), CLUSTER_DIR: dir }
  try {
    const { stdout } = await run("bash", [script, "start"], { env })
    const nodes = /^REDIS_CLUSTER_NODES=(.+)$/m.exec(stdout)?.[1]
    if (nodes === undefined) throw new Error(`the cluster script printed no REDIS_CLUSTER_NODES:\n${stdout}`)
    process.env.REDIS_CLUSTER_NODES = nodes
  } catch (error) {
    console.warn(`npm test: could not start a local Redis Cluster (${String(error).split("\n")[0]}); the cluster suites will say how to start one`)
    return
  }
  return async () => {
    await run("bash", [script, "stop"], { env }).catch(() => undefined)
    rmSync(dir, { recursive: true, force: true })
  }
}
