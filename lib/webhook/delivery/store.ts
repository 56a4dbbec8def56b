import type { Channel } from '../../labels.ts'

/** One thing that happened to a delivery, as the tracker hands it to its store. */
export interface DeliveryEvent {
  /** Customer.io's `delivery_id`: a key in the store, never a label or a log field. */
  readonly deliveryId: string
  readonly channel: Channel
  /** A webhook metric (`sent`, `delivered`, …), or `_send` for the answer to a `fastify.cio` send. */
  readonly metric: string
  /** When it happened, in ms: the send's answer, or the event's own `timestamp`. */
  readonly at: number
  /** It begins the delivery: a send's answer, `drafted`, `attempted` or `sent`. The earliest beginning counts. */
  readonly begins: boolean
  /** It is an outcome (`delivered`, `bounced`, `failed`, `dropped`, `undeliverable`): the delivery is confirmed. */
  readonly outcome: boolean
  /** The channel gets delivery receipts, so a delivery without an outcome in time is unconfirmed. */
  readonly awaitsOutcome: boolean
  /** How long after its beginning a delivery may reach an outcome, in ms. */
  readonly confirmWithinMs: number
}

/** What the store answers about a delivery after recording an event. */
export interface DeliveryRecorded {
  /** This event gave the delivery its first beginning. */
  readonly started: boolean
  /** When the delivery began (ms), if a beginning is known. */
  readonly beganAt: number | undefined
  /** This is the delivery's first event of this metric. */
  readonly first: boolean
}

/**
 * Where delivery records live, shared by every instance that should join a send on one
 * instance with its webhook events on another. Records are bounded in time (a window and a
 * margin) and, for the memory store, in number.
 */
export interface DeliveryStore {
  /** Records an event of a delivery (creating its record if need be) and answers what the tracker counts. */
  record: (event: DeliveryEvent) => DeliveryRecorded | Promise<DeliveryRecorded>
  /**
   * The channels of the deliveries whose window ended by `now` (ms) without an outcome. Each
   * such delivery is answered once, to one caller, across every instance sharing the store.
   */
  expire: (now: number) => readonly Channel[] | Promise<readonly Channel[]>
}

/** How long a record lives after its latest event: its window and as long again (a minute at least), so a late outcome is still measured. */
export const keepFor = (confirmWithinMs: number): number => confirmWithinMs + Math.max(confirmWithinMs, 60_000)
