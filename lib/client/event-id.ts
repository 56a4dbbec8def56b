import { randomFillSync } from 'node:crypto'
import { monotonicFactory } from 'ulid'

const pool = new Uint8Array(4096)
let next = pool.length

/** Random bytes drawn from a pool refilled 4 KiB at a time: the package's default source asks the OS once per character. */
function pooledRandom (): number {
  if (next === pool.length) {
    randomFillSync(pool)
    next = 0
  }
  return pool[next++]! / 256
}

/** ULIDs that increase within a millisecond: events sent in one burst keep their order. */
const ulid = monotonicFactory(pooledRandom)

/**
 * A copy of an event with a ULID `id`, unless it has one. Customer.io discards an event
 * whose `id` it has already seen, so the SDK's retries and the queue's re-sends never
 * record it twice. Anything that is not an object is returned as it is, for the SDK to refuse.
 */
export function withEventId<T> (event: T): T {
  return withId(event, 'id')
}

/** A copy of `value` with a ULID in `field`, unless it has one (Pipelines calls: `messageId`); anything else as it is. */
export function withId<T> (value: T, field: string): T {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || (value as Record<string, unknown>)[field] !== undefined) return value
  return { ...value, [field]: ulid() }
}
