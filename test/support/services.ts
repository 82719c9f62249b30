/**
 * Where the integration suites find their servers, and what they do without them: under
 * `CI=true` an unreachable server fails the run; elsewhere the suite is skipped with a
 * message that says how to start it.
 */
import * as net from "node:net"

export const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"
export const databaseUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"

/** The seed nodes of the local Redis Cluster that `scripts/redis-cluster.sh start` runs. */
export const clusterNodes: ReadonlyArray<{ readonly host: string; readonly port: number }> = (
  process.env.REDIS_CLUSTER_NODES ?? "127.0.0.1:7100,127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103,127.0.0.1:7104,127.0.0.1:7105"
).split(",").map((node) => {
  const [host, port] = node.trim().split(":")
  return { host: host!, port: Number(port) }
})

const howToStart = {
  redis: `start one with: redis-server --daemonize yes --port 6379 --save "" --appendonly no (or set REDIS_URL)`,
  postgres: `start one with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start (or set DATABASE_URL)`,
  cluster: `start one with: bash scripts/redis-cluster.sh start (or set REDIS_CLUSTER_NODES=host:port,...)`
} as const

const reachable = (url: string, defaultPort: number): Promise<boolean> => {
  const { hostname, port } = new URL(url)
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname || "127.0.0.1", port: Number(port || defaultPort) })
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(1000, () => done(false))
    socket.once("connect", () => done(true))
    socket.once("error", () => done(false))
  })
}

/**
 * Resolves to `true` when the server answers. Throws under `CI=true` when it does not;
 * otherwise warns with how to start it, and the caller skips its suite.
 */
export const requireService = async (service: "redis" | "postgres" | "cluster"): Promise<boolean> => {
  const url = service === "redis"
    ? redisUrl
    : service === "postgres"
    ? databaseUrl
    : `redis://${clusterNodes[0]!.host}:${clusterNodes[0]!.port}`
  const ok = await reachable(url, service === "postgres" ? 5432 : 6379)
  if (ok) return true
  const message = `${service === "cluster" ? "the Redis Cluster" : service} is not reachable at ${url}; ${howToStart[service]}`
  if (process.env.CI === "true") throw new Error(`CI=true: ${message}`)
  console.warn(`skipping the ${service} suite: ${message}`)
  return false
}
