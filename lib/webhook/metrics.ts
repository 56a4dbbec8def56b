import type { Counter, Gauge, Histogram } from '@prometheus-io/client'
import type { MetricFactory } from '../monitoring/metrics.ts'
import { STORE_OPERATIONS } from './dedupe.ts'
import { METRICS_BY_OBJECT_TYPE, OBJECT_TYPES } from './events.ts'
import { VERIFY_FAILURES } from './verify.ts'

export const REJECT_REASONS = [...VERIFY_FAILURES, 'malformed', 'too_large', 'unsupported_media_type'] as const
export type RejectReason = (typeof REJECT_REASONS)[number]

/** Event lag spans seconds to Customer.io's 7-day retry window. */
const LAG_BUCKETS = Object.freeze([1, 5, 15, 60, 300, 900, 3600, 14_400, 86_400, 604_800])

export interface WebhookMetrics {
  readonly received: Counter<'object_type' | 'metric'>
  readonly rejected: Counter<'reason'>
  readonly duplicates: Counter<string>
  readonly handlerErrors: Counter<string>
  readonly storeErrors: Counter<'call'>
  readonly lag: Histogram<'object_type'>
  readonly lastReceived: Gauge<string>
  readonly bounced: Counter<string>
  readonly complained: Counter<string>
}

/** The webhook route's metrics, created only when the route is. */
export function createWebhookMetrics ({ counter, gauge, histogram }: MetricFactory): WebhookMetrics {
  const metrics: WebhookMetrics = {
    received: counter('cio_webhook_received_total', 'Verified reporting-webhook events, by object type and metric (unknown values as _other).', ['object_type', 'metric']),
    rejected: counter('cio_webhook_rejected_total', 'Webhook requests refused, by reason.', ['reason']),
    duplicates: counter('cio_webhook_duplicates_total', 'Webhook events received again (same event_id) and not handed on.'),
    handlerErrors: counter('cio_webhook_handler_errors_total', 'Runs of onEvent that failed (answered 503, or retried by the inbox).'),
    storeErrors: counter('cio_webhook_store_errors_total', 'Dedupe store calls that failed or did not answer in time, by store call.', ['call']),
    bounced: counter('cio_email_bounced_total', 'Emails reported bounced by webhook.'),
    complained: counter('cio_email_complained_total', 'Emails reported as spam by webhook (metric "spammed").'),
    lag: histogram('cio_webhook_lag_seconds', 'Time from an event happening (its timestamp) to its webhook arriving.', ['object_type'], LAG_BUCKETS),
    lastReceived: gauge('cio_webhook_last_received_timestamp_seconds', 'Unix time of the last verified webhook event.')
  }
  for (const type of OBJECT_TYPES) for (const metric of METRICS_BY_OBJECT_TYPE[type]) metrics.received.inc({ object_type: type, metric }, 0)
  for (const reason of REJECT_REASONS) metrics.rejected.inc({ reason }, 0)
  for (const operation of STORE_OPERATIONS) metrics.storeErrors.inc({ call: operation }, 0)
  return metrics
}

export const INBOX_STATES = ['waiting', 'active', 'delayed', 'failed'] as const

/** Inbox jobs by state, read from Redis at scrape time; a scrape while Redis is down leaves the last values. */
export function createInboxGauge ({ gauge }: MetricFactory, counts: () => Promise<Record<(typeof INBOX_STATES)[number], number>>): void {
  gauge('cio_webhook_inbox_jobs', 'Inbox mode: BullMQ jobs of webhook events, by state (failed = attempts used up).', ['state'], async (g) => {
    const now = await counts().catch(() => undefined)
    if (now !== undefined) for (const state of INBOX_STATES) g.set({ state }, now[state])
  })
}
