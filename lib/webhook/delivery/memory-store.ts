import { METRICS_BY_OBJECT_TYPE, type Channel } from '../../labels.ts'
import { keepFor, type DeliveryEvent, type DeliveryRecorded, type DeliveryStore } from './store.ts'

export interface MemoryDeliveryOptions {
  /** Deliveries remembered at most; past it the oldest is forgotten (and counted). Default 100 000. */
  size?: number
  /** Called for each delivery forgotten for room (the tracker counts them). */
  onEvict?: () => void
}

/** Each metric's bit in an entry's `seen`: a number per delivery rather than a set. */
const BITS = new Map([...new Set(Object.values(METRICS_BY_OBJECT_TYPE).flat()), '_send'].map((metric, i) => [metric, 2 ** i]))

interface Entry {
  readonly channel: Channel
  beganAt: number | undefined
  /** The metrics seen so far, as bits. */
  seen: number
  /** When the window ends (ms), while the delivery awaits an outcome; undefined otherwise. */
  deadline: number | undefined
  /** Confirmed, or already counted as unconfirmed: never counted (again). */
  settled: boolean
  /** Forgotten then (ms): {@link keepFor} after its latest event, so a late outcome is still measured. */
  keepUntil: number
}

/**
 * The {@link DeliveryStore} of a single instance: a `Map` in order of each delivery's latest
 * event, bounded in size (the least recent goes first) and in time (a sweep forgets from the
 * least recent until one is still kept), and beside it the deliveries awaiting an outcome, so a
 * sweep visits those rather than every record.
 */
export class MemoryDeliveryStore implements DeliveryStore {
  readonly #size: number
  readonly #entries = new Map<string, Entry>()
  /**
   * Walks the deliveries least recent first; each one it passed was forgotten, so its next is
   * the least recent left. A fresh `keys()` per eviction would step over every forgotten slot
   * again. Made anew at each sweep: an iterator that stands still keeps every table the `Map`
   * outgrew alive.
   */
  #oldest = this.#entries.keys()
  /** The deliveries with a window still open: few while receipts arrive, all of them when none do. */
  readonly #awaiting = new Map<string, Entry>()
  readonly #onEvict: () => void

  constructor ({ size = 100_000, onEvict = () => {} }: MemoryDeliveryOptions = {}) {
    this.#size = size
    this.#onEvict = onEvict
  }

  /** Deliveries held now. */
  get size (): number { return this.#entries.size }

  record (event: DeliveryEvent): DeliveryRecorded {
    let entry = this.#entries.get(event.deliveryId)
    if (entry !== undefined) {
      // To the end: the Map stays in order of latest event.
      this.#entries.delete(event.deliveryId)
      this.#entries.set(event.deliveryId, entry)
    } else {
      entry = { channel: event.channel, beganAt: undefined, seen: 0, deadline: undefined, settled: false, keepUntil: 0 }
      this.#entries.set(event.deliveryId, entry)
      if (this.#entries.size > this.#size) {
        const oldest = this.#oldest.next().value!
        this.#entries.delete(oldest)
        this.#awaiting.delete(oldest)
        this.#onEvict()
      }
    }
    const started = event.begins && entry.beganAt === undefined
    if (event.begins) entry.beganAt = Math.min(entry.beganAt ?? event.at, event.at)
    // A metric this version does not know has no bit: each of its events counts as a first.
    const bit = BITS.get(event.metric) ?? 0
    const first = (entry.seen & bit) === 0
    entry.seen |= bit
    entry.keepUntil = Math.max(entry.keepUntil, event.at + keepFor(event.confirmWithinMs))
    if (event.outcome) entry.settled = true
    entry.deadline = !entry.settled && event.awaitsOutcome && entry.beganAt !== undefined ? entry.beganAt + event.confirmWithinMs : undefined
    if (entry.deadline === undefined) this.#awaiting.delete(event.deliveryId)
    else this.#awaiting.set(event.deliveryId, entry)
    return { started, beganAt: entry.beganAt, first }
  }

  expire (now: number): Channel[] {
    const expired: Channel[] = []
    for (const [id, entry] of this.#awaiting) {
      if (entry.deadline! > now) continue
      expired.push(entry.channel)
      entry.deadline = undefined
      entry.settled = true
      this.#awaiting.delete(id)
    }
    // A record outlives its window (keepFor), so it no longer awaits when it is forgotten. In
    // order of latest event, the first still kept has few behind it that are not.
    for (const [id, entry] of this.#entries) {
      if (entry.keepUntil > now) break
      this.#entries.delete(id)
    }
    this.#oldest = this.#entries.keys()
    return expired
  }
}
