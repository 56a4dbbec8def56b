import { randomBytes } from 'node:crypto'
import type { CioWebhookEvent, EventData, ObjectType } from '../webhook/events.ts'

let sequence = 0

/** A ULID-shaped id, as Customer.io uses for `event_id`. */
export function eventId (): string {
  const alphabet = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
  return Array.from(randomBytes(26), (byte) => alphabet[byte % 32]).join('')
}

/**
 * A realistic reporting-webhook event for tests and demos: a campaign origin block,
 * identifiers, and the fields its channel carries (push `recipients[]`, a recipient elsewhere).
 */
export function webhookEvent<T extends ObjectType> (objectType: T, metric: string, data: EventData = {}): CioWebhookEvent {
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
  } as CioWebhookEvent
}
