import type { ClaimResult, DedupeStore } from './dedupe.ts'

export interface MemoryDedupeOptions {
  /**
   * How many claims are remembered: the ids of the newest `size` claims, confirmed or still
   * live; the oldest is forgotten first (a released id's place too, when its turn comes).
   * Default 100 000.
   */
  size?: number
  /** The clock leases are measured by, in ms. Default `Date.now`; tests pass their own. */
  now?: () => number
}

/** A confirmed id holds this instead of a lease end: it never lapses. */
const DONE = Infinity
const MIN_INDEX = 16

/** FNV-1a over the id's UTF-16 units, folded to 30 bits so it stays a V8 small integer. */
function hashId (id: string): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < id.length; i++) hash = Math.imul(hash ^ id.charCodeAt(i), 0x01000193)
  return (hash ^ (hash >>> 15)) & 0x3fffffff
}

/**
 * The {@link DedupeStore} for a single instance: ids live in this process only, so instances
 * behind a load balancer do not see each other's claims (use the Redis store for that).
 *
 * Built for the route's hot path with the store full, where a `Map` of 100 000 ids cost several
 * cache misses per event (its lookup, the oldest id's eviction, a confirm's re-insert): the
 * ids sit in a ring in the order they were claimed, and an open-addressed index of their hashes
 * finds them, so a new id touches one index entry and one ring slot, and an id's string is read
 * only when its hash matches.
 */
export class MemoryDedupeStore implements DedupeStore {
  readonly #size: number
  readonly #now: () => number
  /**
   * The ring, per slot: the id (undefined once released), its hash, and when its claim lapses
   * (ms) or DONE. It grows up to `size` slots; once full, the next claim takes the oldest's slot.
   */
  readonly #ids: Array<string | undefined> = []
  readonly #hashes: number[] = []
  readonly #until: number[] = []
  #next = 0
  /**
   * Linear probing over pairs (ring slot + 1, or 0 for empty; the id's hash), at most half full
   * (rebuilt twice as large as the ring grows), so a probe ends within a step or two.
   */
  #index = new Int32Array(2 * MIN_INDEX)
  #mask = MIN_INDEX - 1

  constructor ({ size = 100_000, now = Date.now }: MemoryDedupeOptions = {}) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError('MemoryDedupeStore size must be a positive integer')
    this.#size = size
    this.#now = now
  }

  claim (id: string, leaseMs: number): ClaimResult {
    const hash = hashId(id)
    const at = this.#find(id, hash)
    if (at >= 0) {
      const slot = this.#index[2 * at]! - 1
      const until = this.#until[slot]!
      if (until === DONE) return 'done'
      if (until > this.#now()) return 'busy'
      // Its holder died: claimed again, as the newest.
      this.#forget(at, slot)
    }
    this.#add(id, hash, this.#now() + leaseMs)
    return 'new'
  }

  confirm (id: string): void {
    const hash = hashId(id)
    const at = this.#find(id, hash)
    // Done where it was claimed; an id forgotten since (or never claimed) is added as the newest.
    if (at >= 0) this.#until[this.#index[2 * at]! - 1] = DONE
    else this.#add(id, hash, DONE)
  }

  release (id: string): void {
    const at = this.#find(id, hashId(id))
    if (at < 0) return
    const slot = this.#index[2 * at]! - 1
    if (this.#until[slot] !== DONE) this.#forget(at, slot)
  }

  /** The index position of `id`, or −1. */
  #find (id: string, hash: number): number {
    const index = this.#index
    for (let at = hash & this.#mask; index[2 * at] !== 0; at = (at + 1) & this.#mask) {
      if (index[2 * at + 1] === hash && this.#ids[index[2 * at]! - 1] === id) return at
    }
    return -1
  }

  #add (id: string, hash: number, until: number): void {
    const slot = this.#next
    // A slot the ring already has is the oldest: its id (unless released) is forgotten.
    const oldest = this.#ids[slot]
    if (oldest !== undefined) this.#unindex(this.#find(oldest, this.#hashes[slot]!))
    this.#ids[slot] = id
    this.#hashes[slot] = hash
    this.#until[slot] = until
    this.#next = slot + 1 === this.#size ? 0 : slot + 1
    if (2 * this.#ids.length > this.#mask + 1) this.#rebuild(2 * (this.#mask + 1))
    else this.#insert(slot, hash)
  }

  #forget (at: number, slot: number): void {
    this.#unindex(at)
    this.#ids[slot] = undefined
  }

  #insert (slot: number, hash: number): void {
    const index = this.#index
    let at = hash & this.#mask
    while (index[2 * at] !== 0) at = (at + 1) & this.#mask
    index[2 * at] = slot + 1
    index[2 * at + 1] = hash
  }

  /** Empties position `at`, moving later entries of its probe run back so every one stays findable. */
  #unindex (at: number): void {
    const index = this.#index
    const mask = this.#mask
    let hole = at
    for (let next = (at + 1) & mask; index[2 * next] !== 0; next = (next + 1) & mask) {
      // An entry may fill the hole if the hole lies on its probe path (between its home and it).
      if (((next - index[2 * next + 1]!) & mask) >= ((next - hole) & mask)) {
        index[2 * hole] = index[2 * next]!
        index[2 * hole + 1] = index[2 * next + 1]!
        hole = next
      }
    }
    index[2 * hole] = 0
  }

  #rebuild (positions: number): void {
    this.#index = new Int32Array(2 * positions)
    this.#mask = positions - 1
    this.#ids.forEach((id, slot) => { if (id !== undefined) this.#insert(slot, this.#hashes[slot]!) })
  }
}
