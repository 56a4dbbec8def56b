import t from 'tap'
import type { CioQueueOptions, DropReason, QueueItem } from '../../lib/index.ts'
import type { CioSimulator } from '../../lib/testing/index.ts'
import { buildApp, metric, rejection, simOptions, startSimulator } from '../helpers.ts'

type T = Parameters<typeof startSimulator>[0]

const P = { queue: 'pipelines' }
const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/

/** Short backoff, so a test's outage is over in milliseconds; no SDK retries, so every re-send is the queue's. */
const FAST = { flushIntervalMs: 20, retryDelayMs: 1, maxRetryDelayMs: 4 }

/** An app whose queue has only a Pipelines write key, so it sends through Pipelines. */
async function pipelinesApp (t: T, queue: CioQueueOptions = {}, sim?: CioSimulator, extra: Record<string, unknown> = {}) {
  sim ??= await startSimulator(t)
  const built = await buildApp(t, {
    ...simOptions(sim),
    siteId: undefined,
    trackApiKey: undefined,
    pipelinesWriteKey: sim.pipelinesWriteKey,
    client: { retry: { maxRetries: 0 } },
    queue: { ...FAST, ...queue },
    ...extra
  })
  return { sim, ...built, queue: built.app.cio.queue! }
}

/** Items Pipelines accepted, in arrival order, re-sends included. */
const accepted = (sim: CioSimulator) => sim.pipelinesCalls.map((c) => c.payload)

/** An item as the queue built it: without what the SDK adds on the way (`timestamp`, `context`) and the queue's `messageId`. */
function shape ({ messageId: _, context: __, timestamp, ...item }: Record<string, unknown>, keepTimestamp = false) {
  return keepTimestamp ? { ...item, timestamp } : item
}

/** An identify item of `bytes` bytes as queued (messageId included). */
function sized (bytes: number) {
  const item = { type: 'identify' as const, userId: 'fits', messageId: '01JGZ8K3M4N5P6Q7R8S9T0V1W2', traits: { b: '' } }
  return { ...item, traits: { b: 'x'.repeat(bytes - Buffer.byteLength(JSON.stringify(item))) } }
}

const userIds = (items: readonly unknown[]) => items.map((item) => (item as { userId?: string }).userId)

t.test('each method becomes the right Pipelines item, in order, each with its own ULID messageId, in one batch', async (t) => {
  const { sim, app, queue } = await pipelinesApp(t)
  t.equal(queue.identify('p1', { plan: 'pro' }), true)
  queue.identify(7)
  queue.track('p1', { name: 'signed_up', data: { source: 'ad' }, timestamp: 1_767_225_600 })
  queue.track('p1', { name: 'viewed' })
  queue.trackAnonymous('anon-1', { name: 'visited', data: { page: '/' } })
  queue.trackPageView('p1', '/pricing')
  queue.group('p1', 'acme', { plan: 'enterprise' })
  queue.group('p2', 'acme')
  queue.alias('p1', 'anon-1')
  const raw = { type: 'screen' as const, userId: 'p1', name: 'home' }
  queue.enqueue(raw)
  const own = { type: 'track' as const, anonymousId: 'anon-2', event: 'clicked', messageId: '01JGZ8K3M4N5P6Q7R8S9T0V1W2' }
  queue.enqueue(own)
  await queue.flush()

  t.equal(sim.requestsFor('pipelines.batch').length, 1, 'one request for all of them')
  t.equal(sim.requests.length, 1, 'nothing sent through Track')
  const items = accepted(sim)
  t.same(items.map((item) => shape(item)), [
    { type: 'identify', userId: 'p1', traits: { plan: 'pro' } },
    { type: 'identify', userId: 7, traits: {} },
    { type: 'track', userId: 'p1', event: 'signed_up', properties: { source: 'ad' } },
    { type: 'track', userId: 'p1', event: 'viewed', properties: {} },
    { type: 'track', anonymousId: 'anon-1', event: 'visited', properties: { page: '/' } },
    { type: 'page', userId: 'p1', name: '/pricing' },
    { type: 'group', userId: 'p1', groupId: 'acme', traits: { plan: 'enterprise' } },
    { type: 'group', userId: 'p2', groupId: 'acme', traits: {} },
    { type: 'alias', userId: 'p1', previousId: 'anon-1' },
    { type: 'screen', userId: 'p1', name: 'home' },
    { type: 'track', anonymousId: 'anon-2', event: 'clicked' }
  ])
  t.equal(items[2]!.timestamp, '2026-01-01T00:00:00.000Z', 'a Unix-seconds timestamp goes as an ISO time')
  const ids = items.map((item) => item.messageId as string)
  for (const [i, id] of ids.entries()) t.match(id, ULID, `item ${i} has a ULID messageId`)
  t.equal(new Set(ids).size, ids.length, 'each its own')
  t.equal(ids.at(-1), own.messageId, 'a messageId the caller set is kept')
  t.same(raw, { type: 'screen', userId: 'p1', name: 'home' }, 'the caller\'s object is not changed')
  t.same(sim.events.map((e) => [e.type, e.name, e.customerId ?? e.anonymousId, e.via]), [
    ['event', 'signed_up', 'p1', 'pipelines'],
    ['event', 'viewed', 'p1', 'pipelines'],
    ['event', 'visited', 'anon-1', 'pipelines'],
    ['page', '/pricing', 'p1', 'pipelines'],
    ['screen', 'home', 'p1', 'pipelines'],
    ['event', 'clicked', 'anon-2', 'pipelines']
  ], 'the events reached the histories')
  t.equal(await metric(app, 'cio_queue_sent_total', P), 11)
  t.equal(await metric(app, 'cio_queue_capacity', P), 10_000)
  t.equal(await metric(app, 'cio_api_requests_total', { api: 'pipelines', operation: 'batch' }), 1, 'batches go through fastify.cio')
  t.match(await rejection(metric(app, 'cio_queue_sent_total', { queue: 'track' })), /no series/, 'no Track queue series')
})

t.test('with both credentials the queue defaults to Track; api: \'pipelines\' chooses Pipelines', async (t) => {
  const sim = await startSimulator(t)
  const both = await buildApp(t, simOptions(sim, { queue: FAST }))
  both.app.cio.queue!.track('p1', { name: 'e' })
  await both.app.cio.queue!.flush()
  t.same(sim.requests.map((r) => r.operation), ['batch'])
  const chosen = await buildApp(t, simOptions(sim, { queue: { ...FAST, api: 'pipelines' } }))
  chosen.app.cio.queue!.track('p1', { name: 'e' })
  await chosen.app.cio.queue!.flush()
  t.same(sim.requests.map((r) => r.operation), ['batch', 'pipelines.batch'])
  t.same(sim.events.map((e) => e.via), ['v2', 'pipelines'])
})

t.test('invalid operations throw FST_CIO_INVALID_OPERATION and are not queued', async (t) => {
  const { sim, queue } = await pipelinesApp(t)
  const bad: Array<[string, () => unknown, RegExp]> = [
    ['destroy', () => queue.destroy('p1'), /destroy is Track-only/],
    ['suppress', () => queue.suppress('p1'), /suppress is Track-only/],
    ['unsuppress', () => queue.unsuppress('p1'), /unsuppress is Track-only/],
    ['addDevice', () => queue.addDevice('p1', 'tok', 'ios'), /addDevice is Track-only/],
    ['deleteDevice', () => queue.deleteDevice('p1', 'tok'), /deleteDevice is Track-only/],
    ['no id', () => queue.identify(''), /identify item needs userId or anonymousId/],
    ['blank id', () => queue.identify('  '), /userId or anonymousId/],
    ['object id', () => queue.identify({} as never), /userId or anonymousId/],
    ['no event name', () => queue.track('p1', {} as never), /track needs data.name/],
    ['no event', () => queue.track('p1', undefined as never), /track needs data.name/],
    ['bad timestamp', () => queue.track('p1', { name: 'e', timestamp: 'yesterday' as never }), /timestamp must be Unix seconds/],
    ['anonymous id', () => queue.trackAnonymous('', { name: 'e' }), /userId or anonymousId/],
    ['path', () => queue.trackPageView('p1', ''), /needs a path/],
    ['group id', () => queue.group('p1', ''), /group item needs groupId/],
    ['alias previous id', () => queue.alias('p1', ''), /alias item needs previousId/],
    ['alias user id', () => queue.alias('', 'anon'), /alias item needs userId/],
    ['null', () => queue.enqueue(null as never), /"type" identify, track, page, screen, group, alias/],
    ['array', () => queue.enqueue([] as never), /"type"/],
    ['unknown type', () => queue.enqueue({ type: 'merge', userId: 'p1' } as never), /"type"/],
    ['inherited type', () => queue.enqueue({ type: 'constructor', userId: 'p1' } as never), /"type"/],
    ['a Track operation', () => queue.enqueue({ type: 'person', action: 'identify', identifiers: { id: 'p1' } }), /"type"/],
    ['raw track without event', () => queue.enqueue({ type: 'track', userId: 'p1' } as never), /track item needs event/],
    ['raw page without anyone', () => queue.enqueue({ type: 'page', name: '/' } as never), /page item needs userId or anonymousId/]
  ]
  for (const [name, call, message] of bad) t.throws(call, { code: 'FST_CIO_INVALID_OPERATION', message }, name)
  t.equal(queue.depth, 0)
  await queue.flush()
  t.equal(sim.requests.length, 0, 'nothing sent')

  const track = await buildApp(t, simOptions(sim, { queue: FAST }))
  const overTrack = track.app.cio.queue!
  t.throws(() => overTrack.group('p1', 'acme'), { code: 'FST_CIO_INVALID_OPERATION', message: /group is Pipelines-only/ })
  t.throws(() => overTrack.alias('p1', 'anon'), { code: 'FST_CIO_INVALID_OPERATION', message: /alias is Pipelines-only/ })
  t.throws(() => overTrack.enqueue({ type: 'identify', userId: 'p1' }), { code: 'FST_CIO_INVALID_OPERATION', message: /"type" and "action"/ }, 'a Pipelines item over Track')
  t.equal(overTrack.depth, 0)
})

t.test('an item over 32 KB as sent is dropped as too_large; batches stay within 500 KB as sent', async (t) => {
  const drops: Array<[number, DropReason]> = []
  const { sim, app, queue } = await pipelinesApp(t, { batchSize: 1000, onDrop: (ops, reason) => drops.push([ops.length, reason]) })
  t.equal(queue.identify('big', { blob: 'x'.repeat(33 * 1024) }), false)
  // Fits as queued, not once the SDK has added its timestamp and context.
  t.equal(queue.enqueue(sized(32 * 1024 - 50)), false)
  t.equal(queue.enqueue(sized(32 * 1024 - 200)), true, 'one with room for them is taken')
  t.same(drops, [[1, 'too_large'], [1, 'too_large']])
  await queue.flush()
  t.same(userIds(accepted(sim)), ['fits'], 'and Pipelines took it')
  t.equal(await metric(app, 'cio_queue_dropped_total', { queue: 'pipelines', reason: 'too_large' }), 2)

  for (let i = 0; i < 40; i++) queue.identify(`p${i}`, { bio: 'x'.repeat(30_000) })
  await queue.flush()
  const batches = sim.requestsFor('pipelines.batch').slice(1)
  t.ok(batches.length >= 3, `split by bytes into ${batches.length} requests`)
  for (const r of batches) t.ok(Buffer.byteLength(JSON.stringify(r.body)) <= 500 * 1024 && r.applied, 'within 500 KB as sent, and applied')
  t.same(userIds(accepted(sim).slice(1)), Array.from({ length: 40 }, (_, i) => `p${i}`), 'all of them, in order')
})

t.test('an outage of 503s, hangs, resets and lost answers: nothing dropped, every item recorded once, in order per person', async (t) => {
  const sim = await startSimulator(t, { seed: 7 })
  // A hang needs a timeout; it fires against a server that never answers, so it races nothing.
  const { app, queue } = await pipelinesApp(t, { maxSize: 5_000, batchSize: 50 }, sim, { client: { retry: { maxRetries: 0 }, timeout: 2_000 } })
  sim.fault({ operation: 'pipelines.batch', lose: 'reset', ratio: 0.3, times: 3 })
  sim.fault({ operation: 'pipelines.batch', status: 503, ratio: 0.5, times: 6 })
  sim.fault({ operation: 'pipelines.batch', hang: true, ratio: 0.3, times: 2 })
  sim.fault({ operation: 'pipelines.batch', reset: true, ratio: 0.5, times: 4 })
  const people = Array.from({ length: 10 }, (_, i) => `p${i}`)
  const steps = new Map<string, number[]>(people.map((p) => [p, []]))
  let taken = 0
  for (let i = 0; i < 1_000; i++) {
    const person = people[(i * 7) % people.length]!
    if (i % 99 === 0) {
      if (queue.identify(person, { n: i })) taken++
      continue
    }
    steps.get(person)!.push(i)
    if (queue.track(person, { name: 'step', data: { n: i } })) taken++
  }
  t.equal(taken, 1_000, 'all accepted: enqueue answers at once, whatever the API does')
  await queue.flush()
  const statuses = new Set(sim.requestsFor('pipelines.batch').map((r) => `${r.status}${r.applied ? ' applied' : ''}`))
  t.same([...statuses].sort(), ['200 applied', '503', 'hang', 'reset', 'reset applied'], 'every kind of failure hit the batches')
  const ids = new Set(accepted(sim).map((item) => item.messageId))
  t.equal(ids.size, 1_000, 'every item reached Pipelines, each with one messageId however often it was sent')
  t.ok(accepted(sim).length > 1_000, `the lost answers' batches were sent again (${accepted(sim).length} items received)`)
  t.equal(sim.events.length, 1_000 - 11, 'the histories hold every event once')
  t.ok(sim.discardedEvents.length > 0, `re-sent events were discarded by messageId (${sim.discardedEvents.length})`)
  for (const person of people) t.same(sim.eventsFor(person).map((e) => e.data.n), steps.get(person), `${person}: every event, once, in order`)
  for (const reason of ['overflow', 'too_large', 'rejected', 'shutdown']) {
    t.equal(await metric(app, 'cio_queue_dropped_total', { queue: 'pipelines', reason }), 0, `none dropped as ${reason}`)
  }
  t.equal(await metric(app, 'cio_queue_sent_total', P), 1_000)
  t.ok(await metric(app, 'cio_queue_retries_total', P) > 0, 'retries were counted')
})

t.test('a batch whose answer is lost is sent again with the same messageIds, and Pipelines discards the copies', async (t) => {
  const sim = await startSimulator(t)
  sim.fault({ operation: 'pipelines.batch', lose: 'reset', times: 1 })
  const { app, queue } = await pipelinesApp(t, { batchSize: 5 }, sim)
  for (let i = 0; i < 5; i++) queue.track('p1', { name: `e${i}` })
  await queue.flush()
  const [first, second] = sim.requestsFor('pipelines.batch').map((r) => (r.body as { batch: Array<{ messageId: string }> }).batch.map((item) => item.messageId))
  t.same(second, first, 'the same messageIds')
  t.same(sim.eventsFor('p1').map((e) => e.name), ['e0', 'e1', 'e2', 'e3', 'e4'], 'recorded once, in order')
  t.equal(sim.discardedEvents.length, 5, 'the copies were discarded')
  t.equal(await metric(app, 'cio_queue_retries_total', P), 1)
  t.equal(await metric(app, 'cio_queue_sent_total', P), 5)
})

t.test('a batch refused for its content (400, strict mode) is dropped as rejected, not sent again; the next batch goes on', async (t) => {
  const sim = await startSimulator(t)
  sim.fault({ operation: 'pipelines.batch', status: 400, times: 1 })
  const drops: Array<[unknown[], DropReason]> = []
  const { app, queue, logs } = await pipelinesApp(t, { batchSize: 2, onDrop: (ops, reason) => drops.push([userIds(ops), reason]) }, sim, { pipelines: { strictMode: true } })
  queue.identify('a'); queue.identify('b'); queue.identify('c')
  await queue.flush()
  t.same(drops, [[['a', 'b'], 'rejected']])
  t.same(userIds(accepted(sim)), ['c'], 'the next batch was sent')
  t.equal(await metric(app, 'cio_queue_dropped_total', { queue: 'pipelines', reason: 'rejected' }), 2)
  t.equal(await metric(app, 'cio_queue_retries_total', P), 0, 'never sent again')
  t.equal(await metric(app, 'cio_queue_sent_total', P), 1)
  t.equal(await metric(app, 'cio_api_errors_total', { api: 'pipelines', operation: 'batch', error_type: '400' }), 1, 'batch calls go through fastify.cio')
  t.ok(logs.lines.some((l) => l.msg === 'customer.io refused a queued batch'))
})

t.test('a full queue drops the newest as overflow', async (t) => {
  const sim = await startSimulator(t)
  sim.fault({ api: 'pipelines', hang: true })
  const dropped: QueueItem[] = []
  const { app, queue } = await pipelinesApp(t, { maxSize: 20, batchSize: 5, shutdownTimeoutMs: 0, onDrop: (ops) => dropped.push(...ops) }, sim)
  let taken = 0
  for (let i = 0; i < 50; i++) if (queue.track(`p${i}`, { name: 'e' })) taken++
  t.equal(taken, 20)
  t.equal(userIds(dropped)[0], 'p20', 'the newest are the ones dropped')
  t.equal(await metric(app, 'cio_queue_dropped_total', { queue: 'pipelines', reason: 'overflow' }), 30)
})

t.test('app.close() under a hanging API hands every accepted item to onDrop as shutdown, the batch in flight first', async (t) => {
  const sim = await startSimulator(t)
  sim.fault({ api: 'pipelines', hang: true })
  const drops: Array<[unknown[], DropReason]> = []
  const { app, queue } = await pipelinesApp(t, { shutdownTimeoutMs: 100, batchSize: 10, onDrop: (ops, reason) => drops.push([ops, reason]) }, sim)
  for (let i = 0; i < 35; i++) queue.track(`p${i}`, { name: 'e' })
  await sim.until((s) => s.requestsFor('pipelines.batch').length === 1)
  await app.close()
  t.same(drops.map(([ops, reason]) => [userIds(ops), reason]), [[Array.from({ length: 35 }, (_, i) => `p${i}`), 'shutdown']])
  for (const item of drops[0]![0]) t.match((item as { messageId: string }).messageId, ULID)
  t.equal(queue.track('late', { name: 'e' }), false, 'a closed queue takes nothing more')
  t.same(drops[1]?.[1], 'shutdown')
  await sim.until((s) => s.openConnections === 0)
  t.pass('the hanging connection was closed by the plugin')
})
