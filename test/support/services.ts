/**
 * Where the integration suites find their servers, and what they do without them: under
 * `CI=true` an unreachable server fails the run; elsewhere the suite is skipped with a
 * message that says how to start it.
 */
import * as net from "node:net"

export const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"
export const databaseUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"

const howToStart = {
  redis: `start one with: redis-server --daemonize yes --port 6379 --save "" --appendonly no (or set REDIS_URL)`,
  postgres: `start one with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start (or set DATABASE_URL)`
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
export const requireService = async (service: "redis" | "postgres"): Promise<boolean> => {
  const url = service === "redis" ? redisUrl : databaseUrl
  const ok = await reachable(url, service === "redis" ? 6379 : 5432)
  if (ok) return true
  const message = `${service} is not reachable at ${url}; ${howToStart[service]}`
  if (process.env.CI === "true") throw new Error(`CI=true: ${message}`)
  console.warn(`skipping the ${service} suite: ${message}`)
  return false
}
