import t from 'tap'
import { loadTracing } from '../lib/tracing.ts'
import { buildApp, simOptions, startSimulator } from './helpers.ts'

t.test('without an OpenTelemetry SDK: no spans, no exemplars, calls unchanged', async (t) => {
  const sim = await startSimulator(t)
  const { app, logs } = await buildApp(t, simOptions(sim))
  t.same(await app.cio.identify('person-1', {}), {})
  const om = await app.inject({ url: '/metrics', headers: { accept: 'application/openmetrics-text' } })
  t.notMatch(om.body, /trace_id/)
  t.equal(logs.lines.find((l) => l.msg === 'customer.io observability ready')?.tracing, true, '@opentelemetry/api is installed here')
})

t.test('without @opentelemetry/api, tracing is off', async (t) => {
  t.equal(await loadTracing('1.0.0', [], async () => { throw Object.assign(new Error('Cannot find package'), { code: 'ERR_MODULE_NOT_FOUND' }) }), undefined)
})
