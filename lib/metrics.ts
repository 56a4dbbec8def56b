import type { Counter, Gauge, Histogram, Metric } from '@prometheus-io/client'
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

/** Creates metrics on the registry, or hands back one an earlier instance created there. */
export interface MetricFactory {
  counter: <L extends string>(name: string, help: string, labelNames?: readonly L[]) => Counter<L>
  gauge: <L extends string>(name: string, help: string, labelNames?: readonly L[], collect?: (gauge: Gauge<L>) => void) => Gauge<L>
  histogram: <L extends string>(name: string, help: string, labelNames: readonly L[], buckets: readonly number[], exemplars?: boolean) => Histogram<L>
}

export interface MetricsHandle extends MetricFactory {
  readonly requests: Counter<'api' | 'operation'>
  readonly duration: Histogram<'api' | 'operation' | 'outcome'>
  readonly errors: Counter<'api' | 'operation' | 'error_type'>
  readonly inFlight: Gauge<'api'>
  readonly attempts: Counter<'api' | 'status_code'>
  readonly emailSent: Counter<'source' | 'type'>
  /** Removes from the registry every metric this plugin created. */
  close: () => void
}

function factory (client: PromClient, created: string[]): MetricFactory {
  const registry = client.register
  const define = <M>(name: string, make: () => M): M => {
    const existing = registry.getSingleMetric(name)
    if (existing !== undefined) return existing as unknown as M
    created.push(name)
    // Registered by hand (`registers: []`): the client refuses exemplar-enabled metrics on a
    // Prometheus-text registry at construction, though rendering just leaves exemplars out.
    const metric = make()
    registry.registerMetric(metric as unknown as Metric<string>)
    return metric
  }
  return {
    counter: (name, help, labelNames = []) => define(name, () => new client.Counter({ name, help, labelNames, registers: [] })),
    gauge: (name, help, labelNames = [], collect) => define(name, () => new client.Gauge({
      name, help, labelNames, registers: [], ...(collect === undefined ? {} : { collect () { collect(this) } })
    })),
    histogram: (name, help, labelNames, buckets, exemplars = false) => define(name, () => new client.Histogram({
      name, help, labelNames, buckets: [...buckets], enableExemplars: exemplars, registers: []
    }))
  }
}

/**
 * Defines the plugin's metrics on fastify-metrics' client and registry. A metric that is
 * already there (an earlier instance on a shared registry) is reused rather than clashing.
 */
export function createMetrics (client: PromClient, versions: { version: string, sdkVersion: string }): MetricsHandle {
  const created: string[] = []
  const make = factory(client, created)
  const requests = make.counter('cio_api_requests_total', 'Customer.io SDK calls made through fastify.cio, by API and operation.', ['api', 'operation'])
  const duration = make.histogram('cio_api_request_duration_seconds', 'Duration of Customer.io SDK calls, retries and backoff included.', ['api', 'operation', 'outcome'], DURATION_BUCKETS, true)
  const errors = make.counter('cio_api_errors_total', 'Failed Customer.io SDK calls, by error type.', ['api', 'operation', 'error_type'])
  const inFlight = make.gauge('cio_api_in_flight', 'Customer.io SDK calls in progress.', ['api'])
  const attempts = make.counter('cio_api_attempts_total', "HTTP attempts to Customer.io, the SDK's own retries included, by status.", ['api', 'status_code'])
  const info = make.gauge('cio_info', 'Versions of fastify-customerio-observability and customerio-node; always 1.', ['version', 'sdk_version'])
  const emailSent = make.counter('cio_email_sent_total', 'Emails sent: accepted by the API (source="api") or reported sent by webhook (source="webhook").', ['source', 'type'])

  // Known label sets exist from the start, so rates and ratios never see a missing series.
  for (const op of operations) requests.inc({ api: op.api, operation: op.label }, 0)
  for (const api of APIS) {
    inFlight.set({ api }, 0)
    for (const status of ATTEMPT_STATUSES) attempts.inc({ api, status_code: status }, 0)
  }
  info.set({ version: versions.version, sdk_version: versions.sdkVersion }, 1)
  for (const source of ['api', 'webhook']) for (const type of EMAIL_TYPES) emailSent.inc({ source, type }, 0)

  return {
    ...make,
    requests,
    duration,
    errors,
    inFlight,
    attempts,
    emailSent,
    close () {
      for (const name of created) client.register.removeSingleMetric(name)
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
export function createWebhookMetrics ({ counter, gauge, histogram }: MetricFactory): WebhookMetrics {
  const metrics: WebhookMetrics = {
    received: counter('cio_webhook_received_total', 'Verified reporting-webhook events, by object type and metric (unknown values as _other).', ['object_type', 'metric']),
    rejected: counter('cio_webhook_rejected_total', 'Webhook requests refused, by reason.', ['reason']),
    duplicates: counter('cio_webhook_duplicates_total', 'Webhook events received again (same event_id) and not handed on.'),
    handlerErrors: counter('cio_webhook_handler_errors_total', 'Webhook events whose onEvent handler failed (answered 500, so Customer.io retries).'),
    bounced: counter('cio_email_bounced_total', 'Emails reported bounced by webhook.'),
    complained: counter('cio_email_complained_total', 'Emails reported as spam by webhook (metric "spammed").'),
    lag: histogram('cio_webhook_lag_seconds', 'Time from an event happening (its timestamp) to its webhook arriving.', ['object_type'], LAG_BUCKETS),
    lastReceived: gauge('cio_webhook_last_received_timestamp_seconds', 'Unix time of the last verified webhook event.')
  }
  for (const type of OBJECT_TYPES) for (const metric of METRICS_BY_OBJECT_TYPE[type]) metrics.received.inc({ object_type: type, metric }, 0)
  for (const reason of WEBHOOK_REJECT_REASONS) metrics.rejected.inc({ reason }, 0)
  return metrics
}

export const QUEUE_DROP_REASONS = ['overflow', 'too_large', 'rejected', 'exhausted', 'shutdown'] as const

export interface QueueMetrics {
  readonly capacity: Gauge<'queue'>
  readonly sent: Counter<'queue'>
  readonly dropped: Counter<'queue' | 'reason'>
}

/** The queue's metrics, created only when the queue is; the depth is read at scrape time, not on every enqueue. */
export function createQueueMetrics ({ counter, gauge }: MetricFactory, depth: () => number): QueueMetrics {
  gauge('cio_queue_depth', 'Operations waiting in the queue.', ['queue'], (g) => g.set({ queue: 'track' }, depth()))
  const metrics: QueueMetrics = {
    capacity: gauge('cio_queue_capacity', 'Operations the queue can hold.', ['queue']),
    sent: counter('cio_queue_sent_total', 'Queued operations accepted by Customer.io.', ['queue']),
    dropped: counter('cio_queue_dropped_total', 'Queued operations given up, by reason.', ['queue', 'reason'])
  }
  metrics.sent.inc({ queue: 'track' }, 0)
  for (const reason of QUEUE_DROP_REASONS) metrics.dropped.inc({ queue: 'track', reason }, 0)
  return metrics
}
