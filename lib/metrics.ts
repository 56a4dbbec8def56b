import type { Counter, Gauge, Histogram, Metric, Registry } from '@prometheus-io/client'
import type promClient from '@prometheus-io/client'
import { ATTEMPT_STATUSES } from './classify.ts'
import { operations } from './operations.ts'
import { EMAIL_TYPES, METRICS_BY_OBJECT_TYPE, OBJECT_TYPES } from './webhook/events.ts'

export type PromClient = typeof promClient

export const DURATION_BUCKETS = Object.freeze([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30])
const APIS = ['track', 'app'] as const

/**
 * Histogram and error label sets are admitted first come, first served up to these caps;
 * later operations are recorded as `operation="_other"`. With 179 SDK methods the
 * uncapped worst case would be about 9 000 series; capped, the plugin stays under 2 500.
 */
export const HISTOGRAM_LABEL_SETS = 64
export const ERROR_LABEL_SETS = 256
export const OTHER = '_other'

/** Admits at most `max` distinct keys; the rest fold into `_other`. */
export class LabelBudget {
  readonly #seen = new Set<string>()
  readonly #max: number
  constructor (max: number) { this.#max = max }
  admit (key: string, value: string): string {
    if (this.#seen.has(key)) return value
    if (this.#seen.size >= this.#max) return OTHER
    this.#seen.add(key)
    return value
  }
}

export interface MetricsHandle {
  readonly client: PromClient
  readonly requests: Counter<'api' | 'operation'>
  readonly duration: Histogram<'api' | 'operation' | 'outcome'>
  readonly errors: Counter<'api' | 'operation' | 'error_type'>
  readonly inFlight: Gauge<'api'>
  readonly attempts: Counter<'api' | 'status_code'>
  readonly info: Gauge<'version' | 'sdk_version'>
  readonly emailSent: Counter<'source' | 'type'>
  /** Registers a further metric the same way (webhook, queue), so `close()` removes it too. */
  define: <M extends Metric<string>>(name: string, make: (registers: Registry[]) => M) => M
  /** Removes from the registry every metric this plugin created. */
  close: () => void
}

/**
 * Defines the plugin's metrics on fastify-metrics' client and registry. A metric that is
 * already there (an earlier instance on a shared registry) is reused rather than clashing.
 */
export function createMetrics (client: PromClient, versions: { version: string, sdkVersion: string }): MetricsHandle {
  const registry = client.register
  const created: string[] = []
  const define = <M extends Metric<string>>(name: string, make: (registers: Registry[]) => M): M => {
    const existing = registry.getSingleMetric(name)
    if (existing !== undefined) return existing as unknown as M
    created.push(name)
    // Registered by hand: the client refuses exemplar-enabled metrics on a Prometheus-text
    // registry at construction, though rendering simply leaves exemplars out of that format.
    const metric = make([])
    registry.registerMetric(metric)
    return metric
  }

  const requests = define('cio_api_requests_total', (registers) => new client.Counter({
    name: 'cio_api_requests_total',
    help: 'Customer.io SDK calls made through fastify.cio, by API and operation.',
    labelNames: ['api', 'operation'] as const,
    registers
  }))
  const duration = define('cio_api_request_duration_seconds', (registers) => new client.Histogram({
    name: 'cio_api_request_duration_seconds',
    help: 'Duration of Customer.io SDK calls, retries and backoff included.',
    labelNames: ['api', 'operation', 'outcome'] as const,
    buckets: [...DURATION_BUCKETS],
    enableExemplars: true,
    registers
  }))
  const errors = define('cio_api_errors_total', (registers) => new client.Counter({
    name: 'cio_api_errors_total',
    help: 'Failed Customer.io SDK calls, by error type.',
    labelNames: ['api', 'operation', 'error_type'] as const,
    registers
  }))
  const inFlight = define('cio_api_in_flight', (registers) => new client.Gauge({
    name: 'cio_api_in_flight',
    help: 'Customer.io SDK calls in progress.',
    labelNames: ['api'] as const,
    registers
  }))
  const attempts = define('cio_api_attempts_total', (registers) => new client.Counter({
    name: 'cio_api_attempts_total',
    help: "HTTP attempts to Customer.io, the SDK's own retries included, by status.",
    labelNames: ['api', 'status_code'] as const,
    registers
  }))
  const info = define('cio_info', (registers) => new client.Gauge({
    name: 'cio_info',
    help: 'Versions of fastify-customerio-observability and customerio-node; always 1.',
    labelNames: ['version', 'sdk_version'] as const,
    registers
  }))

  const emailSent = define('cio_email_sent_total', (registers) => new client.Counter({
    name: 'cio_email_sent_total',
    help: 'Emails sent: accepted by the API (source="api") or reported sent by webhook (source="webhook").',
    labelNames: ['source', 'type'] as const,
    registers
  }))

  // Known label sets exist from the start, so rates and ratios never see a missing series.
  for (const op of operations) requests.inc({ api: op.api, operation: op.label }, 0)
  for (const api of APIS) {
    inFlight.set({ api }, 0)
    for (const status of ATTEMPT_STATUSES) attempts.inc({ api, status_code: status }, 0)
  }
  info.set({ version: versions.version, sdk_version: versions.sdkVersion }, 1)
  for (const source of ['api', 'webhook']) for (const type of EMAIL_TYPES) emailSent.inc({ source, type }, 0)

  return {
    client,
    requests,
    duration,
    errors,
    inFlight,
    attempts,
    info,
    emailSent,
    define,
    close () {
      for (const name of created) registry.removeSingleMetric(name)
    }
  }
}

export const WEBHOOK_REJECT_REASONS = ['missing_signature', 'bad_signature', 'stale_timestamp', 'malformed', 'too_large', 'unsupported_media_type'] as const
export type WebhookRejectReason = (typeof WEBHOOK_REJECT_REASONS)[number]
/** Event lag spans seconds to Customer.io's 7-day retry window. */
export const LAG_BUCKETS = Object.freeze([1, 5, 15, 60, 300, 900, 3600, 14_400, 86_400, 604_800])

export interface WebhookMetrics {
  readonly received: Counter<'object_type' | 'metric'>
  readonly rejected: Counter<'reason'>
  readonly duplicates: Counter<string>
  readonly handlerErrors: Counter<string>
  readonly lag: Histogram<'object_type'>
  readonly lastReceived: Gauge<string>
  readonly bounced: Counter<string>
  readonly complained: Counter<string>
}

/** The webhook route's metrics, created only when the route is. */
export function createWebhookMetrics ({ client, define }: MetricsHandle): WebhookMetrics {
  const counter = (name: string, help: string, labelNames: readonly string[] = []) =>
    define(name, (registers) => new client.Counter({ name, help, labelNames, registers }))
  const received = counter('cio_webhook_received_total', 'Verified reporting-webhook events, by object type and metric (unknown values as _other).', ['object_type', 'metric'])
  const rejected = counter('cio_webhook_rejected_total', 'Webhook requests refused, by reason.', ['reason'])
  const metrics: WebhookMetrics = {
    received,
    rejected,
    duplicates: counter('cio_webhook_duplicates_total', 'Webhook events received again (same event_id) and not handed on.'),
    handlerErrors: counter('cio_webhook_handler_errors_total', 'Webhook events whose onEvent handler failed (answered 500, so Customer.io retries).'),
    bounced: counter('cio_email_bounced_total', 'Emails reported bounced by webhook.'),
    complained: counter('cio_email_complained_total', 'Emails reported as spam by webhook (metric "spammed").'),
    lag: define('cio_webhook_lag_seconds', (registers) => new client.Histogram({
      name: 'cio_webhook_lag_seconds',
      help: 'Time from an event happening (its timestamp) to its webhook arriving.',
      labelNames: ['object_type'],
      buckets: [...LAG_BUCKETS],
      registers
    })),
    lastReceived: define('cio_webhook_last_received_timestamp_seconds', (registers) => new client.Gauge({
      name: 'cio_webhook_last_received_timestamp_seconds',
      help: 'Unix time of the last verified webhook event.',
      registers
    }))
  }
  for (const type of OBJECT_TYPES) for (const metric of METRICS_BY_OBJECT_TYPE[type]) received.inc({ object_type: type, metric }, 0)
  for (const reason of WEBHOOK_REJECT_REASONS) rejected.inc({ reason }, 0)
  return metrics
}

export const QUEUE_DROP_REASONS = ['overflow', 'too_large', 'rejected', 'exhausted', 'shutdown'] as const

export interface QueueMetrics {
  readonly capacity: Gauge<'queue'>
  readonly sent: Counter<'queue'>
  readonly dropped: Counter<'queue' | 'reason'>
}

/** The queue's metrics, created only when the queue is; the depth is read at scrape time, not on every enqueue. */
export function createQueueMetrics ({ client, define }: MetricsHandle, depth: () => number): QueueMetrics {
  define('cio_queue_depth', (registers) => new client.Gauge({
    name: 'cio_queue_depth',
    help: 'Operations waiting in the queue.',
    labelNames: ['queue'] as const,
    registers,
    collect () { this.set({ queue: 'track' }, depth()) }
  }))
  const metrics: QueueMetrics = {
    capacity: define('cio_queue_capacity', (registers) => new client.Gauge({
      name: 'cio_queue_capacity', help: 'Operations the queue can hold.', labelNames: ['queue'] as const, registers
    })),
    sent: define('cio_queue_sent_total', (registers) => new client.Counter({
      name: 'cio_queue_sent_total', help: 'Queued operations accepted by Customer.io.', labelNames: ['queue'] as const, registers
    })),
    dropped: define('cio_queue_dropped_total', (registers) => new client.Counter({
      name: 'cio_queue_dropped_total', help: 'Queued operations given up, by reason.', labelNames: ['queue', 'reason'] as const, registers
    }))
  }
  metrics.sent.inc({ queue: 'track' }, 0)
  for (const reason of QUEUE_DROP_REASONS) metrics.dropped.inc({ queue: 'track', reason }, 0)
  return metrics
}
