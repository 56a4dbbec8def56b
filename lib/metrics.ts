import type { Counter, Gauge, Histogram, Metric, Registry } from '@prometheus-io/client'
import type promClient from '@prometheus-io/client'
import { ATTEMPT_STATUSES } from './classify.ts'
import { operations } from './operations.ts'

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
  readonly requests: Counter<'api' | 'operation'>
  readonly duration: Histogram<'api' | 'operation' | 'outcome'>
  readonly errors: Counter<'api' | 'operation' | 'error_type'>
  readonly inFlight: Gauge<'api'>
  readonly attempts: Counter<'api' | 'status_code'>
  readonly info: Gauge<'version' | 'sdk_version'>
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

  // Known label sets exist from the start, so rates and ratios never see a missing series.
  for (const op of operations) requests.inc({ api: op.api, operation: op.label }, 0)
  for (const api of APIS) {
    inFlight.set({ api }, 0)
    for (const status of ATTEMPT_STATUSES) attempts.inc({ api, status_code: status }, 0)
  }
  info.set({ version: versions.version, sdk_version: versions.sdkVersion }, 1)

  return {
    requests,
    duration,
    errors,
    inFlight,
    attempts,
    info,
    define,
    close () {
      for (const name of created) registry.removeSingleMetric(name)
    }
  }
}
