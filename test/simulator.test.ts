import t from 'tap'
import { APIClient, CustomerIORequestError, SendEmailRequest, TrackClient } from 'customerio-node'
import { createCioSimulator, eventId } from '../lib/testing/index.ts'
import { rejection, startSimulator } from './helpers.ts'

const noRetry = { retry: { maxRetries: 0 } }

t.test('checks Basic and Bearer auth with Customer.io\'s answer shapes', async (t) => {
  const sim = await startSimulator(t)
  const badTrack = new TrackClient(sim.siteId, 'wrong', { region: sim.region, ...noRetry })
  // Track answers a bad key in plain text, which the SDK cannot parse (customerio-node #71).
  await t.rejects(badTrack.identify('person-1', {}), { message: /Unable to parse JSON[\s\S]*Unauthorized request/ })
  const badApp = new APIClient('wrong', { region: sim.region, ...noRetry })
  t.match(await rejection(badApp.listCampaigns()), { statusCode: 401, message: 'Unauthorized request' })
  const good = new TrackClient(sim.siteId, sim.trackApiKey, { region: sim.region })
  t.same(await good.identify('person-1', {}), {})
  t.same(await good.getAccountRegion(), { url: sim.url, region: 'us', environment_id: 1 })
  t.same(sim.requests.map((r) => r.status), [401, 401, 200, 200])
})

t.test('sends answer with a delivery id, as Customer.io does', async (t) => {
  const sim = await startSimulator(t)
  const app = new APIClient(sim.appApiKey, { region: sim.region, ...noRetry })
  const sent = await app.sendEmail(new SendEmailRequest({ to: 'ann@example.com', transactional_message_id: 1, identifiers: { id: 'p1' } }))
  t.match(sent, { delivery_id: /^[\w-]{24}$/, queued_at: Number })
})

t.test('unknown paths answer 404', async (t) => {
  const sim = await startSimulator(t)
  const res = await fetch(`${sim.url}/api/v1/nowhere`)
  t.equal(res.status, 404)
  t.same(await res.json(), { meta: { error: 'Not found' } })
  t.equal(sim.requests[0]!.operation, undefined)
})

t.test('Track v2 batch: 207 for rejected operations, 400 for oversize or bad requests', async (t) => {
  const sim = await startSimulator(t, { rejectBatchOperation: (op) => (op as { identifiers: { id: string } }).identifiers.id === 'bad' ? 'invalid' : undefined })
  const track = new TrackClient(sim.siteId, sim.trackApiKey, { region: sim.region, ...noRetry })
  const op = (id: string, extra = {}) => ({ type: 'person', action: 'identify', identifiers: { id }, attributes: extra })
  t.same(await track.batch([op('a'), op('b')]), {})
  const partial = await track.batch([op('a'), op('bad'), op('c', { blob: 'x'.repeat(33_000) })]).then(() => undefined, (e: unknown) => e)
  t.ok(partial === undefined, '207 is a 2xx, so the SDK resolves')
  const last = sim.requests.at(-1)!
  t.equal(last.status, 207)
  const big = await track.batch(Array.from({ length: 20 }, (_, i) => op(String(i), { blob: 'x'.repeat(30_000) }))).then(() => undefined, (e: unknown) => e)
  t.ok(big instanceof CustomerIORequestError)
  t.equal((big as CustomerIORequestError).statusCode, 400)
  const res = await fetch(`${sim.url}/api/v2/batch`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`${sim.siteId}:${sim.trackApiKey}`).toString('base64')}` }, body: '{"nope":1}' })
  t.equal(res.status, 400)
  t.match(await res.json(), { errors: [{ field: 'batch' }] })
})

t.test('207 bodies list the rejected indices', async (t) => {
  const sim = await startSimulator(t, { rejectBatchOperation: (_op, index) => index === 1 ? 'invalid' : undefined })
  const res = await fetch(`${sim.url}/api/v2/batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`${sim.siteId}:${sim.trackApiKey}`).toString('base64')}` },
    body: JSON.stringify({ batch: [{ a: 1 }, { b: 2 }] })
  })
  t.equal(res.status, 207)
  t.same(await res.json(), { errors: [{ batch_index: 1, reason: 'invalid', field: 'batch', message: 'operation 1 rejected: invalid' }] })
})

t.test('faults: matchers, times, ratio, latency, Retry-After, raw bodies, removal', async (t) => {
  const sim = await createCioSimulator({ seed: 7, port: 0 })
  t.teardown(() => sim.close())
  const track = new TrackClient(sim.siteId, sim.trackApiKey, { region: sim.region, ...noRetry })
  const app = new APIClient(sim.appApiKey, { region: sim.region, ...noRetry })

  const remove = sim.fault({ api: 'app', status: 503, retryAfter: 7 })
  const err = await app.listCampaigns().then(() => undefined, (e: CustomerIORequestError) => e)
  t.equal(err?.statusCode, 503)
  t.equal(err?.response.headers['retry-after'], '7')
  t.same(await track.identify('a', {}), {}, 'an app fault leaves Track alone')
  remove()
  t.same(await app.listCampaigns(), {})

  sim.fault({ path: '/api/v2/', status: 500, times: 1 })
  t.match(await rejection(track.batch([{}])), { statusCode: 500, message: 'Unknown error' }, 'v2 errors[] bodies read as Unknown error')
  t.match(JSON.parse(JSON.stringify(sim.requests.at(-1))), { status: 500 })

  sim.fault({ operation: 'trackPageView', status: 409, times: 1 })
  t.match(await rejection(track.track('a', { name: 'x' })), { statusCode: 409 }, 'methods sharing a route share its faults')

  sim.fault({ operation: 'identify', ratio: 0.5, status: 500, times: 1000 })
  let failures = 0
  for (let i = 0; i < 40; i++) await track.identify('a', {}).catch(() => failures++)
  t.ok(failures > 5 && failures < 35, `ratio applies to about half (${failures}/40)`)
  sim.clearFaults()

  sim.fault({ latencyMs: 120, times: 1 })
  const start = Date.now()
  await track.identify('a', {})
  t.ok(Date.now() - start >= 100, 'latency delays the normal answer')

  sim.fault({ status: 200, body: 'not json', times: 1 })
  await t.rejects(track.identify('a', {}), { message: /Unable to parse JSON/ })
  t.equal(sim.requestsFor('identify').at(-1)!.body && typeof sim.requestsFor('identify').at(-1)!.body, 'object', 'JSON bodies are recorded parsed')
})

t.test('non-JSON request bodies are recorded as text', async (t) => {
  const sim = await startSimulator(t)
  await fetch(`${sim.url}/v1/assets/files`, { method: 'POST', body: 'raw', headers: { 'content-type': 'application/json' } })
  await fetch(`${sim.url}/v1/assets/files`, { method: 'POST', body: 'raw2' })
  t.same(sim.requests.map((r) => r.body), ['raw', 'raw2'])
})

t.test('sendWebhook POSTs the event as JSON', async (t) => {
  const sim = await startSimulator(t)
  const receiver = await startSimulator(t)
  const res = await sim.sendWebhook(`${receiver.url}/hook`, { event_id: eventId() }, 'key', 1767225600)
  t.equal(res.status, 404)
  t.match(receiver.requests[0], { path: '/hook', body: { event_id: /^[0-9A-Z]{26}$/ } })
})
