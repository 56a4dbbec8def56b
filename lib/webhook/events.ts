import { CioWebhookMalformedError } from '../errors.ts'
import { METRICS_BY_OBJECT_TYPE, OBJECT_TYPES, type EmailType, type ObjectType } from '../labels.ts'
import { isObject } from '../validation.ts'

/**
 * Customer.io reporting-webhook events: every documented object_type and its metrics,
 * the envelope check, and the closed label values derived from an event.
 */

export { METRICS_BY_OBJECT_TYPE, OBJECT_TYPES, type ObjectType }
export type MetricOf<T extends ObjectType> = (typeof METRICS_BY_OBJECT_TYPE)[T][number]
export const METRICS: readonly string[] = [...new Set(Object.values(METRICS_BY_OBJECT_TYPE).flat())]

/** Who the event is about; present on every event. Personal data: never logged or labelled. */
export interface Identifiers {
  id?: string | null
  email?: string | null
  cio_id?: string
}

/** The `data` of an event. Fields depend on object_type and metric; unknown fields are kept. */
export interface EventData {
  identifiers?: Identifiers
  customer_id?: string
  delivery_id?: string
  campaign_id?: number | null
  action_id?: number
  broadcast_id?: number | null
  trigger_id?: number
  newsletter_id?: number | null
  transactional_message_id?: number | string
  journey_id?: string
  recipient?: string
  recipients?: Array<{ device_id: string, device_platform?: 'ios' | 'android', failure_message?: string }>
  subject?: string
  failure_message?: string
  href?: string
  link_id?: number
  [field: string]: unknown
}

/** A verified event of a documented object_type and metric. */
export type RecognisedWebhookEvent = {
  [T in ObjectType]: {
    event_id: string
    object_type: T
    metric: MetricOf<T>
    /** Unix seconds when the event happened (not when it was sent). */
    timestamp: number
    data: EventData
  }
}[ObjectType]

/**
 * A verified event the plugin does not recognise: an object_type or metric Customer.io added
 * later, or an envelope with missing or odd fields. A `default` branch receives it.
 */
export interface UnrecognisedWebhookEvent {
  readonly object_type: '_other'
  readonly metric: '_other'
  /** The body's `event_id`, when it has a usable one (copies are then deduplicated). */
  readonly event_id: string | undefined
  /** The body's `timestamp`, when it is a Unix time. */
  readonly timestamp: number | undefined
  /** The body as Customer.io sent it. */
  readonly raw: unknown
}

/** What `onEvent` receives: switch on `object_type` (then `metric`); `default` gets the unrecognised. */
export type CioWebhookEvent = RecognisedWebhookEvent | UnrecognisedWebhookEvent

/** Label values of an event: documented values as they are, anything else `_other`. */
export interface EventLabels {
  readonly objectType: ObjectType | '_other'
  readonly metric: string
}

const known = new Map<string, ReadonlySet<string>>(OBJECT_TYPES.map((type) => [type, new Set(METRICS_BY_OBJECT_TYPE[type])]))

function labelsOf (objectType: unknown, metric: unknown): EventLabels {
  const metrics = typeof objectType === 'string' ? known.get(objectType) : undefined
  if (metrics === undefined) {
    return { objectType: '_other', metric: typeof metric === 'string' && METRICS.includes(metric) ? metric : '_other' }
  }
  return { objectType: objectType as ObjectType, metric: typeof metric === 'string' && metrics.has(metric) ? metric : '_other' }
}

/** Which kind of send an email event belongs to, from its origin block. */
export function emailTypeOf (data: EventData): EmailType {
  if (data.transactional_message_id !== undefined) return 'transactional'
  if (data.newsletter_id !== undefined) return 'newsletter'
  if (data.trigger_id !== undefined || data.broadcast_id !== undefined) return 'broadcast'
  if (data.campaign_id !== undefined) return 'campaign'
  return 'unknown'
}

/** A verified event, with its labels and the id copies of it share (if it has a usable one). */
export interface ReadEvent {
  readonly event: CioWebhookEvent
  readonly labels: EventLabels
  readonly eventId: string | undefined
}

const usableId = (id: unknown): string | undefined => typeof id === 'string' && id.length > 0 && id.length <= 256 ? id : undefined
const unixTime = (t: unknown): number | undefined => typeof t === 'number' && Number.isInteger(t) && t >= 0 ? t : undefined

/**
 * Reads an event from a body whose signature was verified: recognised when its envelope
 * (`event_id`, `object_type`, `metric`, `timestamp`, `data`) is well-formed and its
 * object_type and metric are documented; unrecognised otherwise, never refused (Customer.io
 * holds back every later event for an hour after a refusal). Unknown fields always pass.
 * Throws `FST_CIO_WEBHOOK_MALFORMED` only for a body that is not JSON.
 */
export function parseEvent (body: Buffer | string): ReadEvent {
  let value: unknown
  try {
    value = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'))
  } catch {
    throw new CioWebhookMalformedError('body is not JSON')
  }
  const fields = isObject(value) ? value : {}
  const labels = labelsOf(fields.object_type, fields.metric)
  const eventId = usableId(fields.event_id)
  const timestamp = unixTime(fields.timestamp)
  if (labels.objectType !== '_other' && labels.metric !== '_other' && eventId !== undefined && timestamp !== undefined && isObject(fields.data)) {
    return { event: value as RecognisedWebhookEvent, labels, eventId }
  }
  return { event: { object_type: '_other', metric: '_other', event_id: eventId, timestamp, raw: value }, labels, eventId }
}
