import type { ClaimResult, DedupeStore } from './dedupe.ts'

export interface MemoryDedupeOptions {
  /** How many ids are remembered, confirmed or claimed; the least recently claimed or confirmed is forgotten first. Default 100 000. */
  size?: number
  /** The clock leases are measured by, in ms. Default `Date.now`; tests pass their own. */
  now?: () => number
}

export const DEFAULT_DEDUPE_SIZE = 100_000

/** A confirmed id holds this instead of a lease end: it never lapses. */
const DONE = Infinity

/**
 * The {@link DedupeStore} for a single instance: ids live in this process only, so instances
 * behind a load balancer do not see each other's claims (use the Redis store for that).
 * A `Map` kept in order of last use: the first key is the one to forget when it is full.
 */
export class MemoryDedupeStore implements DedupeStore {
  readonly #size: number
  readonly #now: () => number
  /** id → when its claim lapses (ms), or DONE. */
  readonly #ids = new Map<string, number>()
  /**
   * Walks the ids oldest first, and every id it passed was forgotten, so its next one is the
   * oldest left. A fresh `keys()` per eviction would step over every forgotten slot again.
   */
  readonly #oldest = this.#ids.keys()

  constructor ({ size = DEFAULT_DEDUPE_SIZE, now = Date.now }: MemoryDedupeOptions = {}) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError('MemoryDedupeStore size must be a positive integer')
    this.#size = size
    this.#now = now
  }

  claim (id: string, leaseMs: number): ClaimResult {
    const until = this.#ids.get(id)
    if (until === DONE) return 'done'
    if (until !== undefined && until > this.#now()) return 'busy'
    // New, or its holder died: claimed again, as the newest.
    this.#set(id, this.#now() + leaseMs)
    return 'new'
  }

  confirm (id: string): void {
    this.#set(id, DONE)
  }

  release (id: string): void {
    if (this.#ids.get(id) !== DONE) this.#ids.delete(id)
  }

  #set (id: string, until: number): void {
    this.#ids.delete(id)
    this.#ids.set(id, until)
    if (this.#ids.size > this.#size) this.#ids.delete(this.#oldest.next().value!)
  }
}
