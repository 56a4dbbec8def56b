import { ulid } from 'ulid'

/**
 * A copy of an event with a ULID `id`, unless it has one. Customer.io discards an event
 * whose `id` it has already seen, so the SDK's retries and the queue's re-sends never
 * record it twice. Anything that is not an object is returned as it is, for the SDK to refuse.
 */
export function withEventId<T> (event: T): T {
  if (typeof event !== 'object' || event === null || (event as { id?: unknown }).id !== undefined) return event
  return { ...event, id: ulid() }
}
