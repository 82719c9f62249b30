/**
 * Free ports for servers a test run starts (a Redis Cluster needs 6 consecutive ports and the
 * same + 10000 for its bus): found by binding, so that a run never collides with a cluster
 * or server already running on this machine.
 */
import * as net from "node:net"

const free = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = net.createServer()
    server.once("error", () => resolve(false))
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)))
  })

/** A base port B such that B..B+count-1 and each + 10000 are free, from a random start in [20000, 40000). */
export const freeRange = async (count: number): Promise<number> => {
  for (let tries = 0; tries < 200; tries++) {
    const base = 20_000 + Math.floor(Math.random() * 2_000) * 10
    const ports = Array.from({ length: count }, (_, i) => base + i)
    const all = await Promise.all([...ports, ...ports.map((p) => p + 10_000)].map(free))
    if (all.every(Boolean)) return base
  }
  throw new Error(`no ${count} consecutive free ports (and their +10000) between 20000 and 50000`)
}
