import t from 'tap'
import { context, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { loadTracing, tracingOn } from '../../lib/monitoring/tracing.ts'
import { signWebhook, webhookEvent } from '../../lib/testing/index.ts'
import { buildApp, simOptions, startSimulator, WEBHOOK_KEY } from '../helpers.ts'

t.test('without an OpenTelemetry SDK: no spans, no exemplars, calls unchanged', async (t) => {
  const sim = await startSimulator(t)
  const { app, logs } = await buildApp(t, simOptions(sim))
  t.same(await app.cio.identify('person-1', {}), {})
  const om = await app.inject({ url: '/metrics', headers: { accept: 'application/openmetrics-text' } })
  t.notMatch(om.body, /trace_id/)
  t.equal(logs.lines.find((l) => l.msg === 'customer.io observability ready')?.tracing, false, 'the start-up line says tracing: false without a tracer provider')
})

t.test('without an OpenTelemetry SDK: webhook events are handled, with no span active', async (t) => {
  const sim = await startSimulator(t)
  const active: unknown[] = []
  const { app } = await buildApp(t, simOptions(sim, { webhook: { signingKeys: WEBHOOK_KEY, onEvent: async () => { active.push(trace.getActiveSpan()) } } }))
  const body = JSON.stringify(webhookEvent('email', 'delivered'))
  const res = await app.inject({ method: 'POST', url: '/webhooks/customerio', payload: body, headers: { 'content-type': 'application/json', ...signWebhook(body, WEBHOOK_KEY) } })
  t.equal(res.statusCode, 200)
  t.same(active, [undefined])
})

t.test('@opentelemetry/api without a tracer provider: tracing is loaded, no provider is registered', async (t) => {
  const tracing = await loadTracing('1.0.0', [])
  t.ok(tracing, '@opentelemetry/api is installed here')
  t.equal(tracing!.providerRegistered(), false, 'the startup log says tracing: false')
})

t.test('a provider registered after the plugin: its calls are traced from then on', async (t) => {
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim))
  const tracing = (await loadTracing('1.0.0', []))!
  t.equal(tracing.providerRegistered(), false)
  const exporter = new InMemorySpanExporter()
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }))
  t.teardown(() => {
    trace.disable()
    context.disable()
  })
  t.equal(tracing.providerRegistered(), true)
  await app.cio.identify('person-1', {})
  t.same(exporter.getFinishedSpans().map((s) => s.name).sort(), ['PUT /api/v1/customers/{customerId}', 'customerio.track.identify'])
  trace.disable()
  t.equal(tracing.providerRegistered(), false, 'unregistered again')
})

t.test('without @opentelemetry/api, tracing is off', async (t) => {
  const tracing = await loadTracing('1.0.0', [], async () => { throw Object.assign(new Error('Cannot find package'), { code: 'ERR_MODULE_NOT_FOUND' }) })
  t.equal(tracing, undefined)
  t.equal(tracingOn(tracing), false, 'and the start-up line says so')
})
