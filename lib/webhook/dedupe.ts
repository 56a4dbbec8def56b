/**
 * Where seen `event_id`s are kept. The default lives in memory; replace it with a shared
 * store (Redis, a database) when several instances receive the same webhook stream.
 */
export interface DedupeStore {
  has: (eventId: string) => boolean | Promise<boolean>
  add: (eventId: string) => void | Promise<void>
}

/** Remembers the most recent `size` ids; the oldest is forgotten first. */
export class MemoryDedupeStore implements DedupeStore {
  readonly #ids = new Set<string>()
  readonly #size: number

  constructor (size: number) {
    this.#size = size
  }

  has (eventId: string): boolean {
    return this.#ids.has(eventId)
  }

  add (eventId: string): void {
    this.#ids.add(eventId)
    // A Set iterates in insertion order, so its first entry is the oldest.
    if (this.#ids.size > this.#size) this.#ids.delete(this.#ids.values().next().value!)
  }
}

/** Never remembers anything (`dedupe: false`). */
export const noDedupe: DedupeStore = Object.freeze({ has: () => false, add: () => {} })
