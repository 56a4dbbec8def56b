import type { Counter, Gauge, Histogram, Metric } from '@prometheus-io/client'
import type promClient from '@prometheus-io/client'
import { APIS, ATTEMPT_STATUSES, EMAIL_SOURCES, EMAIL_TYPES } from '../labels.ts'

export type PromClient = typeof promClient

const DURATION_BUCKETS = Object.freeze([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30])

/**
 * Histogram and error label sets are admitted first come, first served up to these caps;
 * later operations are recorded as `operation="_other"`, so the plugin's series stay within
 * its budget however many SDK methods an app calls.
 */
export const HISTOGRAM_LABEL_SETS = 64
export const ERROR_LABEL_SETS = 256
const OTHER = '_other'

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
  gauge: <L extends string>(name: string, help: string, labelNames?: readonly L[], collect?: (gauge: Gauge<L>) => void | Promise<void>) => Gauge<L>
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
      name, help, labelNames, registers: [], ...(collect === undefined ? {} : { collect () { return collect(this) } })
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
  for (const api of APIS) {
    inFlight.set({ api }, 0)
    for (const status of ATTEMPT_STATUSES) attempts.inc({ api, status_code: status }, 0)
  }
  info.set({ version: versions.version, sdk_version: versions.sdkVersion }, 1)
  for (const source of EMAIL_SOURCES) for (const type of EMAIL_TYPES) emailSent.inc({ source, type }, 0)

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
