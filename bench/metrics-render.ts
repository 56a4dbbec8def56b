/** Rendering /metrics with the plugin's whole series budget populated. */
import Fastify from 'fastify'
import cioObservability from '../lib/index.ts'
import { ERROR_TYPES } from '../lib/labels.ts'
import { ERROR_LABEL_SETS, HISTOGRAM_LABEL_SETS } from '../lib/monitoring/metrics.ts'
import { operations } from '../lib/client/operations.ts'
import { METRICS, OBJECT_TYPES } from '../lib/webhook/events.ts'
import { alternate, median, row, timed, type Row } from './harness.ts'

const RENDERS = 50

export async function benchMetricsRender (): Promise<Row[]> {
  const app = Fastify()
  await app.register(cioObservability, { siteId: 's', trackApiKey: 'k', appApiKey: 'a', webhook: { signingKeys: 'w' }, metrics: { defaultMetrics: false }, env: {} })
  await app.ready()
  const register = app.metrics.client.register
  const metric = (name: string) => register.getSingleMetric(name) as any
  // The latency histogram has exemplars on, so it takes the object form of observe().
  // Fill every label set the caps admit, as a long-running app with every kind of traffic would.
  for (const [i, op] of operations.slice(0, HISTOGRAM_LABEL_SETS / 2).entries()) {
    for (const outcome of ['success', 'error']) metric('cio_api_request_duration_seconds').observe({ labels: { api: op.api, operation: op.label, outcome }, value: i / 100 })
  }
  for (const outcome of ['success', 'error']) for (const api of ['track', 'app']) metric('cio_api_request_duration_seconds').observe({ labels: { api, operation: '_other', outcome }, value: 1 })
  let errors = 0
  for (const op of operations) {
    for (const type of ERROR_TYPES) if (errors++ < ERROR_LABEL_SETS) metric('cio_api_errors_total').inc({ api: op.api, operation: op.label, error_type: type })
  }
  for (const type of [...OBJECT_TYPES, '_other']) {
    for (const m of [...METRICS, '_other']) metric('cio_webhook_received_total').inc({ object_type: type, metric: m })
    metric('cio_webhook_lag_seconds').observe({ object_type: type }, 3)
  }
  const series = (await register.metrics()).split('\n').filter((l: string) => l.startsWith('cio_')).length

  const renders = (fn: () => Promise<unknown>) => () => timed(async () => { for (let i = 0; i < RENDERS; i++) await fn() })
  const text = await alternate(renders(() => register.metrics()), renders(() => app.inject('/metrics')))
  const om = await alternate(renders(() => app.inject('/metrics')), renders(() => app.inject({ url: '/metrics', headers: { accept: 'application/openmetrics-text' } })))
  const ms = (s: { wallMs: number }) => s.wallMs / RENDERS
  await app.close()
  const textMs = median(text.candidate.map(ms))
  const omMs = median(om.candidate.map(ms))
  return [
    row('/metrics render', `Prometheus text, ${series} cio_* series (baseline: registry.metrics())`, median(text.baseline.map(ms)), textMs, 'ms', '≤ 10 ms', textMs <= 10),
    row('/metrics render', `OpenMetrics, ${series} cio_* series (baseline: text route)`, median(om.baseline.map(ms)), omMs, 'ms', '≤ 10 ms', omMs <= 10)
  ]
}
