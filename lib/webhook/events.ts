import { CioWebhookMalformedError } from '../errors.ts'
import { isObject } from '../validation.ts'

/**
 * Customer.io reporting-webhook events: every documented object_type and its metrics,
 * the envelope check, and the closed label values derived from an event.
 */

export const METRICS_BY_OBJECT_TYPE = {
  customer: ['subscribed', 'unsubscribed', 'cio_subscription_preferences_changed'],
  email: ['drafted', 'attempted', 'sent', 'delivered', 'opened', 'clicked', 'converted', 'unsubscribed', 'bounced', 'dropped', 'spammed', 'failed', 'undeliverable'],
  push: ['drafted', 'attempted', 'sent', 'delivered', 'opened', 'clicked', 'converted', 'bounced', 'dropped', 'failed', 'undeliverable'],
  in_app: ['drafted', 'attempted', 'sent', 'opened', 'clicked', 'converted', 'failed', 'undeliverable'],
  sms: ['drafted', 'attempted', 'sent', 'delivered', 'clicked', 'converted', 'bounced', 'failed', 'undeliverable', 'replied'],
  slack: ['drafted', 'attempted', 'sent', 'clicked', 'failed', 'undeliverable'],
  webhook: ['drafted', 'attempted', 'sent', 'clicked', 'failed', 'undeliverable'],
  whatsapp: ['drafted', 'attempted', 'sent', 'delivered', 'opened', 'clicked', 'converted', 'bounced', 'dropped', 'failed', 'undeliverable', 'replied']
} as const

export type ObjectType = keyof typeof METRICS_BY_OBJECT_TYPE
export const OBJECT_TYPES = Object.keys(METRICS_BY_OBJECT_TYPE) as ObjectType[]
export const METRICS: readonly string[] = [...new Set(Object.values(METRICS_BY_OBJECT_TYPE).flat())]
export const EMAIL_TYPES = ['transactional', 'campaign', 'broadcast', 'newsletter', 'unknown'] as const
export type EmailType = (typeof EMAIL_TYPES)[number]

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

/** A verified reporting-webhook event, discriminated by `object_type` and `metric`. */
export type CioWebhookEvent = {
  [T in ObjectType]: {
    event_id: string
    object_type: T
    metric: (typeof METRICS_BY_OBJECT_TYPE)[T][number]
    /** Unix seconds when the event happened (not when it was sent). */
    timestamp: number
    data: EventData
  }
}[ObjectType]

/** Label values of an event: documented values as they are, anything else `_other`. */
export interface EventLabels {
  readonly objectType: ObjectType | '_other'
  readonly metric: string
}

const known = new Map<string, ReadonlySet<string>>(OBJECT_TYPES.map((type) => [type, new Set(METRICS_BY_OBJECT_TYPE[type])]))

export function labelsOf (event: { object_type: string, metric: string }): EventLabels {
  const metrics = known.get(event.object_type)
  if (metrics === undefined) {
    return { objectType: '_other', metric: METRICS.includes(event.metric) ? event.metric : '_other' }
  }
  return { objectType: event.object_type as ObjectType, metric: metrics.has(event.metric) ? event.metric : '_other' }
}

/** Which kind of send an email event belongs to, from its origin block. */
export function emailTypeOf (data: EventData): EmailType {
  if (data.transactional_message_id !== undefined) return 'transactional'
  if (data.newsletter_id !== undefined) return 'newsletter'
  if (data.trigger_id !== undefined || data.broadcast_id !== undefined) return 'broadcast'
  if (data.campaign_id !== undefined) return 'campaign'
  return 'unknown'
}

/**
 * Checks the envelope every event has (`event_id`, `object_type`, `metric`, `timestamp`,
 * `data`) and returns the first field at fault, or undefined when it is well-formed.
 * Unknown fields and unknown enum values pass: Customer.io adds them without notice.
 */
function envelopeProblem (value: unknown): string | undefined {
  if (!isObject(value)) return 'body'
  if (typeof value.event_id !== 'string' || value.event_id.length === 0 || value.event_id.length > 256) return 'event_id'
  if (typeof value.object_type !== 'string' || value.object_type.length === 0) return 'object_type'
  if (typeof value.metric !== 'string' || value.metric.length === 0) return 'metric'
  if (typeof value.timestamp !== 'number' || !Number.isInteger(value.timestamp) || value.timestamp < 0) return 'timestamp'
  if (!isObject(value.data)) return 'data'
  return undefined
}

/** The event in a verified body; throws `FST_CIO_WEBHOOK_MALFORMED` naming the field at fault. */
export function parseEvent (body: Buffer | string): CioWebhookEvent {
  let value: unknown
  try {
    value = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'))
  } catch {
    throw new CioWebhookMalformedError('body is not JSON')
  }
  const problem = envelopeProblem(value)
  if (problem !== undefined) throw new CioWebhookMalformedError(`${problem} is missing or invalid`)
  return value as CioWebhookEvent
}
