import type { ClaimResult, DedupeStore } from './dedupe.ts'

export interface MemoryDedupeOptions {
  /** How many ids are kept, claims and confirmed ones alike; the oldest is forgotten first. Default 100 000. */
  size?: number
  /** The clock leases are measured by, in ms. Default `Date.now`; tests pass their own. */
  now?: () => number
}

/** A confirmed id holds this instead of a lease end: it never lapses. */
const DONE = Infinity

/**
 * The {@link DedupeStore} for a single instance: ids live in this process only, so instances
 * behind a load balancer do not see each other's claims (use the Redis store for that).
 */
export class MemoryDedupeStore implements DedupeStore {
  // id → when its claim lapses (ms), or DONE. A Map iterates in insertion order, so its first key is the oldest.
  readonly #ids = new Map<string, number>()
  /**
   * One iterator for evicting, made once: a Map iterator is live (it skips what was deleted and
   * reaches what was added), while a fresh one would walk past every deleted slot each time.
   */
  readonly #oldest = this.#ids.keys()
  readonly #size: number
  readonly #now: () => number

  constructor ({ size = 100_000, now = Date.now }: MemoryDedupeOptions = {}) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError('MemoryDedupeStore size must be a positive integer')
    this.#size = size
    this.#now = now
  }

  claim (id: string, leaseMs: number): ClaimResult {
    const held = this.#ids.get(id)
    if (held === DONE) return 'done'
    const now = this.#now()
    if (held !== undefined && held > now) return 'busy'
    this.#remember(id, now + leaseMs, held !== undefined)
    return 'new'
  }

  confirm (id: string): void {
    this.#remember(id, DONE)
  }

  release (id: string): void {
    if (this.#ids.get(id) !== DONE) this.#ids.delete(id)
  }

  #remember (id: string, until: number, held = true): void {
    // Re-inserting moves the id to the newest end; a new id (most claims) is only added.
    if (held) this.#ids.delete(id)
    this.#ids.set(id, until)
    if (this.#ids.size > this.#size) this.#ids.delete(this.#oldest.next().value as string)
  }
}
