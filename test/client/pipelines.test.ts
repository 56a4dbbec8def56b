import t from 'tap'
import Fastify from 'fastify'
import { CioApiError, CioInvalidArgumentError } from '../../lib/index.ts'
import cioObservability from '../../lib/index.ts'
import { operations } from '../../lib/client/operations.ts'
import { argsFor, methodOf } from '../fixtures/sdk-args.ts'
import { buildApp, captureLogs, metric, rejection, simOptions, startSimulator } from '../helpers.ts'

const PIPELINES = operations.filter((op) => op.api === 'pipelines')
const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/

t.test('every Pipelines method goes through fastify.cio.pipelines over HTTP, counted and timed under api="pipelines"', async (t) => {
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim))
  t.same(Object.keys(app.cio.pipelines).sort(), PIPELINES.map((op) => op.call).sort())
  for (const op of PIPELINES) {
    const before = sim.requests.length
    await methodOf(app.cio, op)(...argsFor(op.name))
    const request = sim.requests[before]!
    t.same([request.method, request.path, request.status, request.operation], ['POST', op.template, 200, op.name], op.name)
  }
  for (const op of PIPELINES) {
    const labels = { api: 'pipelines', operation: op.label }
    t.equal(await metric(app, 'cio_api_requests_total', labels), 1, `${op.label} counted`)
    t.equal(await metric(app, 'cio_api_request_duration_seconds_count', { ...labels, outcome: 'success' }), 1, `${op.label} timed`)
  }
  t.equal(await metric(app, 'cio_api_attempts_total', { api: 'pipelines', status_code: '2xx' }), PIPELINES.length)
  t.equal(await metric(app, 'cio_api_in_flight', { api: 'pipelines' }), 0)
})

t.test('each call carries a messageId before its first attempt; the caller\'s payload is never changed', async (t) => {
  const sim = await startSimulator(t)
  sim.fault({ operation: 'pipelines.track', status: 503, times: 1 })
  const { app } = await buildApp(t, simOptions(sim))
  const payload = { userId: 'p1', event: 'signed_up' }
  await app.cio.pipelines.track(payload)
  t.same(payload, { userId: 'p1', event: 'signed_up' }, 'unchanged')
  const [first, retry] = sim.requestsFor('pipelines.track').map((r) => (r.body as { messageId: string }).messageId)
  t.match(first, ULID)
  t.equal(retry, first, 'the SDK\'s retry sends the same messageId')
  t.equal(await metric(app, 'cio_api_attempts_total', { api: 'pipelines', status_code: '503' }), 1, '503 then 200: two attempts')
  t.equal(await metric(app, 'cio_api_requests_total', { api: 'pipelines', operation: 'track' }), 1, 'one call')
  t.rejects(metric(app, 'cio_api_errors_total', { api: 'pipelines', operation: 'track', error_type: '503' }), /no series/, 'and no error')

  const items = [{ type: 'track', userId: 'p1', event: 'a' }, { type: 'track', userId: 'p1', event: 'b', messageId: 'own-id' }] as const
  await app.cio.pipelines.batch([...items])
  const sent = (sim.requestsFor('pipelines.batch')[0]!.body as { batch: Array<{ messageId: string }> }).batch.map((i) => i.messageId)
  t.match(sent[0], ULID)
  t.equal(sent[1], 'own-id', 'a messageId the caller set is kept')
  t.notOk('messageId' in items[0], 'batch items unchanged')
})

t.test('a wrong write key is a CioApiError 502 with upstreamStatus 401; a bad payload a CioInvalidArgumentError', async (t) => {
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim, { pipelinesWriteKey: 'not-the-write-key-1234' }))
  const err = await rejection(app.cio.pipelines.identify({ userId: 'p1', traits: { email: 'jane@example.com' } }))
  t.ok(err instanceof CioApiError)
  t.match(err, { code: 'FST_CIO_API_ERROR', statusCode: 502, upstreamStatus: 401, errorType: '401', api: 'pipelines', operation: 'identify' })
  t.notMatch(String(err.message) + String(err.cause?.message), /not-the-write-key-1234/, 'the key is never in the error')
  t.equal(await metric(app, 'cio_api_errors_total', { api: 'pipelines', operation: 'identify', error_type: '401' }), 1)

  t.match(await rejection(app.cio.pipelines.batch('not a list' as never)), { code: 'FST_CIO_INVALID_ARGUMENT', message: /items is required/ })
  const bad = await rejection(app.cio.pipelines.track({ userId: 'p1' } as never))
  t.ok(bad instanceof CioInvalidArgumentError)
  t.match(bad, { code: 'FST_CIO_INVALID_ARGUMENT', message: /track: event is required/ })
  t.equal(await metric(app, 'cio_api_errors_total', { api: 'pipelines', operation: 'track', error_type: 'invalid_argument' }), 1)
})

t.test('no email or phone from traits reaches a log line or an error', async (t) => {
  const sim = await startSimulator(t)
  sim.fault({ operation: 'pipelines.identify', status: 400, body: { meta: { errors: ['bad trait jane@example.com +1 415 555 0100'] } } })
  const { app, logs } = await buildApp(t, simOptions(sim, { client: { retry: { maxRetries: 0 } } }))
  const err = await rejection(app.cio.pipelines.identify({ userId: 'p1', traits: { email: 'jane@example.com', phone: '+1 415 555 0100' } }))
  t.ok(err instanceof CioApiError)
  const everything = logs.text() + JSON.stringify({ message: err.message, cause: err.cause?.message, body: err.cause?.body })
  t.notMatch(everything, /jane@example\.com|415 555 0100/)
  t.ok(logs.lines.some((l) => l.msg === 'customer.io call failed' && l.api === 'pipelines'), 'the failure is logged')
})

t.test('without a write key Pipelines calls reject FST_CIO_NOT_CONFIGURED naming the option and the variable', async (t) => {
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim, { pipelinesWriteKey: undefined }))
  t.match(await rejection(app.cio.pipelines.track({ userId: 'p1', event: 'x' })), {
    code: 'FST_CIO_NOT_CONFIGURED', message: /Data Pipelines.*pipelinesWriteKey \(CUSTOMERIO_PIPELINES_WRITE_KEY\)/
  })
  t.equal(await metric(app, 'cio_api_errors_total', { api: 'pipelines', operation: 'track', error_type: 'not_configured' }), 1)
})

t.test('an app with only a write key, from the environment: a first-class set-up with a queue over Pipelines', async (t) => {
  const sim = await startSimulator(t)
  const { stream, logs } = captureLogs()
  const app = Fastify({ logger: { stream } })
  t.teardown(() => app.close())
  await app.register(cioObservability, { region: sim.region, metrics: { defaultMetrics: false }, env: { CUSTOMERIO_PIPELINES_WRITE_KEY: sim.pipelinesWriteKey } })
  await app.ready()
  t.match(logs.lines.find((l) => l.msg === 'customer.io observability ready'), { track: false, app: false, pipelines: true, queue: true })
  await app.cio.pipelines.track({ userId: 'p1', event: 'signed_up' })
  t.equal(sim.eventsFor('p1').length, 1)
  t.ok(app.cio.queue?.track('p1', { name: 'queued' }))
  await app.cio.queue!.flush()
  t.same(sim.eventsFor('p1').map((e) => e.name), ['signed_up', 'queued'])
  t.equal(await metric(app, 'cio_queue_sent_total', { queue: 'pipelines' }), 1)
})

t.test('pipelines options: strictMode sends X-Strict-Mode, defaultContext is merged; bad values fail registration', async (t) => {
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim, { pipelines: { strictMode: true, defaultContext: { locale: 'fr' } } }))
  await app.cio.pipelines.page({ userId: 'p1', name: '/' })
  t.match(sim.requestsFor('pipelines.page')[0]!.body, { context: { locale: 'fr', library: { name: 'customerio-node' } } })
  const malformed = [{ type: 'nonsense', userId: 'p1' }] as never
  t.match(await rejection(app.cio.pipelines.batch(malformed)), { code: 'FST_CIO_API_ERROR', upstreamStatus: 400 }, 'strict: a malformed item is a 400')
  const lax = await buildApp(t, simOptions(sim))
  t.same(await lax.app.cio.pipelines.batch(malformed), {}, 'without strict mode: 200, and the item is dropped silently')
  for (const [pipelines, message] of [
    [{ strictMode: 'yes' }, /"pipelines.strictMode"/],
    [{ defaultContext: 3 }, /"pipelines.defaultContext"/],
    [{ strict: true }, /"pipelines.strict".*not a known option/]
  ] as const) {
    const bad = Fastify()
    bad.register(cioObservability, simOptions(sim, { pipelines: pipelines as never }))
    t.match(await rejection(bad.ready()), { code: 'FST_CIO_INVALID_OPTIONS', message })
    await bad.close()
  }
})
