/**
 * End to end through the real plugin and the Customer.io simulator: upstream error bodies that
 * echo the person's address and phone (percent-encoded, JSON-escaped, as HTML entities) and the
 * request's Authorization value; none of it may reach the plugin's log lines or its spans.
 */
import t from 'tap'
import { context, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { buildApp, rejection, simOptions, startSimulator } from '../helpers.ts'
import { leaks, type Pii } from '../fixtures/leak-check.ts'

const exporter = new InMemorySpanExporter()
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }))

const EMAIL = 'jane.doe@example.com'
const PHONE = '+14155550100'
const SITE_ID = 'site-4f2a9c'
const TRACK_KEY = 'a3f9c2e18b7d4c6f0e21'
const APP_KEY = 'sk_app_7Qm2xZ9vK4pL8nR3'
const BASIC = Buffer.from(`${SITE_ID}:${TRACK_KEY}`).toString('base64')
const PII: Pii[] = [
  { kind: 'email', value: EMAIL },
  { kind: 'phone', value: PHONE },
  { kind: 'phone', value: '+1 (415) 555-0100' },
  { kind: 'secret', value: TRACK_KEY },
  { kind: 'secret', value: APP_KEY },
  { kind: 'secret', value: BASIC }
]

const enc = encodeURIComponent
const html404 = (path: string) => `<!DOCTYPE html>
<html><head><title>404 Not Found</title></head>
<body><h1>Not Found</h1><p>The requested URL ${path} was not found on this server.</p>
<p>Contact: jane.doe&#64;example.com &middot; &#43;1&nbsp;(415)&nbsp;555&#8209;0100</p><hr><address>nginx</address></body></html>`

/** Error bodies as a gateway, a proxy or Customer.io itself might send them, each echoing the request. */
const FAULTS: ReadonlyArray<{ name: string, status: number, body: unknown }> = [
  { name: 'HTML 404 echoing the encoded path', status: 404, body: html404(`/api/v1/customers/${enc(EMAIL)}`) },
  { name: 'HTML 404 with lowercase hex', status: 404, body: html404(`/api/v1/customers/${enc(EMAIL).toLowerCase()}?phone=${enc(PHONE).toLowerCase()}`) },
  {
    name: 'JSON error echoing email, phone and Authorization',
    status: 422,
    body: { meta: { error: `person ${EMAIL} (phone ${PHONE}) invalid; request had Authorization: Basic ${BASIC}` } }
  },
  {
    name: 'JSON errors list with escaped JSON inside',
    status: 400,
    body: { meta: { errors: [JSON.stringify({ email: EMAIL, phone: PHONE }), JSON.stringify(JSON.stringify({ headers: { Authorization: `Basic ${BASIC}` } })), 'jane.doe\\u0040example.com'] } }
  },
  { name: 'form-encoded echo', status: 400, body: { meta: { error: `bad form: email=${enc(EMAIL)}&phone=${enc(PHONE).replace('%2B', '+')}&auth=${enc(`Basic ${BASIC}`)}` } } },
  { name: 'plain text', status: 401, body: `Unauthorized: Basic ${BASIC} for ${EMAIL}, phone ${PHONE}` },
  { name: '200 with an HTML body (invalid_response)', status: 200, body: html404(`/api/v1/customers/${enc(EMAIL)}`) }
]

const APP_FAULTS: ReadonlyArray<{ name: string, status: number, body: unknown }> = [
  { name: 'App HTML 404 echoing the query', status: 404, body: html404(`/v1/customers?email=${enc(EMAIL)}`) },
  { name: 'App JSON echoing Bearer', status: 401, body: { meta: { error: `Authorization: Bearer ${APP_KEY} rejected for email=${enc(EMAIL)}` } } },
  { name: 'App escaped JSON echoing Bearer', status: 403, body: { meta: { error: JSON.stringify(JSON.stringify({ Authorization: `Bearer ${APP_KEY}`, email: EMAIL, phone: PHONE })) } } },
  { name: 'App URL-encoded Bearer', status: 502, body: `upstream: ${enc(`Authorization: Bearer ${APP_KEY}`)} email=${enc(EMAIL)}` }
]

function leaksIn (text: string): string[] {
  return PII.flatMap((pii) => {
    const found = leaks(pii, text)
    return found === undefined ? [] : [`${pii.value}: ${found}`]
  })
}

t.test('error bodies echoing PII and credentials reach no log line and no span', async (t) => {
  const sim = await startSimulator(t, { siteId: SITE_ID, trackApiKey: TRACK_KEY, appApiKey: APP_KEY })
  const { app, logs } = await buildApp(t, simOptions(sim, { client: { timeout: 1_000, retry: { maxRetries: 0 } } }))
  exporter.reset()
  for (const fault of FAULTS) {
    sim.fault({ operation: 'identify', status: fault.status, body: fault.body, times: 1 })
    t.ok(await rejection(app.cio.identify(EMAIL, { email: EMAIL, phone: PHONE })), `${fault.name}: rejected`)
  }
  for (const fault of APP_FAULTS) {
    sim.fault({ operation: 'getCustomersByEmail', status: fault.status, body: fault.body, times: 1 })
    t.ok(await rejection(app.cio.getCustomersByEmail(EMAIL)), `${fault.name}: rejected`)
  }
  const failed = logs.lines.filter((l) => l.msg === 'customer.io call failed')
  t.equal(failed.length, FAULTS.length + APP_FAULTS.length, 'one warning per failed call')
  // The bodies did get into the logged errors, masked: the check is not vacuous.
  t.match(logs.text(), /\[email\]/)
  t.match(logs.text(), /\[phone\]/)
  t.match(logs.text(), /Basic \[Redacted\]/)
  t.match(logs.text(), /Bearer \[Redacted\]/)
  t.same(leaksIn(logs.text()), [], 'no PII or credential in any log line, in any encoding')

  const spans = exporter.getFinishedSpans()
  t.ok(spans.some((s) => s.events.some((e) => e.name === 'exception')), 'exceptions were recorded')
  const spanText = JSON.stringify(spans.map((s) => ({ name: s.name, attributes: s.attributes, events: s.events, status: s.status })))
  t.same(leaksIn(spanText), [], 'no PII or credential on any span')
})

t.test('a failed call let through to Fastify\'s error handler logs no PII', async (t) => {
  const sim = await startSimulator(t, { siteId: SITE_ID, trackApiKey: TRACK_KEY, appApiKey: APP_KEY })
  const { app, logs } = await buildApp(t, simOptions(sim, { client: { timeout: 1_000, retry: { maxRetries: 0 } } }), {}, (app) => {
    app.get('/signup', async () => app.cio.identify(EMAIL, { phone: PHONE }))
  })
  sim.fault({ operation: 'identify', status: 422, body: FAULTS[2]!.body, times: 1 })
  const res = await app.inject('/signup')
  t.equal(res.statusCode, 502)
  t.same(leaksIn(logs.text() + res.body), [])
})
