// With @opentelemetry/instrumentation-undici (as auto-instrumentations-node registers it), each
// HTTP attempt has one span: the instrumentation's, with `http.request.resend_count` added.
// Instrumentations patch globals (diagnostics channels, the socket prototype here): this file
// keeps them to itself, and disables every one of them in teardown.
import net from 'node:net'
import t, { type Test } from 'tap'
import { context, trace, SpanKind, SpanStatusCode } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { UndiciInstrumentation, type UndiciInstrumentationConfig } from '@opentelemetry/instrumentation-undici'
import {
  AlwaysOffSampler, BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor,
  type ReadableSpan, type SpanProcessor
} from '@opentelemetry/sdk-trace-base'
import type { CioSimulator } from '../../lib/testing/index.ts'
import { buildApp, metric, rejection, simOptions, startSimulator } from '../helpers.ts'

const exporter = new InMemorySpanExporter()
/** Spans started and not ended yet, and the tests waiting for none: they wait for events, never for time. */
const open = new Set<unknown>()
const waiters = new Set<() => void>()
const notifier: SpanProcessor = {
  onStart: (span) => { open.add(span) },
  onEnd: (span) => {
    open.delete(span)
    if (open.size === 0) for (const wake of waiters) wake()
  },
  forceFlush: async () => {},
  shutdown: async () => {}
}
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter), notifier] })
const contextManager = new AsyncLocalStorageContextManager().enable()
context.setGlobalContextManager(contextManager)
trace.setGlobalTracerProvider(provider)
t.beforeEach(() => exporter.reset())
t.teardown(() => {
  trace.disable()
  context.disable()
})

const UNDICI = '@opentelemetry/instrumentation-undici'
const PLUGIN = 'fastify-customerio-observability'
const TRACK_ATTEMPT = 'POST /api/v1/customers/{customerId}/events'
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId
const idOf = (span: ReadableSpan) => span.spanContext().spanId

/** The finished spans, once every span started so far has ended (after a call, its attempts too). */
async function finished (): Promise<ReadableSpan[]> {
  if (open.size > 0) {
    await new Promise<void>((resolve) => {
      const wake = () => { waiters.delete(wake); resolve() }
      waiters.add(wake)
    })
  }
  return exporter.getFinishedSpans()
}

function instrument (t: Test, config: UndiciInstrumentationConfig = {}): UndiciInstrumentation {
  const instrumentation = new UndiciInstrumentation(config)
  instrumentation.setTracerProvider(provider)
  t.teardown(() => instrumentation.disable())
  return instrumentation
}

/** The call span and every other span of its trace. */
async function callTrace (name: string): Promise<{ call: ReadableSpan, attempts: ReadableSpan[] }> {
  const spans = await finished()
  const call = spans.find((s) => s.name === name)!
  const attempts = spans.filter((s) => s !== call && s.spanContext().traceId === call.spanContext().traceId)
  return { call, attempts }
}

/** The call span and exactly three attempt spans under it, statuses 503, 503, 200. */
function assertRetriedTwice (t: Test, trace: Awaited<ReturnType<typeof callTrace>>, scope: string, name: string): void {
  const { call, attempts } = trace
  t.equal(call.instrumentationScope.name, PLUGIN)
  t.equal(call.kind, SpanKind.CLIENT)
  t.equal(call.attributes['http.response.status_code'], 200)
  t.equal(attempts.length, 3, 'exactly three spans under the call, one per attempt')
  for (const attempt of attempts) {
    t.equal(attempt.instrumentationScope.name, scope)
    t.equal(attempt.name, name)
    t.equal(attempt.kind, SpanKind.CLIENT)
    t.equal(parentOf(attempt), idOf(call), 'a child of the call span')
  }
  t.same(attempts.map((s) => s.attributes['http.response.status_code']), [503, 503, 200])
  t.same(attempts.map((s) => s.attributes['http.request.resend_count']), [undefined, 1, 2])
  t.same(attempts.map((s) => s.status.code), [SpanStatusCode.ERROR, SpanStatusCode.ERROR, SpanStatusCode.UNSET])
  t.same(attempts.map((s) => s.attributes['url.template']), Array(3).fill('/api/v1/customers/{customerId}/events'))
  t.notMatch(JSON.stringify(attempts.map((s) => s.attributes)), /jane|example\.com|%40/, 'the customer\'s email is masked in the URL attributes')
  const clients = exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.CLIENT)
  t.equal(clients.length, 4, 'no other CLIENT span: the call and its three attempts')
}

async function retriedTwice (t: Test, sim: CioSimulator, app: Awaited<ReturnType<typeof buildApp>>['app']) {
  const attempts = async (status: string) => metric(app, 'cio_api_attempts_total', { api: 'track', status_code: status })
  const [failed, succeeded] = [await attempts('503'), await attempts('2xx')]
  sim.fault({ operation: 'track', status: 503, times: 2 })
  await app.cio.track('jane.doe@example.com', { name: 'signed_up' })
  t.equal(await attempts('503') - failed, 2, 'metrics are unaffected')
  t.equal(await attempts('2xx') - succeeded, 1)
}

t.test('registered before the plugin: its spans are the attempt spans, with resend_count', async (t) => {
  instrument(t)
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim))
  await retriedTwice(t, sim, app)
  assertRetriedTwice(t, await callTrace('customerio.track.track'), UNDICI, 'POST')
})

t.test('registered after the plugin: the same, whichever handler undici calls first', async (t) => {
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim))
  instrument(t)
  await retriedTwice(t, sim, app)
  assertRetriedTwice(t, await callTrace('customerio.track.track'), UNDICI, 'POST')
})

t.test('enabled again at runtime after the plugin: its spans, not doubled', async (t) => {
  const instrumentation = instrument(t)
  instrumentation.disable()
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim))
  instrumentation.enable()
  await retriedTwice(t, sim, app)
  assertRetriedTwice(t, await callTrace('customerio.track.track'), UNDICI, 'POST')
})

t.test('registered but disabled: the plugin\'s own attempt spans', async (t) => {
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim))
  const disabled = instrument(t)
  disabled.disable()
  instrument(t, { enabled: false }).enable()
  await retriedTwice(t, sim, app)
  assertRetriedTwice(t, await callTrace('customerio.track.track'), PLUGIN, TRACK_ATTEMPT)
})

t.test('disabled at runtime between calls: each call gets one span per attempt', async (t) => {
  const instrumentation = instrument(t)
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim))
  await retriedTwice(t, sim, app)
  assertRetriedTwice(t, await callTrace('customerio.track.track'), UNDICI, 'POST')
  exporter.reset()
  instrumentation.disable()
  await retriedTwice(t, sim, app)
  assertRetriedTwice(t, await callTrace('customerio.track.track'), PLUGIN, TRACK_ATTEMPT)
})

t.test('requests the instrumentation ignores, or does not record, get the plugin\'s own spans', async (t) => {
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim))
  instrument(t, { ignoreRequestHook: () => true })
  instrument(t).setTracerProvider(new BasicTracerProvider({ sampler: new AlwaysOffSampler() }))
  await retriedTwice(t, sim, app)
  assertRetriedTwice(t, await callTrace('customerio.track.track'), PLUGIN, TRACK_ATTEMPT)
})

t.test('a failed attempt: the instrumentation\'s error span, then the retry with resend_count', async (t) => {
  instrument(t)
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim))
  sim.fault({ operation: 'identify', reset: true, times: 1 })
  await app.cio.identify('person-1', {})
  const { attempts } = await callTrace('customerio.track.identify')
  t.equal(attempts.length, 2)
  t.equal(attempts[0]!.status.code, SpanStatusCode.ERROR)
  t.equal(attempts[0]!.attributes['http.response.status_code'], undefined, 'no answer')
  t.equal(attempts[0]!.attributes['http.request.resend_count'], undefined)
  t.equal(attempts[1]!.attributes['http.request.resend_count'], 1)
  t.equal(attempts[1]!.attributes['http.response.status_code'], 200)
  t.equal(await metric(app, 'cio_api_attempts_total', { api: 'track', status_code: 'network' }), 1)
})

t.test('a failed call without retries: one attempt span, the instrumentation\'s', async (t) => {
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim, { client: { timeout: 1_000, retry: { maxRetries: 0 } } }))
  instrument(t)
  sim.fault({ operation: 'identify', status: 500, times: 1 })
  await rejection(app.cio.identify('person-1', {}))
  const { call, attempts } = await callTrace('customerio.track.identify')
  t.equal(call.attributes['error.type'], '500')
  t.equal(attempts.length, 1)
  t.equal(attempts[0]!.attributes['http.response.status_code'], 500)
})

t.test('requests outside a call are the instrumentation\'s alone, unchanged', async (t) => {
  instrument(t)
  const sim = await startSimulator(t)
  await buildApp(t, simOptions(sim))
  const res = await fetch(`${sim.url}/api/v1/customers/x`, { method: 'PUT', body: '{}' })
  await res.arrayBuffer()
  const spans = await finished()
  t.equal(spans.length, 1)
  const [span] = spans
  t.equal(span!.instrumentationScope.name, UNDICI)
  t.notOk('http.request.resend_count' in span!.attributes)
})

/**
 * Like instrumentation-net: a span current while a socket connects. For a request without a body
 * (a GET), undici connects in the same synchronous turn as it publishes `undici:request:create`:
 * such a span is no attempt span.
 */
function socketSpans (t: Test): ReadableSpan[] {
  const started: ReadableSpan[] = []
  const tracer = provider.getTracer('test-socket-instrumentation')
  const connect = net.Socket.prototype.connect
  net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
    const span = tracer.startSpan('tcp.connect', { kind: SpanKind.CLIENT })
    started.push(span as unknown as ReadableSpan)
    try {
      return context.with(trace.setSpan(context.active(), span), () => (connect as (...a: unknown[]) => net.Socket).apply(this, args))
    } finally {
      span.end()
    }
  } as typeof connect
  t.teardown(() => { net.Socket.prototype.connect = connect })
  return started
}

/** A GET (no body: undici connects at once) retried twice, on a new connection (a new simulator). */
async function getRetriedTwice (t: Test, instrumentAfterPlugin = false): Promise<ReadableSpan[]> {
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim))
  if (instrumentAfterPlugin) instrument(t)
  sim.fault({ operation: 'listCampaigns', status: 503, times: 2 })
  await app.cio.listCampaigns()
  const scope = instrumentAfterPlugin ? UNDICI : PLUGIN
  const { call, attempts } = await callTrace('customerio.app.list_campaigns')
  const spans = attempts.filter((s) => s.instrumentationScope.name === scope)
  t.same(spans.map((s) => s.attributes['http.request.resend_count']), [undefined, 1, 2])
  t.same(spans.map((s) => s.attributes['http.response.status_code']), [503, 503, 200])
  for (const span of spans) t.equal(parentOf(span), idOf(call))
  return attempts
}

t.test('a span set while the socket connects is no attempt span', async (t) => {
  const sockets = socketSpans(t)
  const attempts = await getRetriedTwice(t)
  t.ok(sockets.length >= 1, 'the call connected a socket')
  t.equal(attempts.filter((s) => s.name === 'GET /v1/campaigns').length, 3, 'the plugin\'s own three attempt spans')
  for (const socket of sockets) t.notOk('http.request.resend_count' in socket.attributes, 'the socket span is left alone')
})

t.test('a span set while the socket connects, and the instrumentation after the plugin: its spans', async (t) => {
  const sockets = socketSpans(t)
  const attempts = await getRetriedTwice(t, true)
  t.ok(sockets.length >= 1, 'the call connected a socket')
  t.equal(attempts.filter((s) => s.instrumentationScope.name === PLUGIN).length, 0, 'no span of the plugin\'s own')
  for (const socket of sockets) t.notOk('http.request.resend_count' in socket.attributes, 'the socket span is left alone')
})
