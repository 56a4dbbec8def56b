import type { Redis } from 'ioredis'
import type { InboxConnection, InboxLog, InboxRedisTemplate } from './inbox-options.ts'

/**
 * What each role's connection needs on top of the app's settings.
 * - producer (`add`, `counts`): a command fails at once while Redis is unreachable, with no
 *   offline queue and no retry of a command in flight when the connection dropped. The route
 *   then answers 503 and Customer.io keeps the event, instead of holding the request until
 *   Redis returns. A lost reply is safe: the event's next copy finds its job.
 * - worker: BullMQ requires `maxRetriesPerRequest: null`, so that its blocking commands wait
 *   for Redis to return instead of failing.
 */
const ROLES = {
  producer: { enableOfflineQueue: false, maxRetriesPerRequest: 0 },
  worker: { maxRetriesPerRequest: null }
} as const

export type InboxRole = keyof typeof ROLES

/**
 * The Redis side of one inbox part: the connections it opened and the BullMQ objects over them,
 * closed in the reverse order of opening, and how their errors are logged.
 */
export class InboxResources {
  readonly #connection: InboxConnection
  readonly #log: InboxLog
  readonly #closers: Array<() => unknown> = []
  #lastError: string | undefined

  constructor (connection: InboxConnection, log: InboxLog) {
    this.#connection = connection
    this.#log = log
  }

  /** A connection of its own for `role`, disconnected by {@link close}. */
  async connect (role: InboxRole): Promise<Redis> {
    const template = this.#connection as Partial<InboxRedisTemplate>
    let redis: Redis
    if (typeof template.duplicate === 'function') {
      redis = template.duplicate(ROLES[role]) as Redis
    } else {
      // Loaded only now: an app that never opens an inbox needs no ioredis.
      const { Redis } = await import('ioredis')
      redis = typeof this.#connection === 'string' ? new Redis(this.#connection, ROLES[role]) : new Redis({ ...this.#connection, ...ROLES[role] })
    }
    // Connected again: the next error starts a new outage, worth a line of its own.
    redis.on('ready', () => { this.#lastError = undefined })
    this.onClose(() => redis.disconnect())
    return redis
  }

  /** Runs `closer` at {@link close}, before everything registered earlier. */
  onClose (closer: () => unknown): void {
    this.#closers.push(closer)
  }

  /** Logs an error BullMQ reports. An outage repeats one error per reconnection attempt, so a repeat is logged once. */
  readonly report = (err: Error): void => {
    if (err.message === this.#lastError) return
    this.#lastError = err.message
    this.#log.error({ err }, 'customer.io webhook inbox error')
  }

  async close (): Promise<void> {
    for (let closer = this.#closers.pop(); closer !== undefined; closer = this.#closers.pop()) await closer()
  }
}
