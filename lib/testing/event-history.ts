/** What kind of event Customer.io recorded: a custom event, a page view or a mobile screen view. */
export type EventType = 'event' | 'page' | 'screen'

/** One event as the simulator recorded it, from whichever Track API carried it. */
export interface RecordedEvent {
  /** The event's `id` (a ULID, used to deduplicate), if it carried one. */
  readonly id: string | undefined
  /** v1: the body's `type` (`page`, `screen`, else `event`); v2: the operation's `action`. */
  readonly type: EventType
  /** Event name; for a page view the page URL or path, for a screen view the screen name. */
  readonly name: string
  /**
   * The person it belongs to: v1 the customer id in the path (decoded); v2 `identifiers.id`,
   * else `identifiers.email`, else `identifiers.cio_id`. Undefined for anonymous events.
   */
  readonly customerId: string | undefined
  /** `anonymous_id`, if the event carried one. */
  readonly anonymousId: string | undefined
  /** v1 `data`, v2 `attributes`; `{}` when absent. */
  readonly data: Readonly<Record<string, unknown>>
  /** Unix seconds, if the event carried a `timestamp`. */
  readonly timestamp: number | undefined
  /** `v1`: `/api/v1/customers/{id}/events` or `/api/v1/events`; `v2`: `/api/v2/batch` or `/api/v2/entity`. */
  readonly via: 'v1' | 'v2'
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
 * arrival order, except those whose `id` was already seen (by either API), which are discarded
 * as Customer.io discards them. Events without an `id` are always recorded.
 */
export class EventHistory {
  readonly events: RecordedEvent[] = []
  readonly discarded: RecordedEvent[] = []
  readonly #seen = new Set<string>()

  /** A Track v1 event body; `customerId` from the path, undefined for `/api/v1/events`. */
  v1 (body: unknown, customerId?: string): void {
    if (!isBody(body)) return
    this.#add(body, {
      type: TYPES.has(body.type) ? body.type as EventType : 'event',
      customerId,
      data: body.data,
      via: 'v1'
    })
  }

  /** A Track v2 operation; anything but a person's `event`, `page` or `screen` is ignored. */
  v2 (operation: unknown): void {
    if (!isBody(operation) || operation.type !== 'person' || !TYPES.has(operation.action)) return
    const ids = isBody(operation.identifiers) ? operation.identifiers : {}
    this.#add(operation, {
      type: operation.action as EventType,
      customerId: identifier(ids.id) ?? identifier(ids.email) ?? identifier(ids.cio_id),
      data: operation.attributes,
      via: 'v2'
    })
  }

  #add (body: Body, from: { type: EventType, customerId: string | undefined, data: unknown, via: 'v1' | 'v2' }): void {
    const event: RecordedEvent = Object.freeze({
      id: text(body.id) || undefined,
      type: from.type,
      name: text(body.name) ?? '',
      customerId: from.customerId,
      anonymousId: text(body.anonymous_id),
      data: isBody(from.data) ? from.data : {},
      timestamp: typeof body.timestamp === 'number' ? body.timestamp : undefined,
      via: from.via
    })
    if (event.id !== undefined && this.#seen.has(event.id)) {
      this.discarded.push(event)
      return
    }
    if (event.id !== undefined) this.#seen.add(event.id)
    this.events.push(event)
  }
}
