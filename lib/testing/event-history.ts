/** What kind of event Customer.io recorded: a custom event, a page view or a mobile screen view. */
export type EventType = 'event' | 'page' | 'screen'

/** One event as the simulator recorded it, from whichever API carried it. */
export interface RecordedEvent {
  /** The event's `id` (a ULID, used to deduplicate), or a Pipelines call's `messageId`, if it carried one. */
  readonly id: string | undefined
  /** v1: the body's `type` (`page`, `screen`, else `event`); v2: the operation's `action`; Pipelines: `event` for a `track` call. */
  readonly type: EventType
  /** Event name; for a page view the page URL or path, for a screen view the screen name. */
  readonly name: string
  /**
   * The person it belongs to: v1 the customer id in the path (decoded); v2 `identifiers.id`,
   * else `identifiers.email`, else `identifiers.cio_id`; Pipelines `userId`. Undefined for
   * anonymous events.
   */
  readonly customerId: string | undefined
  /** `anonymous_id` (Pipelines: `anonymousId`), if the event carried one. */
  readonly anonymousId: string | undefined
  /** v1 `data`, v2 `attributes`, Pipelines `properties`; `{}` when absent. */
  readonly data: Readonly<Record<string, unknown>>
  /** Unix seconds, if the event carried a `timestamp` (Pipelines' ISO timestamp parsed, so possibly fractional). */
  readonly timestamp: number | undefined
  /**
   * `v1`: `/api/v1/customers/{id}/events` or `/api/v1/events`; `v2`: `/api/v2/batch` or
   * `/api/v2/entity`; `pipelines`: a Pipelines `track`, `page` or `screen` call, alone or in a batch.
   */
  readonly via: 'v1' | 'v2' | 'pipelines'
}

type Body = Record<string, unknown>

const TYPES: ReadonlySet<unknown> = new Set<EventType>(['event', 'page', 'screen'])

function isBody (value: unknown): value is Body {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function text (value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined
}

/** A person identifier; Customer.io also takes numeric ids. */
function identifier (value: unknown): string | undefined {
  return typeof value === 'number' ? String(value) : text(value)
}

/**
 * Customer.io's event history as far as the simulator keeps one: every event applied, in
 * arrival order, except those whose `id` (Pipelines: `messageId`) was already seen (by any
 * API), which are discarded as Customer.io discards them. Events without an `id` are always
 * recorded.
 */
export class EventHistory {
  readonly events: RecordedEvent[] = []
  readonly discarded: RecordedEvent[] = []
  readonly #seen = new Set<string>()

  /** A Track v1 event body; `customerId` from the path, undefined for `/api/v1/events`. */
  v1 (body: unknown, customerId?: string): void {
    if (!isBody(body)) return
    this.#add({
      id: text(body.id),
      type: TYPES.has(body.type) ? body.type as EventType : 'event',
      name: text(body.name),
      customerId,
      anonymousId: text(body.anonymous_id),
      data: body.data,
      timestamp: typeof body.timestamp === 'number' ? body.timestamp : undefined,
      via: 'v1'
    })
  }

  /** A Track v2 operation; anything but a person's `event`, `page` or `screen` is ignored. */
  v2 (operation: unknown): void {
    if (!isBody(operation) || operation.type !== 'person' || !TYPES.has(operation.action)) return
    const ids = isBody(operation.identifiers) ? operation.identifiers : {}
    this.#add({
      id: text(operation.id),
      type: operation.action as EventType,
      name: text(operation.name),
      customerId: identifier(ids.id) ?? identifier(ids.email) ?? identifier(ids.cio_id),
      anonymousId: text(operation.anonymous_id),
      data: operation.attributes,
      timestamp: typeof operation.timestamp === 'number' ? operation.timestamp : undefined,
      via: 'v2'
    })
  }

  /** A Pipelines call of `type` (a single call's route or a batch item's `type`); anything but `track`, `page` or `screen` is ignored. */
  pipelines (type: unknown, payload: unknown): void {
    if (!isBody(payload) || (type !== 'track' && type !== 'page' && type !== 'screen')) return
    const timestamp = typeof payload.timestamp === 'string' ? Date.parse(payload.timestamp) / 1000 : NaN
    this.#add({
      id: text(payload.messageId),
      type: type === 'track' ? 'event' : type,
      name: text(type === 'track' ? payload.event : payload.name),
      customerId: identifier(payload.userId),
      anonymousId: text(payload.anonymousId),
      data: payload.properties,
      timestamp: Number.isNaN(timestamp) ? undefined : timestamp,
      via: 'pipelines'
    })
  }

  #add (from: { id: string | undefined, type: EventType, name: string | undefined, customerId: string | undefined, anonymousId: string | undefined, data: unknown, timestamp: number | undefined, via: RecordedEvent['via'] }): void {
    const event: RecordedEvent = Object.freeze({
      ...from,
      id: from.id || undefined,
      name: from.name ?? '',
      data: isBody(from.data) ? from.data : {}
    })
    if (event.id !== undefined && this.#seen.has(event.id)) {
      this.discarded.push(event)
      return
    }
    if (event.id !== undefined) this.#seen.add(event.id)
    this.events.push(event)
  }
}
