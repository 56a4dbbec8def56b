import t from 'tap'
import { buildApp, rejection, scrape, series, simOptions, startSimulator } from '../helpers.ts'

t.test('the SDK\'s retries show as attempts with their statuses', async (t) => {
  const sim = await startSimulator(t)
  sim.fault({ operation: 'identify', status: 503, times: 2 })
  const { app } = await buildApp(t, simOptions(sim))
  await app.cio.identify('person-1', {})
  const metrics = await scrape(app)
  t.equal(metrics.get(series('cio_api_attempts_total', { api: 'track', status_code: '503' })), 2)
  t.equal(metrics.get(series('cio_api_attempts_total', { api: 'track', status_code: '2xx' })), 1)
  t.equal(metrics.get(series('cio_api_requests_total', { api: 'track', operation: 'identify' })), 1, 'one call')
  t.equal(metrics.get(series('cio_api_errors_total', { api: 'track', operation: 'identify', error_type: '503' })), undefined, 'a retried success is no error')
  t.same(sim.requestsFor('identify').map((r) => r.retryCount), [0, 1, 2], 'the simulator saw X-Retry-Count')
})

t.test('a 429 with Retry-After is observed: the wait shows in latency, the 429 in attempts', async (t) => {
  const sim = await startSimulator(t)
  sim.fault({ operation: 'sendEmail', status: 429, retryAfter: 1, times: 1 })
  const { app, logs } = await buildApp(t, simOptions(sim))
  const { argsFor } = await import('../fixtures/sdk-args.ts')
  await app.cio.sendEmail(argsFor('sendEmail')[0] as never)
  const metrics = await scrape(app)
  t.equal(metrics.get(series('cio_api_attempts_total', { api: 'app', status_code: '429' })), 1)
  t.equal(metrics.get(series('cio_api_attempts_total', { api: 'app', status_code: '2xx' })), 1)
  const labels = { api: 'app', operation: 'send_email', outcome: 'success' }
  t.equal(metrics.get(series('cio_api_request_duration_seconds_bucket', { le: '0.5', ...labels })), 0, 'the call waited out Retry-After')
  t.equal(metrics.get(series('cio_api_request_duration_seconds_bucket', { le: '2.5', ...labels })), 1)
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
  const metrics = await scrape(app)
  t.equal(metrics.get(series('cio_api_attempts_total', { api: 'track', status_code: '500' })), 3)
  t.equal(metrics.get(series('cio_api_errors_total', { api: 'track', operation: 'track', error_type: '500' })), 1)
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
  const metrics = await scrape(app)
  for (const status of ['2xx', '401', 'network']) t.equal(metrics.get(series('cio_api_attempts_total', { api: 'track', status_code: status })), 0)
})

t.test('in-flight calls are visible while they run', async (t) => {
  const sim = await startSimulator(t)
  // The first attempt never gets an answer, so the call is surely still running when scraped.
  sim.fault({ operation: 'identify', hang: true, times: 1 })
  const { app } = await buildApp(t, simOptions(sim, { client: { timeout: 2_000, retry: { maxRetries: 1, minTimeoutMs: 1, maxTimeoutMs: 1 } } }))
  const pending = app.cio.identify('person-1', {})
  t.equal((await scrape(app)).get(series('cio_api_in_flight', { api: 'track' })), 1)
  await pending
  t.equal((await scrape(app)).get(series('cio_api_in_flight', { api: 'track' })), 0)
})

t.test('closing the app stops observing', async (t) => {
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim))
  const cio = app.cio
  await app.close()
  // The plugin closed the connection pool it created: a caller that kept a reference gets a
  // rejection, and nothing observes or counts the call any more.
  t.ok(await rejection(cio.identify('person-1', {})))
  t.equal(sim.requests.length, 0, 'nothing reached Customer.io')
})
