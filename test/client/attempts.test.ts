import t from 'tap'
import diagnostics from 'node:diagnostics_channel'
import promClient from '@prometheus-io/client'
import { Agent } from 'undici'
import { buildApp, metric, registryMetric, rejection, simOptions, startSimulator } from '../helpers.ts'

t.test('the SDK\'s retries show as attempts with their statuses', async (t) => {
  const sim = await startSimulator(t)
  sim.fault({ operation: 'identify', status: 503, times: 2 })
  const { app } = await buildApp(t, simOptions(sim))
  await app.cio.identify('person-1', {})
  t.equal(await metric(app, 'cio_api_attempts_total', { api: 'track', status_code: '503' }), 2)
  t.equal(await metric(app, 'cio_api_attempts_total', { api: 'track', status_code: '2xx' }), 1)
  t.equal(await metric(app, 'cio_api_requests_total', { api: 'track', operation: 'identify' }), 1, 'one call')
  // Error label sets are created as they occur, so an error that never happened has no series.
  await t.rejects(metric(app, 'cio_api_errors_total', { api: 'track', operation: 'identify', error_type: '503' }), /no series/, 'a retried success is no error')
  t.same(sim.requestsFor('identify').map((r) => r.retryCount), [0, 1, 2], 'the simulator saw X-Retry-Count')
})

t.test('a 429 with Retry-After is observed: the wait shows in latency, the 429 in attempts', async (t) => {
  const sim = await startSimulator(t)
  sim.fault({ operation: 'sendEmail', status: 429, retryAfter: 1, times: 1 })
  const { app, logs } = await buildApp(t, simOptions(sim))
  const { argsFor } = await import('../fixtures/sdk-args.ts')
  await app.cio.sendEmail(argsFor('sendEmail')[0] as never)
  t.equal(await metric(app, 'cio_api_attempts_total', { api: 'app', status_code: '429' }), 1)
  t.equal(await metric(app, 'cio_api_attempts_total', { api: 'app', status_code: '2xx' }), 1)
  const labels = { api: 'app', operation: 'send_email', outcome: 'success' }
  t.equal(await metric(app, 'cio_api_request_duration_seconds_bucket', { le: '0.5', ...labels }), 0, 'the call waited out Retry-After')
  t.equal(await metric(app, 'cio_api_request_duration_seconds_bucket', { le: '2.5', ...labels }), 1)
  const line = logs.lines.find((l) => l.operation === 'send_email')!
  t.equal(line.level, 20, 'a success is logged at debug')
  t.equal(line.attempts, 2)
  t.equal(line.status, 200)
})

t.test('failures after retries are counted once, with every attempt', async (t) => {
  const sim = await startSimulator(t)
  sim.fault({ operation: 'track', status: 500 })
  const { app, logs } = await buildApp(t, simOptions(sim))
  t.match(await rejection(app.cio.track('person-1', { name: 'signed_up' })), { statusCode: 502, upstreamStatus: 500 })
  t.equal(await metric(app, 'cio_api_attempts_total', { api: 'track', status_code: '500' }), 3)
  t.equal(await metric(app, 'cio_api_errors_total', { api: 'track', operation: 'track', error_type: '500' }), 1)
  const line = logs.lines.find((l) => l.msg === 'customer.io call failed')!
  t.match(line, { level: 40, plugin: 'customerio', api: 'track', operation: 'track', error_type: '500', status: 500, attempts: 3 })
  t.type(line.duration_seconds, 'number')
  t.equal(line.err.type, 'CustomerIORequestError')
})

t.test('only the plugin\'s own requests are counted', async (t) => {
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim))
  await fetch(`${sim.url}/api/v1/customers/x`, { method: 'PUT', body: '{}' })
  sim.fault({ reset: true, times: 1 })
  await rejection(fetch(`${sim.url}/api/v1/customers/x`, { method: 'PUT', body: '{}' }))
  for (const status of ['2xx', '401', 'network']) t.equal(await metric(app, 'cio_api_attempts_total', { api: 'track', status_code: status }), 0)
})

t.test('in-flight calls are visible while they run', async (t) => {
  const sim = await startSimulator(t)
  // The first attempt never gets an answer, so the call is surely still running when scraped.
  sim.fault({ operation: 'identify', hang: true, times: 1 })
  const { app } = await buildApp(t, simOptions(sim, { client: { timeout: 2_000, retry: { maxRetries: 1, minTimeoutMs: 1, maxTimeoutMs: 1 } } }))
  const pending = app.cio.identify('person-1', {})
  t.equal(await metric(app, 'cio_api_in_flight', { api: 'track' }), 1)
  await pending
  t.equal(await metric(app, 'cio_api_in_flight', { api: 'track' }), 0)
})

/** undici's diagnostics channels the plugin's AttemptObserver subscribes to. */
const CHANNELS = ['undici:request:create', 'undici:client:beforeConnect', 'undici:request:headers', 'undici:request:error']
const subscribed = () => CHANNELS.filter((name) => diagnostics.channel(name).hasSubscribers)

t.test('closing the app stops observing', { timeout: 10_000 }, async (t) => {
  const sim = await startSimulator(t)
  t.same(subscribed(), [], 'nothing in this process observes undici before the app')
  const { app } = await buildApp(t, simOptions(sim))
  t.same(subscribed(), CHANNELS, 'the app observes every channel')
  const cio = app.cio
  await app.close()
  t.same(subscribed(), [], 'closing the app unsubscribed from every channel')
  // The plugin closed the connection pool it created: a caller that kept a reference gets a
  // rejection, and nothing observes or counts the call any more.
  t.ok(await rejection(cio.identify('person-1', {})))
  t.equal(sim.requests.length, 0, 'nothing reached Customer.io')
})

t.test('a call made after close through a pool the app still owns is not counted by the closed app', { timeout: 10_000 }, async (t) => {
  const sim = await startSimulator(t)
  const dispatcher = new Agent()
  t.teardown(() => dispatcher.close())
  const { app } = await buildApp(t, simOptions(sim, { client: { dispatcher, retry: { maxRetries: 0 } } }))
  // The plugin takes its metrics off the app's registry when it closes: this one keeps the counter.
  const kept = new promClient.Registry()
  kept.registerMetric(app.metrics.client.register.getSingleMetric('cio_api_attempts_total') as never)
  const ok = { api: 'track', status_code: '2xx' }
  await app.cio.identify('person-1', {})
  t.equal(await registryMetric(kept, 'cio_api_attempts_total', ok), 1, 'counted while the app is open')
  const cio = app.cio
  await app.close()
  await cio.identify('person-2', {})
  t.equal(sim.requestsFor('identify').length, 2, 'the call after close reached Customer.io')
  t.equal(await registryMetric(kept, 'cio_api_attempts_total', ok), 1, 'and its attempt was not counted')
  t.same(subscribed(), [])
})
