/**
 * The closed label sets shared by more than one part of the plugin, each declared once; the
 * types are derived from them. A feature's own sets (drop reasons, webhook object types and
 * metrics, rejection reasons) live with the feature.
 */

/** `api`: the Customer.io API a call went to. */
export const APIS = ['track', 'app', 'pipelines'] as const
export type Api = (typeof APIS)[number]

/** HTTP statuses that keep their own label value; others fold into `4xx` / `5xx`. */
export const LISTED_STATUSES = ['400', '401', '403', '404', '408', '409', '413', '422', '429', '500', '502', '503', '504'] as const

/** `error_type`: what went wrong with a call (the metric label and the span's `error.type`). */
export const ERROR_TYPES = [
  ...LISTED_STATUSES, '4xx', '5xx', 'timeout', 'network', 'invalid_response', 'invalid_argument', 'not_configured', '_other'
] as const
export type ErrorType = (typeof ERROR_TYPES)[number]

/** `status_code` of `cio_api_attempts_total`: the error types plus `2xx`. */
export const ATTEMPT_STATUSES = ['2xx', ...ERROR_TYPES] as const
export type AttemptStatus = (typeof ATTEMPT_STATUSES)[number]

/** `outcome` of a call's duration. */
export const OUTCOMES = ['success', 'error'] as const
export type Outcome = (typeof OUTCOMES)[number]

/** `source` and `type` of `cio_email_sent_total`: who reported the send, and what kind of message it was. */
export const EMAIL_SOURCES = ['api', 'webhook'] as const
export const EMAIL_TYPES = ['transactional', 'campaign', 'broadcast', 'newsletter', 'unknown'] as const
export type EmailType = (typeof EMAIL_TYPES)[number]

/** `queue`: the API a queue sends through. */
export const QUEUES = ['track', 'pipelines'] as const
export type QueueName = (typeof QUEUES)[number]

/**
 * A person's subscription changes: sent as `customer`, or with the channel that caused the
 * change as `object_type` (the spec says so), so every channel has them too.
 */
const SUBSCRIPTION_METRICS = ['subscribed', 'unsubscribed', 'cio_subscription_preferences_changed'] as const

export const METRICS_BY_OBJECT_TYPE = {
  customer: SUBSCRIPTION_METRICS,
  email: ['drafted', 'attempted', 'sent', 'delivered', 'opened', 'clicked', 'converted', 'bounced', 'dropped', 'spammed', 'failed', 'undeliverable', ...SUBSCRIPTION_METRICS],
  push: ['drafted', 'attempted', 'sent', 'delivered', 'opened', 'clicked', 'converted', 'bounced', 'dropped', 'failed', 'undeliverable', ...SUBSCRIPTION_METRICS],
  in_app: ['drafted', 'attempted', 'sent', 'opened', 'clicked', 'converted', 'failed', 'undeliverable', ...SUBSCRIPTION_METRICS],
  sms: ['drafted', 'attempted', 'sent', 'delivered', 'clicked', 'converted', 'bounced', 'failed', 'undeliverable', 'replied', ...SUBSCRIPTION_METRICS],
  slack: ['drafted', 'attempted', 'sent', 'clicked', 'failed', 'undeliverable', ...SUBSCRIPTION_METRICS],
  webhook: ['drafted', 'attempted', 'sent', 'clicked', 'failed', 'undeliverable', ...SUBSCRIPTION_METRICS],
  whatsapp: ['drafted', 'attempted', 'sent', 'delivered', 'opened', 'clicked', 'converted', 'bounced', 'dropped', 'failed', 'undeliverable', 'replied', ...SUBSCRIPTION_METRICS]
} as const

export type ObjectType = keyof typeof METRICS_BY_OBJECT_TYPE
export const OBJECT_TYPES = Object.keys(METRICS_BY_OBJECT_TYPE) as ObjectType[]

/**
 * `channel` of delivery tracking: the object types that are channels (every one but `customer`),
 * and `_other` for one this version does not know.
 */
export const CHANNELS = [...OBJECT_TYPES.filter((type) => type !== 'customer'), '_other'] as const
export type Channel = Exclude<ObjectType, 'customer'> | '_other'

/** Channels whose messages get a delivery receipt (`delivered` among their metrics): only these can be unconfirmed. */
export const RECEIPT_CHANNELS: ReadonlySet<Channel> = new Set(OBJECT_TYPES.filter((type): type is Exclude<ObjectType, 'customer'> => (METRICS_BY_OBJECT_TYPE[type] as readonly string[]).includes('delivered')))
