import t from 'tap'
import { randomUUID } from 'node:crypto'
import { CustomerIORequestError, PipelinesClient, TrackClient, type BatchItem } from 'customerio-node'
import { eventId, type CioSimulator } from '../../lib/testing/index.ts'
import { rejection, startSimulator } from '../helpers.ts'

const noRetry = { retry: { maxRetries: 0 } }
const fast = { retry: { maxRetries: 2, minTimeoutMs: 1, maxTimeoutMs: 5 } }

const pipelines = (sim: CioSimulator, options: object = noRetry) => new PipelinesClient(sim.pipelinesWriteKey, { region: sim.region, ...options })
const strict = (sim: CioSimulator) => pipelines(sim, { ...noRetry, strictMode: true })

/** A raw POST with the write key, for payloads the SDK refuses to send. */
const post = async (sim: CioSimulator, path: string, body: string, headers: Record<string, string> = {}) => fetch(`${sim.url}/cdp/v1${path}`, {
  method: 'POST',
  headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`${sim.pipelinesWriteKey}:`).toString('base64')}`, ...headers },
  body
})

const tracked = (messageId: string, event: string): BatchItem => ({ type: 'track', userId: 'p1', event, messageId })

t.test('the region points Pipelines at /cdp/v1; the write key has a default and can be set', async (t) => {
  const sim = await startSimulator(t)
  t.equal(sim.region.pipelinesUrl, `${sim.url}/cdp/v1`)
  t.equal(sim.pipelinesWriteKey, 'sim-pipelines-key')
  const custom = await startSimulator(t, { pipelinesWriteKey: 'wk-1' })
  t.equal(custom.pipelinesWriteKey, 'wk-1')
  t.same(await new PipelinesClient('wk-1', { url: custom.region.pipelinesUrl, ...noRetry }).identify({ userId: 'p1' }), {}, 'the `url` option works too')
})

t.test('all seven methods are answered 200 {} and recorded with their operation and api', async (t) => {
  const sim = await startSimulator(t)
  const cdp = pipelines(sim)
  t.same(await cdp.identify({ userId: 'p1', traits: { plan: 'pro' } }), {})
  t.same(await cdp.track({ userId: 'p1', event: 'Signed Up', properties: { plan: 'pro' }, timestamp: '2026-01-01T00:00:00.500Z', messageId: 'm-1' }), {})
  t.same(await cdp.page({ anonymousId: 'a1', name: '/pricing' }), {})
  t.same(await cdp.screen({ userId: 42, name: 'Settings', properties: { tab: 2 } }), {})
  t.same(await cdp.group({ userId: 'p1', groupId: 'acme' }), {})
  t.same(await cdp.alias({ userId: 'p1', previousId: 'a1' }), {})
  t.same(await cdp.batch([{ type: 'identify', userId: 'p2' }, { type: 'track', anonymousId: 'a2', event: 'Browsed' }]), {})

  t.same(sim.requests.map((r) => [r.operation, r.api, r.method, r.path, r.status, r.applied]), [
    ['pipelines.identify', 'pipelines', 'POST', '/cdp/v1/identify', 200, true],
    ['pipelines.track', 'pipelines', 'POST', '/cdp/v1/track', 200, true],
    ['pipelines.page', 'pipelines', 'POST', '/cdp/v1/page', 200, true],
    ['pipelines.screen', 'pipelines', 'POST', '/cdp/v1/screen', 200, true],
    ['pipelines.group', 'pipelines', 'POST', '/cdp/v1/group', 200, true],
    ['pipelines.alias', 'pipelines', 'POST', '/cdp/v1/alias', 200, true],
    ['pipelines.batch', 'pipelines', 'POST', '/cdp/v1/batch', 200, true]
  ])
  t.equal(sim.requestsFor('pipelines.batch').length, 1)
  t.match(sim.requestsFor('pipelines.batch')[0]!.body, { batch: [{ type: 'identify', userId: 'p2', messageId: String, context: { library: { name: 'customerio-node' } } }, { type: 'track' }] })

  t.same(sim.pipelinesCalls.map((c) => [c.type, c.payload.userId ?? c.payload.anonymousId]), [
    ['identify', 'p1'], ['track', 'p1'], ['page', 'a1'], ['screen', 42], ['group', 'p1'], ['alias', 'p1'], ['identify', 'p2'], ['track', 'a2']
  ], 'every accepted call and batch item, identify/group/alias included')
  t.same(sim.events[0], {
    id: 'm-1', type: 'event', name: 'Signed Up', customerId: 'p1', anonymousId: undefined, data: { plan: 'pro' }, timestamp: 1767225600.5, via: 'pipelines'
  })
  t.same(sim.events.map((e) => [e.type, e.name, e.customerId, e.anonymousId, e.via]), [
    ['event', 'Signed Up', 'p1', undefined, 'pipelines'],
    ['page', '/pricing', undefined, 'a1', 'pipelines'],
    ['screen', 'Settings', '42', undefined, 'pipelines'],
    ['event', 'Browsed', undefined, 'a2', 'pipelines']
  ], 'track, page and screen reach the event history; identify, group and alias do not')
  t.same(sim.eventsFor('42').map((e) => e.data), [{ tab: 2 }])
  t.ok(sim.events.every((e) => typeof e.id === 'string' && e.timestamp !== undefined), 'the SDK\'s messageId and timestamp are kept')
})

t.test('a wrong write key is a 401 in Track v1\'s meta.errors shape, strict or not', async (t) => {
  const sim = await startSimulator(t)
  const err = await rejection(new PipelinesClient('wrong', { region: sim.region, ...noRetry }).track({ userId: 'p1', event: 'x' }))
  t.ok(err instanceof CustomerIORequestError)
  t.match(err, { statusCode: 401, message: /Unauthorized request/ })
  t.match(await rejection(new PipelinesClient('wrong', { region: sim.region, ...noRetry, strictMode: true }).identify({ userId: 'p1' })), { statusCode: 401 })
  const res = await fetch(`${sim.url}/cdp/v1/identify`, { method: 'POST', headers: { authorization: `Basic ${Buffer.from(`${sim.pipelinesWriteKey}:x`).toString('base64')}` }, body: '{}' })
  t.equal(res.status, 401, 'the password must be empty')
  t.same(await res.json(), { meta: { errors: ['Unauthorized request'] } })
  t.same(sim.requests.map((r) => [r.operation, r.status, r.applied]), [['pipelines.track', 401, false], ['pipelines.identify', 401, false], ['pipelines.identify', 401, false]])
  t.same(sim.events, [])
  t.same(sim.pipelinesCalls, [])
})

t.test('malformed payloads: 200 and silently dropped without strict mode, 400 with it', async (t) => {
  const sim = await startSimulator(t)
  const malformed: Array<[string, unknown]> = [
    ['/identify', { traits: {} }],
    ['/track', { userId: 'p1' }],
    ['/track', { userId: '  ', event: 'blank user' }],
    ['/page', { name: '/nobody' }],
    ['/screen', { userId: {}, name: 'object user' }],
    ['/group', { userId: 'p1' }],
    ['/alias', { userId: 'p1' }],
    ['/alias', { anonymousId: 'a1', previousId: 'a0' }],
    ['/batch', { batch: [] }],
    ['/batch', {}],
    ['/batch', { batch: [5, null] }],
    ['/batch', ['not', 'a', 'body']],
    ['/track', ['not', 'an', 'object']]
  ]
  for (const [path, body] of malformed) {
    const res = await post(sim, path, JSON.stringify(body))
    t.equal(res.status, 200, `permissive ${path} ${JSON.stringify(body)}`)
    t.same(await res.json(), {})
  }
  t.equal((await post(sim, '/track', 'not json')).status, 200, 'even a body that is no JSON')
  t.ok(sim.requests.every((r) => r.status === 200 && !r.applied), 'nothing applied')
  t.same(sim.events, [])
  t.same(sim.pipelinesCalls, [])

  for (const [path, body] of malformed) {
    const res = await post(sim, path, JSON.stringify(body), { 'x-strict-mode': '1' })
    t.equal(res.status, 400, `strict ${path} ${JSON.stringify(body)}`)
    t.match(await res.json(), { meta: { errors: [String] } })
  }
  t.same(sim.pipelinesCalls, [])
})

t.test('malformed batch items, through the real client: dropped alone, or the whole batch is a 400 in strict mode', async (t) => {
  const sim = await startSimulator(t)
  const items = [
    tracked('m-ok', 'ok'),
    { type: 'track', userId: 'p1' },
    { type: 'group', userId: 'p1' },
    { type: 'bogus', userId: 'p1' },
    { type: 'page', userId: 'p1', name: '/ok' }
  ] as BatchItem[]
  t.same(await pipelines(sim).batch(items), {}, 'the SDK does not check batch items; Pipelines answers 200')
  t.same(sim.events.map((e) => e.name), ['ok', '/ok'], 'the malformed items are silently dropped')
  t.same(sim.pipelinesCalls.map((c) => c.type), ['track', 'page'])
  t.match(sim.requests[0], { status: 200, applied: true })

  const err = await rejection(strict(sim).batch(items))
  t.ok(err instanceof CustomerIORequestError)
  t.equal(err.statusCode, 400)
  t.match(err.message, /3 errors:[\s\S]*batch\[1\]: event is required[\s\S]*batch\[2\]: groupId is required[\s\S]*batch\[3\]: unknown type "bogus"/)
  t.match(sim.requests[1], { status: 400, applied: false })
  t.equal(sim.events.length, 2, 'strict mode applies nothing of a bad batch')
  t.equal(sim.discardedEvents.length, 0)

  t.same(await strict(sim).batch([tracked('m-strict', 'strict ok')]), {}, 'a valid payload passes strict mode')
  t.same(sim.events.map((e) => e.name), ['ok', '/ok', 'strict ok'])
})

t.test('size limits: oversized requests are 200 and not processed, or 400 in strict mode', async (t) => {
  const sim = await startSimulator(t)
  const blob = (kb: number) => 'x'.repeat(kb * 1024)
  // A single call over 32 KB.
  t.same(await pipelines(sim).track({ userId: 'p1', event: 'big', properties: { blob: blob(33) } }), {})
  t.match(await rejection(strict(sim).track({ userId: 'p1', event: 'big', properties: { blob: blob(33) } })), { statusCode: 400, message: /larger than 32 KB/ })
  // A batch over 500 KB, every item under 32 KB.
  const huge = Array.from({ length: 20 }, (_, i) => ({ type: 'track', userId: 'p1', event: `part ${i}`, properties: { blob: blob(30) } }) as BatchItem)
  t.same(await pipelines(sim).batch(huge), {})
  t.match(await rejection(strict(sim).batch(huge)), { statusCode: 400, message: /larger than 500 KB/ })
  t.same(sim.requests.map((r) => [r.operation, r.status, r.applied]), [
    ['pipelines.track', 200, false], ['pipelines.track', 400, false], ['pipelines.batch', 200, false], ['pipelines.batch', 400, false]
  ])
  t.same(sim.events, [], 'none processed')

  // One item over 32 KB in a batch under 500 KB: that item alone is dropped.
  const mixed = [tracked('small', 'small'), { type: 'track', userId: 'p1', event: 'big item', properties: { blob: blob(33) } } as BatchItem]
  t.same(await pipelines(sim).batch(mixed), {})
  t.same(sim.events.map((e) => e.name), ['small'])
  t.match(await rejection(strict(sim).batch([tracked(eventId(), 'other'), mixed[1]!])), { statusCode: 400, message: /batch\[1\]: larger than 32 KB/ })
  t.equal(sim.events.length, 1)
})

t.test('messageId de-duplication: the same batch sent twice is recorded once', async (t) => {
  const sim = await startSimulator(t)
  const cdp = pipelines(sim)
  const batch: BatchItem[] = [
    tracked('m-1', 'one'),
    { type: 'page', userId: 'p1', name: '/two', messageId: 'm-2' },
    { type: 'identify', userId: 'p1', messageId: 'm-3' }
  ]
  t.same(await cdp.batch(batch), {})
  t.same(await cdp.batch(batch), {}, 'the re-send gets the same answer')
  t.same(sim.eventsFor('p1').map((e) => [e.id, e.name]), [['m-1', 'one'], ['m-2', '/two']])
  t.same(sim.discardedEvents.map((e) => e.id), ['m-1', 'm-2'])
  t.same(sim.requests.map((r) => [r.status, r.applied]), [[200, true], [200, true]])

  // Without a fixed messageId the SDK makes a fresh one per call, so a second call is a second event.
  await cdp.track({ userId: 'p1', event: 'fresh' })
  await cdp.track({ userId: 'p1', event: 'fresh' })
  t.equal(sim.eventsFor('p1').filter((e) => e.name === 'fresh').length, 2)

  // Ids are one space across APIs: a Pipelines messageId equal to a Track event id is a repeat.
  const id = eventId()
  await new TrackClient(sim.siteId, sim.trackApiKey, { region: sim.region, ...noRetry }).track('p1', { name: 'via track', id })
  await cdp.track({ userId: 'p1', event: 'via pipelines', messageId: id })
  t.same(sim.discardedEvents.map((e) => [e.name, e.via]).at(-1), ['via pipelines', 'pipelines'])
})

t.test('faults: by operation name, api and path, with Retry-After and Pipelines\' error shape', async (t) => {
  const sim = await startSimulator(t)
  const messageId = randomUUID()
  sim.fault({ operation: 'pipelines.batch', status: 503, times: 1 })
  t.same(await pipelines(sim, fast).batch([{ type: 'track', userId: 'p1', event: 'retried', messageId }]), {}, 'the SDK retries the 503')
  t.same(sim.requestsFor('pipelines.batch').map((r) => [r.status, r.retryCount, r.applied]), [[503, 0, false], [200, 1, true]])
  t.same(sim.events.map((e) => e.id), [messageId], 'recorded once')

  sim.fault({ api: 'pipelines', status: 429, retryAfter: 3, times: 1 })
  const err = await rejection(pipelines(sim).identify({ userId: 'p1' }))
  t.match(err, { statusCode: 429, message: /simulated 429/ })
  t.equal(err.response.headers['retry-after'], '3')
  const track = new TrackClient(sim.siteId, sim.trackApiKey, { region: sim.region, ...noRetry })
  sim.fault({ api: 'pipelines', status: 500, times: 1 })
  t.same(await track.identify('p1', {}), {}, 'a Pipelines fault leaves Track alone')
  sim.clearFaults()

  sim.fault({ path: '/cdp/v1/page', status: 500, times: 1 })
  t.same(await pipelines(sim).screen({ userId: 'p1', name: 'untouched' }), {})
  t.match(await rejection(pipelines(sim).page({ userId: 'p1', name: '/x' })), { statusCode: 500 })
  t.same(sim.events.map((e) => e.name), ['retried', 'untouched'])

  sim.fault({ operation: 'pipelines.track', reset: true, times: 1 })
  t.match(await rejection(pipelines(sim).track({ userId: 'p1', event: 'reset' })), { name: 'TypeError', message: 'fetch failed' })
  sim.fault({ operation: 'pipelines.track', latencyMs: 120, times: 1 })
  const start = Date.now()
  await pipelines(sim).track({ userId: 'p1', event: 'slow' })
  t.ok(Date.now() - start >= 100, 'latency delays the normal answer')
  t.same(sim.events.map((e) => e.name), ['retried', 'untouched', 'slow'])
})

t.test('hang: the SDK times out and nothing is applied', async (t) => {
  const sim = await startSimulator(t)
  sim.fault({ operation: 'pipelines.identify', hang: true, times: 1 })
  t.match(await rejection(pipelines(sim, { ...noRetry, timeout: 1_000 }).identify({ userId: 'p1' })), { name: 'TimeoutError' })
  t.match(sim.requests[0], { operation: 'pipelines.identify', status: 'hang', applied: false })
  t.same(sim.pipelinesCalls, [])
})

t.test('lose: reset — the batch is applied, and its re-send with the same messageIds is recorded once', async (t) => {
  const sim = await startSimulator(t)
  const batch = [tracked(randomUUID(), 'paid'), tracked(randomUUID(), 'shipped')]
  sim.fault({ operation: 'pipelines.batch', lose: 'reset', times: 1 })
  t.match(await rejection(pipelines(sim).batch(batch)), { name: 'TypeError', message: 'fetch failed' }, 'the SDK sees a network error')
  t.match(sim.requests[0], { status: 'reset', applied: true })
  t.same(sim.eventsFor('p1').map((e) => e.name), ['paid', 'shipped'], 'yet the events are in the history')

  t.same(await pipelines(sim).batch(batch), {}, 'the re-send succeeds')
  t.same(sim.eventsFor('p1').map((e) => e.name), ['paid', 'shipped'], 'and is discarded')
  t.same(sim.discardedEvents.map((e) => e.id), batch.map((item) => item.messageId))

  // With the SDK's own retries the envelope is built once, so the retry carries the same messageIds.
  sim.fault({ operation: 'pipelines.track', lose: 'reset', times: 1 })
  t.same(await pipelines(sim, fast).track({ userId: 'p1', event: 'retried' }), {})
  t.same(sim.requestsFor('pipelines.track').map((r) => [r.status, r.retryCount, r.applied]), [['reset', 0, true], [200, 1, true]])
  t.equal(sim.eventsFor('p1').filter((e) => e.name === 'retried').length, 1)
  t.equal(sim.discardedEvents.length, 3)

  sim.fault({ lose: 'reset', times: 1 })
  await t.rejects(strict(sim).track({ userId: 'p1', event: 'too big', properties: { blob: 'x'.repeat(40_000) } }))
  t.match(sim.requests.at(-1), { status: 'reset', applied: false }, 'a lost error answer applied nothing')
})

t.test('odd fields of a well-formed call are recorded as far as they make sense', async (t) => {
  const sim = await startSimulator(t)
  t.equal((await post(sim, '/track', JSON.stringify({ userId: 7, event: 'no timestamp', properties: 'text', anonymousId: 8 }))).status, 200)
  t.equal((await post(sim, '/screen', JSON.stringify({ anonymousId: 'a1', timestamp: 'yesterday', messageId: '' }))).status, 200)
  t.same(sim.events, [
    { id: undefined, type: 'event', name: 'no timestamp', customerId: '7', anonymousId: undefined, data: {}, timestamp: undefined, via: 'pipelines' },
    { id: undefined, type: 'screen', name: '', customerId: undefined, anonymousId: 'a1', data: {}, timestamp: undefined, via: 'pipelines' }
  ], 'an unparseable timestamp and an empty messageId count as none')
})
