/**
 * The simulated refresh queue (DESIGN.md §11.4): BullMQ's contract as `BullRefreshQueue`
 * and `RefreshWorker` use it, kept by hand in the simulated Redis.
 *
 * - At least once: a task runs until a worker reports it finished; a worker that dies or is
 *   cut off stops renewing its lock, and the first stalled check (every `stalledInterval`,
 *   run while any worker lives) that finds the lock expired of a task active at the check
 *   before puts the task back, or fails it after `maxStalledCount` stalls. Its first worker
 *   may still finish it: twice is allowed.
 * - One waiting task per key (`deduplication: { id: key }`), and while the key's task is
 *   active one more kept, the last enqueued (`keepLastIfActive`), added when it finishes.
 * - A failed attempt waits its backoff (fixed, or doubling) before the next, up to
 *   `attempts`; a rejected task (an unknown job, another store…) fails at once.
 */
import type { Backoff, TaskRecord } from "./trace.js"
import type { Actor, World } from "./world.js"

export interface QueueSettings {
  readonly lockDuration: number
  readonly stalledInterval: number
  readonly maxStalledCount: number
}

export interface Delivery {
  readonly id: string
  readonly data: unknown
  readonly attemptsMade: number
  readonly opts: { readonly attempts: number }
}

/** What the queue sees of a worker: whether it lives, and how to hand it a task. */
export interface WorkerSlot {
  readonly actor: Actor
  readonly name: string
  free: number
  /** Whether its connection to Redis is up now. */
  readonly reachable: () => boolean
  /** Hands it a task, after a one-way trip. */
  readonly deliver: (task: Delivery) => void
}

interface Queued {
  readonly id: string
  readonly key: string
  readonly data: unknown
  readonly attempts: number
  readonly backoff: Backoff
  attemptsMade: number
  stalledCount: number
  state: "waiting" | "delayed" | "active" | "finished"
  worker: WorkerSlot | undefined
  lockUntil: number
  /** Active at the last stalled check: the next check that finds its lock expired puts it back. */
  marked: boolean
}

export interface Added {
  readonly key: string
  readonly data: unknown
  readonly attempts: number
  readonly backoff: Backoff
}

export class SimulatedQueue {
  private seq = 0
  private readonly byKey = new Map<string, { current: Queued; next: Added | undefined }>()
  private waiting: Array<Queued> = []
  private readonly active = new Set<Queued>()
  private readonly workers: Array<WorkerSlot> = []

  constructor(
    private readonly world: World,
    private readonly settings: QueueSettings,
    private readonly record: (event: TaskRecord) => void
  ) {
    const check = () => {
      this.stalledCheck()
      world.at(world.now + settings.stalledInterval, undefined, check)
    }
    world.at(settings.stalledInterval, undefined, check)
  }

  /** A task added, on the server: "enqueued", or "deduplicated" behind the key's task. */
  add(task: Added): "enqueued" | "deduplicated" {
    const known = this.byKey.get(task.key)
    if (known !== undefined) {
      if (known.current.state === "active") known.next = task
      this.record({ at: this.world.now, key: task.key, event: known.current.state === "active" ? "kept" : "deduplicated" })
      return "deduplicated"
    }
    this.create(task)
    return "enqueued"
  }

  attach(worker: WorkerSlot) {
    this.workers.push(worker)
    this.dispatch()
  }

  /** A worker's renewal of its lock, on the server. */
  renew(worker: WorkerSlot, id: string) {
    for (const task of this.active) {
      if (task.id === id && task.worker === worker) task.lockUntil = this.world.now + this.settings.lockDuration
    }
  }

  /** A worker's report that it finished `id`, on the server: lost if the task was taken from it meanwhile. */
  finish(worker: WorkerSlot, id: string, outcome: "completed" | "failed" | "rejected") {
    let task: Queued | undefined
    for (const each of this.active) if (each.id === id && each.worker === worker) task = each
    if (task === undefined) return
    this.active.delete(task)
    task.worker = undefined
    if (outcome === "failed" && task.attemptsMade + 1 < task.attempts) {
      task.attemptsMade++
      task.state = "delayed"
      const wait = task.backoff.type === "fixed" ? task.backoff.delay : task.backoff.delay * 2 ** (task.attemptsMade - 1)
      this.record({ at: this.world.now, key: task.key, event: "retry", worker: worker.name })
      this.world.at(this.world.now + wait, undefined, () => {
        task.state = "waiting"
        this.waiting.push(task)
        this.dispatch()
      })
    } else {
      this.end(task, outcome === "completed" ? "completed" : "failed", worker.name)
    }
    this.dispatch()
  }

  /** Hands waiting tasks to live, reachable workers with a free slot, oldest first. */
  dispatch() {
    while (this.waiting.length > 0) {
      const worker = this.workers.find((w) => w.actor.alive && w.free > 0 && w.reachable())
      if (worker === undefined) return
      const task = this.waiting.shift()!
      worker.free--
      task.state = "active"
      task.worker = worker
      task.lockUntil = this.world.now + this.settings.lockDuration
      task.marked = false
      this.active.add(task)
      this.record({ at: this.world.now, key: task.key, event: "started", worker: worker.name })
      worker.deliver({ id: task.id, data: task.data, attemptsMade: task.attemptsMade, opts: { attempts: task.attempts } })
    }
  }

  /** Forgets the workers of a crashed incarnation (their tasks stall). */
  detach(actor: Actor) {
    for (let i = this.workers.length - 1; i >= 0; i--) if (this.workers[i]!.actor === actor) this.workers.splice(i, 1)
  }

  private create(task: Added) {
    const queued: Queued = {
      id: String(++this.seq),
      key: task.key,
      data: task.data,
      attempts: Math.max(1, task.attempts),
      backoff: task.backoff,
      attemptsMade: 0,
      stalledCount: 0,
      state: "waiting",
      worker: undefined,
      lockUntil: 0,
      marked: false
    }
    this.byKey.set(task.key, { current: queued, next: undefined })
    this.waiting.push(queued)
    this.record({ at: this.world.now, key: task.key, event: "enqueued" })
    this.dispatch()
  }

  private end(task: Queued, how: "completed" | "failed", worker: string | undefined) {
    task.state = "finished"
    this.record({ at: this.world.now, key: task.key, event: how, ...(worker !== undefined ? { worker } : {}) })
    const known = this.byKey.get(task.key)
    if (known?.current !== task) return
    this.byKey.delete(task.key)
    if (known.next !== undefined) this.create(known.next)
  }

  private stalledCheck() {
    if (!this.workers.some((worker) => worker.actor.alive)) return
    const now = this.world.now
    // As BullMQ's check does: a task active at the previous check whose lock has expired is
    // put back; then every active task is marked for the next check.
    for (const task of Array.from(this.active)) {
      if (!task.marked || task.lockUntil > now) continue
      this.active.delete(task)
      const worker = task.worker
      task.worker = undefined
      task.stalledCount++
      if (task.stalledCount > this.settings.maxStalledCount) {
        this.end(task, "failed", undefined)
        continue
      }
      this.record({ at: now, key: task.key, event: "stalled", ...(worker !== undefined ? { worker: worker.name } : {}) })
      task.state = "waiting"
      this.waiting.push(task)
    }
    for (const task of this.active) task.marked = true
    this.dispatch()
  }
}
