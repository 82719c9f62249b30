/**
 * `MONITOR` on one Redis server, for tests that count the commands a server runs.
 *
 * Written by hand because ioredis's `monitor()` fails on a busy server: it switches to
 * monitoring mode only once the `OK` of `MONITOR` has resolved a promise, and the lines that
 * arrive in the same read as that `OK` are taken for replies to no command ("Command queue
 * state error"). Here every line after the `OK` is a monitored command.
 */
import { EventEmitter } from "node:events"
import { connect } from "node:net"

export interface Monitor extends EventEmitter {
  /** Emits `monitor` with `(time, args, source)` for each command, as ioredis does. */
  on(event: "monitor", listener: (time: string, args: ReadonlyArray<string>, source: string) => void): this
  readonly disconnect: () => void
}

/** Starts monitoring the server at `host:port`; resolves once Redis confirmed `MONITOR`. */
export const monitor = (server: { readonly options: { readonly host?: string | undefined; readonly port?: number | undefined } }): Promise<Monitor> =>
  new Promise((resolve, reject) => {
    const socket = connect(server.options.port ?? 6379, server.options.host ?? "127.0.0.1")
    const emitter = Object.assign(new EventEmitter(), { disconnect: () => socket.destroy() }) as Monitor
    let buffered = ""
    let confirmed = false
    socket.setEncoding("utf8")
    socket.once("error", reject)
    socket.on("connect", () => socket.write("MONITOR\r\n"))
    socket.on("data", (chunk: string) => {
      buffered += chunk
      let end: number
      while ((end = buffered.indexOf("\r\n")) >= 0) {
        const line = buffered.slice(0, end)
        buffered = buffered.slice(end + 2)
        if (!confirmed) {
          if (line !== "+OK") return reject(new Error(`MONITOR answered ${line}`))
          confirmed = true
          socket.off("error", reject)
          socket.on("error", () => {})
          resolve(emitter)
          continue
        }
        // +<time> [<db> <source>] "<command>" "<arg>" …, quotes inside escaped as \"
        const text = line.slice(1)
        const space = text.indexOf(" ")
        const quote = text.indexOf("\"")
        if (space < 0 || quote < 0) continue
        const source = text.slice(space + 2, quote - 2).split(" ")[1] ?? ""
        const args = text.slice(quote + 1, -1).split("\" \"").map((arg) => arg.replace(/\\"/g, "\""))
        emitter.emit("monitor", text.slice(0, space), args, source)
      }
    })
  })
