import t from 'tap'
import { APIClient, PipelinesClient, TrackClient } from 'customerio-node'
import { operations, snakeCase } from '../../lib/client/operations.ts'
import { HISTOGRAM_LABEL_SETS } from '../../lib/monitoring/metrics.ts'
import { argsFor, methodOf } from '../fixtures/sdk-args.ts'
import { buildApp, metric, scrape, simOptions, startSimulator } from '../helpers.ts'

// `resourceBase` is declared private in the SDK's types: a URL helper, not an API call.
const publicMethods = (proto: object) => Object.getOwnPropertyNames(proto).filter((n) => n !== 'constructor' && n !== 'resourceBase').sort()

t.test('the table lists every public TrackClient, APIClient and PipelinesClient method of the installed SDK', async (t) => {
  t.same(operations.filter((o) => o.api === 'track').map((o) => o.call).sort(), publicMethods(TrackClient.prototype))
  t.same(operations.filter((o) => o.api === 'app').map((o) => o.call).sort(), publicMethods(APIClient.prototype))
  // envelope() is the client's own helper (it fills messageId, timestamp, context), not an API call.
  t.same(operations.filter((o) => o.api === 'pipelines').map((o) => o.call).sort(), publicMethods(PipelinesClient.prototype).filter((n) => n !== 'envelope'))
  const names = operations.map((o) => o.name)
  t.equal(new Set(names).size, names.length, 'names are unique')
  const labels = operations.map((o) => `${o.api}:${o.label}`)
  t.equal(new Set(labels).size, labels.length, 'labels are unique within an API')
  const templates = operations.filter((o) => o.api === 'pipelines').map((o) => o.template)
  t.ok(templates.every((x) => x.startsWith('/cdp/v1/')), 'Pipelines routes under /cdp/v1')
  for (const op of operations) t.match(op.label, /^[a-z][a-z0-9_]*$/)
})

t.test('snake_case labels', async (t) => {
  t.equal(snakeCase('trackAnonymous'), 'track_anonymous')
  t.equal(snakeCase('sendSMS'), 'send_sms')
  t.equal(snakeCase('getIpAddresses'), 'get_ip_addresses')
  t.equal(snakeCase('identify'), 'identify')
})

t.test('every operation succeeds through fastify.cio over HTTP and is counted', async (t) => {
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim))
  for (const op of operations) {
    const before = sim.requests.length
    await methodOf(app.cio, op)(...argsFor(op.name))
    const request = sim.requests[before]!
    t.equal(request.method, op.method, `${op.name} verb`)
    t.match(request.path, new RegExp(`^${op.template.replace(/\{[^}]+\}/g, '[^/]+')}$`), `${op.name} path follows ${op.template}`)
    t.equal(request.status, 200)
  }
  for (const op of operations) {
    t.equal(await metric(app, 'cio_api_requests_total', { api: op.api, operation: op.label }), 1, `${op.label} counted once`)
  }
  // The latency label sets as a whole: how many there are, and the observations in them.
  const metrics = await scrape(app)
  let successes = 0
  for (const [key, count] of metrics) {
    if (key.startsWith('cio_api_request_duration_seconds_count{') && key.includes('outcome="success"')) successes += count
  }
  t.equal(successes, operations.length, 'one latency observation per call')
  const ops = [...metrics.keys()].filter((k) => k.startsWith('cio_api_request_duration_seconds_count{'))
  t.equal(ops.length, HISTOGRAM_LABEL_SETS + 2, 'latency label sets capped, the rest under _other (App and Pipelines, called last)')
  t.ok(await metric(app, 'cio_api_request_duration_seconds_count', { api: 'app', operation: '_other', outcome: 'success' }) > 0)
  t.equal(await metric(app, 'cio_api_request_duration_seconds_count', { api: 'pipelines', operation: '_other', outcome: 'success' }), 7)
  t.equal(await metric(app, 'cio_api_attempts_total', { api: 'track', status_code: '2xx' }), 19)
  t.equal(await metric(app, 'cio_api_attempts_total', { api: 'app', status_code: '2xx' }), 160)
  t.equal(await metric(app, 'cio_api_attempts_total', { api: 'pipelines', status_code: '2xx' }), 7)
  t.equal(await metric(app, 'cio_api_in_flight', { api: 'app' }), 0)
})

t.test('results are the SDK\'s own: a send returns its delivery id', async (t) => {
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim))
  const result = await app.cio.sendEmail(argsFor('sendEmail')[0] as never) as { delivery_id: string, queued_at: number }
  t.type(result.delivery_id, 'string')
  t.type(result.queued_at, 'number')
})
