import t from 'tap'
import { APIClient, CustomerIORequestError, SendEmailRequest, TrackClient } from 'customerio-node'
import { createCioSimulator, eventId, type CioSimulator } from '../../lib/testing/index.ts'
import { rejection, startSimulator } from '../helpers.ts'

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
  t.same(sim.events, [], 'a message is no event')
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
  t.match(receiver.requests[0], { path: '/hook', body: { event_id: /^[0-9A-Z]{26}$/ }, applied: false })
})

// ---- Event idempotency: Customer.io discards an event whose `id` it has already seen. ----

const fast = { retry: { maxRetries: 2, minTimeoutMs: 1, maxTimeoutMs: 5 } }
const trackClient = (sim: CioSimulator, options: object = noRetry) => new TrackClient(sim.siteId, sim.trackApiKey, { region: sim.region, ...options })
const basic = (sim: CioSimulator) => `Basic ${Buffer.from(`${sim.siteId}:${sim.trackApiKey}`).toString('base64')}`
const post = async (sim: CioSimulator, path: string, body: unknown) => fetch(`${sim.url}${path}`, {
  method: 'POST', headers: { 'content-type': 'application/json', authorization: basic(sim) }, body: JSON.stringify(body)
})
const event = (id: string | undefined, name: string, extra: object = {}) => ({ type: 'person', action: 'event', identifiers: { id: 'p1' }, name, id, ...extra })

t.test('v1: an event whose id was seen is answered as usual but discarded', async (t) => {
  const sim = await startSimulator(t)
  const track = trackClient(sim)
  const id = eventId()
  t.same(await track.track('p1', { name: 'signed_up', id, data: { plan: 'pro' }, timestamp: 1767225600 }), {})
  t.same(await track.track('p1', { name: 'signed_up', id, data: { plan: 'pro' }, timestamp: 1767225600 }), {}, 'the re-send gets the same answer')
  t.same(sim.events, [{ id, type: 'event', name: 'signed_up', customerId: 'p1', anonymousId: undefined, data: { plan: 'pro' }, timestamp: 1767225600, via: 'v1' }])
  t.equal(sim.discardedEvents.length, 1)
  t.same(sim.discardedEvents[0], sim.events[0])
  t.same(sim.requests.map((r) => [r.status, r.applied]), [[200, true], [200, true]])
  t.ok(Object.isFrozen(sim.events[0]))
})

t.test('ids are shared by v1 and v2 (batch and entity), across customers', async (t) => {
  const sim = await startSimulator(t)
  const track = trackClient(sim)
  const [a, b, c] = [eventId(), eventId(), eventId()]
  await track.track('p1', { name: 'one', id: a })
  t.same(await track.batch([event(a, 'one')]), {})
  await track.entity(event(b, 'two', { attributes: { n: 2 } }))
  await track.track('p2', { name: 'two', id: b })
  await track.trackAnonymous('anon-1', { name: 'three', id: c })
  await track.entity({ type: 'person', action: 'event', anonymous_id: 'anon-1', name: 'three', id: c })
  t.same(sim.events.map((e) => [e.name, e.via, e.customerId, e.anonymousId]), [
    ['one', 'v1', 'p1', undefined],
    ['two', 'v2', 'p1', undefined],
    ['three', 'v1', undefined, 'anon-1']
  ])
  t.same(sim.events[1]!.data, { n: 2 }, 'v2 attributes are the event data')
  t.same(sim.discardedEvents.map((e) => [e.name, e.via]), [['one', 'v2'], ['two', 'v1'], ['three', 'v2']])
})

t.test('events without an id are always recorded; page and screen views keep their type', async (t) => {
  const sim = await startSimulator(t)
  const track = trackClient(sim)
  await track.track('p1', { name: 'clicked' })
  await track.track('p1', { name: 'clicked' })
  await track.trackPageView('p1', '/pricing')
  await track.trackPageView('p1', '/pricing')
  await track.track('p1', { name: 'Home', type: 'screen' })
  await track.trackAnonymous('', { name: 'invited', data: { email: 'x@example.com' } })
  await track.track('p1', { name: 'blank id', id: '' })
  t.same(sim.events.map((e) => [e.type, e.name, e.id]), [
    ['event', 'clicked', undefined],
    ['event', 'clicked', undefined],
    ['page', '/pricing', undefined],
    ['page', '/pricing', undefined],
    ['screen', 'Home', undefined],
    ['event', 'invited', undefined],
    ['event', 'blank id', undefined]
  ], 'an empty id counts as none')
  t.match(sim.events[5], { customerId: undefined, anonymousId: undefined, data: { email: 'x@example.com' } }, 'an invite event has no person')
  t.same(sim.events[2]!.data, {})
  t.equal(sim.discardedEvents.length, 0)
})

t.test('batch: only operations with new ids are recorded, and the answer is still 200', async (t) => {
  const sim = await startSimulator(t)
  const track = trackClient(sim)
  const [seen, fresh, page, twice] = [eventId(), eventId(), eventId(), eventId()]
  await track.track('p1', { name: 'seen', id: seen })
  t.same(await track.batch([
    event(seen, 'seen'),
    event(fresh, 'fresh', { timestamp: 1767225601 }),
    { type: 'person', action: 'page', identifiers: { email: 'p2@example.com' }, name: '/docs', id: page },
    { type: 'person', action: 'screen', identifiers: { cio_id: 'c3' }, name: 'Settings' },
    { type: 'person', action: 'event', identifiers: { id: 42 }, name: 'numeric' },
    event(twice, 'twice'),
    event(twice, 'twice'),
    { type: 'person', action: 'identify', identifiers: { id: 'p1' }, attributes: { plan: 'pro' } },
    { type: 'object', action: 'event', identifiers: { object_type_id: '1', object_id: 'o' }, name: 'not a person' },
    null,
    [],
    { type: 'person', action: 'event', identifiers: 'p9' }
  ] as never), {}, 'operations the SDK does not type are sent as they are')
  t.equal(sim.requests.at(-1)!.status, 200)
  t.same(sim.events.map((e) => [e.type, e.name, e.customerId, e.timestamp]), [
    ['event', 'seen', 'p1', undefined],
    ['event', 'fresh', 'p1', 1767225601],
    ['page', '/docs', 'p2@example.com', undefined],
    ['screen', 'Settings', 'c3', undefined],
    ['event', 'numeric', '42', undefined],
    ['event', 'twice', 'p1', undefined],
    ['event', '', undefined, undefined]
  ], 'identifiers: id, else email, else cio_id; a nameless event is recorded with name ""')
  t.same(sim.discardedEvents.map((e) => e.id), [seen, twice], 'a repeat within one batch is discarded too')
  t.same(sim.eventsFor('p1').map((e) => e.name), ['seen', 'fresh', 'twice'])
})

t.test('207: rejected operations are not applied, so their re-send is recorded', async (t) => {
  const sim = await startSimulator(t, { rejectBatchOperation: (op) => (op as { name?: string }).name === 'bad' ? 'invalid' : undefined })
  const track = trackClient(sim)
  const [ok, bad] = [eventId(), eventId()]
  await track.batch([event(ok, 'ok'), event(bad, 'bad'), event(eventId(), 'big', { attributes: { blob: 'x'.repeat(33_000) } })])
  t.match(sim.requests.at(-1), { status: 207, applied: true })
  t.same(sim.events.map((e) => e.id), [ok])
  await track.entity(event(bad, 'bad, fixed'))
  t.same(sim.events.map((e) => e.name), ['ok', 'bad, fixed'])
  t.equal(sim.discardedEvents.length, 0)
})

t.test('error answers apply nothing: fault statuses, bad keys, bad batches', async (t) => {
  const sim = await startSimulator(t)
  const id = eventId()
  sim.fault({ operation: 'track', status: 503, times: 1 })
  t.same(await trackClient(sim, fast).track('p1', { name: 'retried', id }), {}, 'the SDK retries the 503')
  t.same(sim.requests.map((r) => [r.status, r.retryCount, r.applied]), [[503, 0, false], [200, 1, true]])
  t.same(sim.events.map((e) => e.id), [id], 'the retry is recorded once')
  t.equal(sim.discardedEvents.length, 0)

  sim.fault({ operation: 'batch', status: 200, body: 'not json', times: 1 })
  await t.rejects(trackClient(sim).batch([event(eventId(), 'garbled')]), { message: /Unable to parse JSON/ })
  const badKey = new TrackClient(sim.siteId, 'wrong', { region: sim.region, ...noRetry })
  await t.rejects(badKey.track('p1', { name: 'unauthorized', id: eventId() }))
  t.equal((await post(sim, '/api/v2/batch', { batch: [event(eventId(), 'huge', { attributes: { blob: 'x'.repeat(520_000) } })] })).status, 400)
  t.same(sim.requests.slice(2).map((r) => [r.status, r.applied]), [[200, false], [401, false], [400, false]], 'a fault status applies nothing, even a 2xx one')
  t.equal(sim.events.length, 1)
})

t.test('plain reset and hang faults apply nothing', async (t) => {
  const sim = await startSimulator(t)
  sim.fault({ reset: true, times: 1 })
  await t.rejects(trackClient(sim).track('p1', { name: 'reset', id: eventId() }), { name: 'TypeError', message: 'fetch failed' })
  sim.fault({ hang: true, times: 1 })
  await t.rejects(trackClient(sim, { ...noRetry, timeout: 1_000 }).track('p1', { name: 'hang', id: eventId() }), { name: 'TimeoutError' })
  t.same(sim.requests.map((r) => [r.status, r.applied]), [['reset', false], ['hang', false]])
  t.same(sim.events, [])
})

t.test('lose: reset — the request is applied, then the connection is destroyed', async (t) => {
  const sim = await startSimulator(t)
  const id = eventId()
  sim.fault({ operation: 'track', lose: 'reset', times: 1 })
  const err = await rejection(trackClient(sim).track('p1', { name: 'paid', id }))
  t.match(err, { name: 'TypeError', message: 'fetch failed' }, 'the SDK sees a network error')
  t.match(sim.requests[0], { status: 'reset', applied: true })
  t.same(sim.eventsFor('p1').map((e) => e.id), [id], 'yet the event is in the history')
  t.same(await trackClient(sim).track('p1', { name: 'paid', id }), {}, 'the re-send succeeds')
  t.same(sim.eventsFor('p1').map((e) => e.id), [id], 'and is discarded')
  t.equal(sim.discardedEvents.length, 1)

  // With the SDK's own retries: the lost batch was accepted, its retry is discarded.
  const [a, b] = [eventId(), eventId()]
  sim.fault({ operation: 'batch', lose: 'reset', times: 1 })
  t.same(await trackClient(sim, fast).batch([event(a, 'a'), event(b, 'b')]), {})
  t.same(sim.requestsFor('batch').map((r) => [r.status, r.retryCount, r.applied]), [['reset', 0, true], [200, 1, true]])
  t.same(sim.events.map((e) => e.id), [id, a, b])
  t.same(sim.discardedEvents.map((e) => e.id), [id, a, b])

  // A lost error answer applied nothing.
  sim.fault({ lose: 'reset', times: 1 })
  await t.rejects(new TrackClient(sim.siteId, 'wrong', { region: sim.region, ...noRetry }).track('p1', { name: 'x', id: eventId() }))
  t.match(sim.requests.at(-1), { status: 'reset', applied: false })
  t.equal(sim.events.length, 3)
})

t.test('lose: hang — the request is applied and never answered', async (t) => {
  const sim = await startSimulator(t)
  const id = eventId()
  sim.fault({ path: '/api/v2/entity', lose: 'hang', times: 1 })
  // The simulator never answers, so the client's timeout races nothing but loopback delivery.
  const err = await rejection(trackClient(sim, { ...noRetry, timeout: 1_000 }).entity(event(id, 'hung')))
  t.match(err, { name: 'TimeoutError' }, 'the SDK times out')
  t.match(sim.requests[0], { status: 'hang', applied: true })
  t.same(sim.events.map((e) => e.id), [id], 'yet the event is in the history')
  await trackClient(sim).entity(event(id, 'hung'))
  t.equal(sim.events.length, 1)
  t.same(sim.discardedEvents.map((e) => e.id), [id], 're-sending it is discarded')
})

t.test('the path\'s customer id is decoded; a malformed one is kept as sent', async (t) => {
  const sim = await startSimulator(t)
  await trackClient(sim).track('ann@example.com/1 ü', { name: 'odd id' })
  t.equal(sim.requests[0]!.path, '/api/v1/customers/ann%40example.com%2F1%20%C3%BC/events')
  t.same(sim.eventsFor('ann@example.com/1 ü').map((e) => e.name), ['odd id'])
  t.equal((await post(sim, '/api/v1/customers/bad%E0%A4/events', { name: 'malformed' })).status, 200)
  t.equal(sim.events[1]!.customerId, 'bad%E0%A4')
  t.equal((await post(sim, '/api/v1/events', ['not', 'an', 'event'])).status, 200, 'a body that is no event is answered but records nothing')
  t.equal((await post(sim, '/api/v1/events', { name: 'odd fields', data: 'text', timestamp: '1767225600', anonymous_id: 7 })).status, 200)
  t.match(sim.events[2], { name: 'odd fields', data: {}, timestamp: undefined, anonymousId: undefined })
  t.equal(sim.events.length, 3)
})
