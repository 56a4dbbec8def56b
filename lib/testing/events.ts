import { randomBytes } from 'node:crypto'
import type { EventData, MetricOf, ObjectType, RecognisedWebhookEvent } from '../webhook/events.ts'

let sequence = 0

/** A ULID-shaped id, as Customer.io uses for `event_id`. */
export function eventId (): string {
  const alphabet = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
  return Array.from(randomBytes(26), (byte) => alphabet[byte % 32]).join('')
}

/** An event envelope of any object_type and metric, as Customer.io sends it. */
export interface WebhookEnvelope {
  event_id: string
  object_type: string
  metric: string
  timestamp: number
  data: EventData
}

/**
 * A realistic reporting-webhook event for tests and demos, of a documented object_type and
 * metric: a campaign origin block, identifiers, and the fields its channel carries (push
 * `recipients[]`, a recipient elsewhere). For other pairs use {@link unrecognisedWebhookEvent}.
 */
export function webhookEvent<T extends ObjectType> (objectType: T, metric: MetricOf<T>, data: EventData = {}): Extract<RecognisedWebhookEvent, { object_type: T }> {
  return unrecognisedWebhookEvent(objectType, metric, data) as Extract<RecognisedWebhookEvent, { object_type: T }>
}

/**
 * The explicit escape: an event of any object_type and metric (one Customer.io may add
 * later), built like {@link webhookEvent}. The route counts it under `_other` and hands it on
 * as an unrecognised event.
 */
export function unrecognisedWebhookEvent (objectType: string, metric: string, data: EventData = {}): WebhookEnvelope {
  sequence++
  const base: EventData = {
    identifiers: { id: `person-${sequence}`, email: `person${sequence}@example.com`, cio_id: `cio${sequence}` },
    customer_id: `person-${sequence}`
  }
  const channel: EventData = objectType === 'customer'
    ? { email_address: `person${sequence}@example.com` }
    : objectType === 'push'
      ? { recipients: [{ device_id: `device-token-${sequence}`, device_platform: 'ios' }] }
      : { recipient: objectType === 'email' ? `person${sequence}@example.com` : '+14155550100', delivery_id: randomBytes(20).toString('base64url'), campaign_id: 12, action_id: 34 }
  return {
    event_id: eventId(),
    object_type: objectType,
    metric,
    timestamp: Math.floor(Date.now() / 1000),
    data: { ...base, ...channel, ...data }
  }
}
