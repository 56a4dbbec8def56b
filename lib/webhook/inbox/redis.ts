import { once } from 'node:events'
import type { Redis } from 'ioredis'
import { oncePerOutage, openRedis } from '../../redis/open.ts'
import { LATE, within } from '../../timers.ts'
import type { InboxSettings } from '../options.ts'

/** Where BullMQ's errors go: the app's logger. */
interface InboxLog {
  error: (details: { err: Error }, message: string) => void
}

/**
 * What each role's connection needs on top of the app's settings.
 * - producer (`add`, `counts`): a command fails at once while Redis is unreachable, with no
 *   offline queue and no retry of a command in flight when the connection dropped, and fails
 *   after `commandTimeout` while Redis hangs. The route then answers 503 and Customer.io keeps
 *   the event, instead of holding the request until Redis returns. A lost reply is safe: the
 *   event's next copy finds its job.
 * - worker: BullMQ requires `maxRetriesPerRequest: null`, so that its blocking commands wait
 *   for Redis to return instead of failing.
 */
function roleOptions (role: InboxRole, commandTimeoutMs: number, closing: () => boolean) {
  // A connection cut at the close bound is destroyed soon after, even if a hung Redis never
  // answers the goodbye: ioredis' default would keep the process alive two seconds more.
  // Once the inbox closes no connection reconnects, the copies BullMQ makes of it included
  // (they share these options): BullMQ 6 leaves one reconnecting when Redis went away meanwhile.
  const common = { disconnectTimeout: AFTER_CUT_MS, retryStrategy: (times: number) => closing() ? null : Math.min(times * 50, 2_000) }
  return role === 'producer'
    ? { ...common, enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: commandTimeoutMs }
    : { ...common, maxRetriesPerRequest: null }
}

export type InboxRole = 'producer' | 'worker'

/** Past the close bound, the connections are cut; what was waiting on them then has this long to end. */
const AFTER_CUT_MS = 500

/**
 * The inbox's Redis side: the connections it opened and the BullMQ objects over them, closed
 * in the reverse order of opening, and how their errors are logged.
 */
export class InboxResources {
  readonly #settings: Pick<InboxSettings, 'connection' | 'closeTimeoutMs'>
  readonly #log: InboxLog
  readonly #errors: ReturnType<typeof oncePerOutage>
  readonly #commandTimeoutMs: number
  readonly #closers: Array<() => unknown> = []
  readonly #cutters: Array<() => unknown> = []
  readonly #connections: Redis[] = []
  readonly #cut = new AbortController()
  #closing = false

  constructor (settings: Pick<InboxSettings, 'connection' | 'closeTimeoutMs'>, log: InboxLog, commandTimeoutMs: number) {
    this.#settings = settings
    this.#log = log
    this.#commandTimeoutMs = commandTimeoutMs
    this.#errors = oncePerOutage((err) => { log.error({ err }, 'customer.io webhook inbox error') })
  }

  /** A connection of its own for `role`, disconnected by {@link close}. */
  async connect (role: InboxRole): Promise<Redis> {
    // Connections of its own, each with the options its role needs; an app's instance is never used or closed.
    const redis = await openRedis(this.#settings.connection, roleOptions(role, this.#commandTimeoutMs, () => this.#closing))
    this.#connections.push(redis)
    // Connected again: the next error starts a new outage, worth a line of its own.
    redis.on('ready', this.#errors.reset)
    this.onClose(() => redis.disconnect())
    return redis
  }

  /** Resolves when closing passed its bound: whatever a closer still waits for will not come. */
  get cut (): Promise<void> {
    return once(this.#cut.signal, 'abort').then(() => {})
  }

  /**
   * Runs `cutter` if closing passes its bound, right after the connections are cut: for what
   * BullMQ opened of its own, which a closer still waiting on the hung Redis cannot end.
   */
  onCut (cutter: () => unknown): void {
    this.#cutters.push(cutter)
  }

  /** Runs `closer` at {@link close}, before everything registered earlier. */
  onClose (closer: () => unknown): void {
    this.#closers.push(closer)
  }

  /** Logs an error BullMQ reports, once per outage. */
  get report (): (err: Error) => void {
    return this.#errors.report
  }

  /**
   * Runs the closers, newest first, within the close bound. Past it (Redis hangs, or a job
   * does not end) every connection is cut, which fails whatever still waits on Redis, so the
   * closers end soon after; a job cut off this way is left to the stalled check of the next
   * worker.
   */
  async close (): Promise<void> {
    this.#closing = true
    const closing = (async () => {
      for (let closer = this.#closers.pop(); closer !== undefined; closer = this.#closers.pop()) await closer()
    })()
    const { closeTimeoutMs } = this.#settings
    if (await within(closing, closeTimeoutMs) !== LATE) return
    this.#log.error({ err: new Error(`closing took over ${closeTimeoutMs} ms`) }, 'customer.io webhook inbox closed by cutting its Redis connections')
    this.#cut.abort()
    for (const redis of this.#connections) redis.disconnect()
    const cutting = this.#cutters.map(async (cutter) => { await cutter() })
    await within(Promise.allSettled([closing, ...cutting]), AFTER_CUT_MS)
  }
}
