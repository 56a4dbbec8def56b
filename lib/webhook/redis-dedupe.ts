import { randomUUID } from 'node:crypto'
import type { ClaimResult, DedupeStore } from './dedupe.ts'

/**
 * The ioredis methods the store calls. Any ioredis `Redis` instance fits; typed here rather
 * than imported so that apps without ioredis still compile the plugin's types.
 */
export interface RedisDedupeClient {
  eval: (script: string, numKeys: number, ...args: Array<string | number>) => Promise<unknown>
  set: (key: string, value: string, px: 'PX', ms: number) => Promise<unknown>
}

export interface RedisDedupeOptions {
  /** Prepended to every event id to make its key. Default `'cio:webhook:'`. */
  prefix?: string
  /**
   * How long a confirmed id is kept. Default 8 days: Customer.io retries an event for 7 days,
   * and the extra day covers clock differences and copies sent at the window's very end.
   */
  doneTtlMs?: number
}

const DEFAULT_DONE_TTL_MS = 8 * 24 * 60 * 60 * 1000

// Claim and its busy/done answer in one script, so no other instance can act between them.
const CLAIM = `if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 'new' end
if redis.call('GET', KEYS[1]) == 'done' then return 'done' end
return 'busy'`

// Deletes only this store's own live claim: never a confirmed id, nor a claim another instance
// took after ours lapsed.
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0`

/**
 * The {@link DedupeStore} shared by every instance that uses the same Redis: each id is one key,
 * holding the claim's own token with the lease as its TTL while claimed, then `done` for
 * `doneTtlMs`. The client is the app's and stays the app's to configure and close. Its options
 * decide how fast a call fails while Redis is unreachable or hangs: give it
 * `enableOfflineQueue: false`, `maxRetriesPerRequest: 0` and a `commandTimeout` below the
 * route's `answerWithinMs`.
 */
export class RedisDedupeStore implements DedupeStore {
  readonly #redis: RedisDedupeClient
  readonly #prefix: string
  readonly #doneTtlMs: number
  readonly #holder = `busy:${randomUUID()}:`
  #claimed = 0
  /** The token of each claim this store holds, so release() ends that claim and no other. */
  readonly #tokens = new Map<string, string>()

  constructor (redis: RedisDedupeClient, { prefix = 'cio:webhook:', doneTtlMs = DEFAULT_DONE_TTL_MS }: RedisDedupeOptions = {}) {
    if (!Number.isInteger(doneTtlMs) || doneTtlMs < 1) throw new RangeError('RedisDedupeStore doneTtlMs must be a positive integer')
    this.#redis = redis
    this.#prefix = prefix
    this.#doneTtlMs = doneTtlMs
  }

  async claim (id: string, leaseMs: number): Promise<ClaimResult> {
    const token = this.#holder + String(++this.#claimed)
    try {
      const found = await this.#redis.eval(CLAIM, 1, this.#prefix + id, token, leaseMs) as ClaimResult
      if (found === 'new') this.#tokens.set(id, token)
      return found
    } catch (err) {
      // A command that timed out may still run once a hung Redis wakes: take back what it would
      // have claimed, so copies are not held for the lease by a claim nobody holds.
      this.#redis.eval(RELEASE, 1, this.#prefix + id, token).catch(() => {})
      throw err
    }
  }

  async confirm (id: string): Promise<void> {
    await this.#redis.set(this.#prefix + id, 'done', 'PX', this.#doneTtlMs)
    this.#tokens.delete(id)
  }

  async release (id: string): Promise<void> {
    const token = this.#tokens.get(id)
    if (token === undefined) return
    this.#tokens.delete(id)
    await this.#redis.eval(RELEASE, 1, this.#prefix + id, token)
  }
}
