import t from 'tap'
import * as api from '@opentelemetry/api'
import { context, createContextKey, trace, SpanKind, SpanStatusCode, type Span } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { FastifyOtelInstrumentation } from '@fastify/otel'
import Fastify from 'fastify'
import cioObservability from '../../lib/index.ts'
import { operations } from '../../lib/client/operations.ts'
import { serverOf, Tracing } from '../../lib/monitoring/tracing.ts'
import { argsFor } from '../fixtures/sdk-args.ts'
import { signWebhook, webhookEvent } from '../../lib/testing/index.ts'
import { buildApp, metric, rejection, simOptions, startSimulator, WEBHOOK_KEY } from '../helpers.ts'

const exporter = new InMemorySpanExporter()
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
trace.setGlobalTracerProvider(provider)
t.beforeEach(() => exporter.reset())

const ours = () => exporter.getFinishedSpans().filter((s) => s.instrumentationScope.name === 'fastify-customerio-observability')
const byName = (name: string) => ours().filter((s) => s.name === name)
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId

t.test('one CLIENT span per call with the contract attributes, and one child per HTTP attempt', async (t) => {
  const sim = await startSimulator(t)
  sim.fault({ operation: 'identify', status: 503, times: 1 })
  const { app, logs } = await buildApp(t, simOptions(sim))
  t.equal(logs.lines.find((l) => l.msg === 'customer.io observability ready')?.tracing, true, 'the start-up line says tracing: true with a tracer provider')
  await app.cio.identify('person-1', { email: 'person@example.com' })
  const [call] = byName('customerio.track.identify')
  t.ok(call)
  t.equal(call!.kind, SpanKind.CLIENT)
  t.equal(call!.status.code, SpanStatusCode.UNSET, 'status is left unset on success')
  t.same(call!.attributes, {
    'customerio.api': 'track',
    'customerio.operation': 'identify',
    'http.request.method': 'PUT',
    'server.address': '127.0.0.1',
    'server.port': Number(new URL(sim.url).port),
    'url.template': '/api/v1/customers/{customerId}',
    'http.response.status_code': 200
  })
  const attempts = byName('PUT /api/v1/customers/{customerId}')
  t.equal(attempts.length, 2)
  for (const attempt of attempts) t.equal(parentOf(attempt), call!.spanContext().spanId)
  t.equal(attempts[0]!.attributes['http.response.status_code'], 503)
  t.equal(attempts[0]!.attributes['error.type'], '503')
  t.equal(attempts[0]!.status.code, SpanStatusCode.ERROR)
  t.equal(attempts[1]!.attributes['http.request.resend_count'], 1)
  t.equal(attempts[1]!.status.code, SpanStatusCode.UNSET)
  t.notMatch(JSON.stringify(ours().map((s) => s.attributes)), /person-1|person@example/, 'no identifiers on spans')
})

t.test('a send carries its delivery id, the join key to webhook events', async (t) => {
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim))
  const result = await app.cio.sendEmail(argsFor('sendEmail')[0] as never) as { delivery_id: string }
  const [call] = byName('customerio.app.send_email')
  t.equal(call!.attributes['customerio.delivery_id'], result.delivery_id)
  t.equal(call!.attributes['url.template'], '/v1/send/email')
})

t.test('error.type on the span equals the metric label for every injected failure', async (t) => {
  const sim = await startSimulator(t)
  // The timeout fires against a server that never answers, so it races nothing.
  const { app } = await buildApp(t, simOptions(sim, { client: { timeout: 1_000, retry: { maxRetries: 0 } }, appApiKey: undefined }))
  const cases: Array<[string, () => void, () => Promise<unknown>]> = [
    ['timeout', () => sim.fault({ hang: true, times: 1 }), () => app.cio.identify('a', {})],
    ['network', () => sim.fault({ reset: true, times: 1 }), () => app.cio.identify('a', {})],
    ['429', () => sim.fault({ status: 429, times: 1 }), () => app.cio.identify('a', {})],
    ['500', () => sim.fault({ status: 500, times: 1 }), () => app.cio.identify('a', {})],
    ['invalid_response', () => sim.fault({ status: 200, body: '<html>', times: 1 }), () => app.cio.identify('a', {})],
    ['invalid_argument', () => {}, () => app.cio.identify('', {})],
    ['not_configured', () => {}, () => app.cio.listCampaigns()]
  ]
  for (const [type, inject, call] of cases) {
    exporter.reset()
    inject()
    await rejection(call())
    const [span] = ours().filter((s) => s.name.startsWith('customerio.'))
    t.equal(span!.attributes['error.type'], type, type)
    t.equal(span!.status.code, SpanStatusCode.ERROR, `${type}: status ERROR`)
    t.equal(span!.events[0]!.name, 'exception')
    const api = span!.attributes['customerio.api'] as string
    const operation = span!.attributes['customerio.operation'] as string
    t.equal(await metric(app, 'cio_api_errors_total', { api, operation, error_type: type }), 1, `${type}: metric agrees`)
  }
})

t.test('exception messages on spans are sanitised', async (t) => {
  const sim = await startSimulator(t)
  sim.fault({ status: 422, body: { meta: { error: 'jane.doe@example.com (+1 415 555 0100) is not valid for key sim-track-key' } } })
  const { app } = await buildApp(t, simOptions(sim, { client: { retry: { maxRetries: 0 } } }))
  await rejection(app.cio.identify('a', {}))
  const [span] = byName('customerio.track.identify')
  const text = JSON.stringify({ events: span!.events, status: span!.status })
  t.notMatch(text, /jane\.doe|555 0100|sim-track-key/)
  t.match(text, /\[email\]/)
})

t.test('server address and port from the region, default ports included', async (t) => {
  t.same(serverOf('https://track-eu.customer.io/api/v1'), { address: 'track-eu.customer.io', port: 443 })
  t.same(serverOf('http://localhost/v1'), { address: 'localhost', port: 80 })
  t.same(serverOf('http://127.0.0.1:8080/v1'), { address: '127.0.0.1', port: 8080 })
})

t.test('a non-Error rejection still ends the span as an error', async (t) => {
  const tracing = new Tracing(await import('@opentelemetry/api'), '0.0.0', [])
  const op = operations.find((o) => o.name === 'identify')!
  const call = tracing.startCall(op, serverOf('http://127.0.0.1:1/'))!
  tracing.endCall(call, { errorType: '_other', error: 'a string from a custom dispatcher' })
  const [span] = byName('customerio.track.identify')
  t.equal(span!.events[0]!.attributes?.['exception.message'], 'a string from a custom dispatcher')
  t.equal(span!.status.code, SpanStatusCode.ERROR)
})

t.test('spans nest under the @fastify/otel request span', async (t) => {
  const sim = await startSimulator(t)
  const otel = new FastifyOtelInstrumentation()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(otel.plugin())
  await app.register(cioObservability, simOptions(sim))
  app.post('/signup', async (request) => {
    await request.server.cio.identify('person-1', {})
    return { ok: true }
  })
  await app.ready()
  const res = await app.inject({ method: 'POST', url: '/signup' })
  t.equal(res.statusCode, 200)
  const spans = exporter.getFinishedSpans()
  const request = spans.find((s) => s.instrumentationScope.name === '@fastify/otel' && s.kind === SpanKind.SERVER)!
  t.ok(request, 'the request span exists')
  const call = byName('customerio.track.identify')[0]!
  t.equal(call.spanContext().traceId, request.spanContext().traceId, 'same trace')
  let parent: ReadableSpan | undefined = call
  const ids = new Map(spans.map((s) => [s.spanContext().spanId, s]))
  while (parent !== undefined && parent !== request) parent = ids.get(parentOf(parent) ?? '')
  t.equal(parent, request, 'the request span is an ancestor of the call span')
})

t.test('latency observations carry the trace id as an exemplar in OpenMetrics', async (t) => {
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim))
  await app.cio.identify('person-1', {})
  const traceId = byName('customerio.track.identify')[0]!.spanContext().traceId
  const om = await app.inject({ url: '/metrics', headers: { accept: 'application/openmetrics-text' } })
  t.match(om.body, new RegExp(`cio_api_request_duration_seconds_bucket\\{le="[^"]+",api="track",operation="identify",outcome="success"\\} 1 # \\{trace_id="${traceId}",span_id="[0-9a-f]{16}"\\} [0-9.e-]+ [0-9.]+`))
  t.notMatch((await app.inject('/metrics')).body, /trace_id/, 'the Prometheus text format has no exemplars')
})

t.test('one CONSUMER span per webhook event: ids and labels, no PII; ERROR when onEvent fails', async (t) => {
  const sim = await startSimulator(t)
  let fail = false
  const { app } = await buildApp(t, simOptions(sim, {
    webhook: {
      signingKeys: WEBHOOK_KEY,
      onEvent: async (event) => {
        trace.getActiveSpan()?.setAttribute('app.saw', event.metric)
        if (fail) throw new Error(`cannot store ${event.object_type === '_other' ? '' : event.data.recipient}`)
      }
    }
  }))
  const send = (event: object) => {
    const body = JSON.stringify(event)
    return app.inject({ method: 'POST', url: '/webhooks/customerio', payload: body, headers: { 'content-type': 'application/json', ...signWebhook(body, WEBHOOK_KEY) } })
  }
  const event = webhookEvent('email', 'delivered')
  t.equal((await send(event)).statusCode, 200)
  const [span] = byName('customerio.webhook email.delivered')
  t.equal(span!.kind, SpanKind.CONSUMER)
  t.same(span!.attributes, {
    'customerio.webhook.object_type': 'email',
    'customerio.webhook.metric': 'delivered',
    'customerio.webhook.event_id': event.event_id,
    'customerio.delivery_id': event.data.delivery_id,
    'app.saw': 'delivered'
  }, 'onEvent runs inside the event span')
  t.equal(span!.status.code, SpanStatusCode.UNSET)

  exporter.reset()
  fail = true
  t.equal((await send(webhookEvent('sms', 'sent'))).statusCode, 503)
  const [failed] = byName('customerio.webhook sms.sent')
  t.equal(failed!.status.code, SpanStatusCode.ERROR)
  t.equal(failed!.attributes['error.type'], 'handler_error')
  t.notMatch(JSON.stringify([failed!.attributes, failed!.events]), /\+1415|example\.com|person-/)

  exporter.reset()
  fail = false
  t.equal((await send({ ...webhookEvent('customer', 'subscribed'), data: {} })).statusCode, 200)
  t.notOk('customerio.delivery_id' in byName('customerio.webhook customer.subscribed')[0]!.attributes, 'no delivery id, no attribute')
})

t.test('a synchronous onEvent, or none, gets its span too; a synchronous throw marks it ERROR, answers 503 and frees the id for a later copy', async (t) => {
  const sim = await startSimulator(t)
  let fail = true
  let runs = 0
  const { app } = await buildApp(t, simOptions(sim, {
    webhook: {
      signingKeys: WEBHOOK_KEY,
      onEvent: (event) => {
        runs++
        trace.getActiveSpan()?.setAttribute('app.saw', event.metric)
        if (fail) throw new Error('cannot store it')
      }
    }
  }))
  const { app: counting } = await buildApp(t, simOptions(sim, { webhook: { signingKeys: WEBHOOK_KEY } }))
  const send = (to: typeof app, event: object) => {
    const body = JSON.stringify(event)
    return to.inject({ method: 'POST', url: '/webhooks/customerio', payload: body, headers: { 'content-type': 'application/json', ...signWebhook(body, WEBHOOK_KEY) } })
  }
  const event = webhookEvent('email', 'bounced')
  t.equal((await send(app, event)).statusCode, 503)
  const [failed] = byName('customerio.webhook email.bounced')
  t.equal(failed!.status.code, SpanStatusCode.ERROR)
  t.equal(failed!.attributes['app.saw'], 'bounced', 'it ran inside the span')

  exporter.reset()
  fail = false
  t.equal((await send(app, event)).statusCode, 200, 'the failed copy released the id')
  t.equal(runs, 2)
  const [handled] = byName('customerio.webhook email.bounced')
  t.equal(handled!.status.code, SpanStatusCode.UNSET)

  exporter.reset()
  t.equal((await send(counting, webhookEvent('sms', 'delivered'))).statusCode, 200)
  t.equal(byName('customerio.webhook sms.delivered').length, 1, 'no onEvent: the event still has its span')
})

t.test('a tracer provider is registered: the startup log may say tracing: true', async (t) => {
  t.equal(new Tracing(api, '0.0.0', []).providerRegistered(), true)
  const unproxied = { ...api, trace: Object.assign(Object.create(api.trace), { getTracerProvider: () => provider }) }
  t.equal(new Tracing(unproxied, '0.0.0', []).providerRegistered(), true, 'a global provider that is no proxy is a registered one')
})

t.test('a call\'s context reports the recording spans set on it and on the contexts derived from it', async (t) => {
  const tracing = new Tracing(api, '0.0.0', [])
  const call = tracing.startCall(operations.find((o) => o.name === 'identify')!, serverOf('http://127.0.0.1:1/'))!
  const tracer = trace.getTracer('test')
  const [first, second, unwatched] = [tracer.startSpan('first'), tracer.startSpan('second'), tracer.startSpan('unwatched')]
  t.teardown(() => { for (const span of [first, second, unwatched, call.span]) span.end() })
  trace.setSpan(call.context, unwatched)
  const seen: Span[] = []
  call.onSpanSet = (span) => seen.push(span)
  t.equal(trace.getSpan(call.context), call.span, 'the call span is current in its context')

  const key = createContextKey('test key')
  const derived = call.context.setValue(key, 'value')
  t.equal(derived.getValue(key), 'value', 'other keys pass through, unreported')
  t.equal(trace.getSpan(trace.setSpan(derived, first)), first)
  trace.setSpan(call.context, trace.wrapSpanContext(api.INVALID_SPAN_CONTEXT))
  const deleted = trace.deleteSpan(call.context)
  t.equal(trace.getSpan(deleted), undefined)
  t.equal(deleted.getValue(key), undefined)
  trace.setSpan(deleted, second)
  t.same(seen, [first, second], 'recording spans only, from derived contexts too')
  t.equal(trace.getSpan(call.context), call.span, 'contexts are immutable')
})
