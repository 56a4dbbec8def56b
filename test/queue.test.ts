import t from 'tap'
import { performance } from 'node:perf_hooks'
import type { FastifyInstance } from 'fastify'
import type { BatchOperation, CioQueueOptions, DropReason } from '../lib/index.ts'
import type { CioSimulator } from '../lib/testing/index.ts'
import { buildApp, rejection, scrape, series, simOptions, startSimulator } from './helpers.ts'

const Q = { queue: 'track' }

async function queueApp (t: Parameters<typeof startSimulator>[0], queue: CioQueueOptions = {}, sim?: CioSimulator, client = {}) {
  sim ??= await startSimulator(t)
  const built = await buildApp(t, simOptions(sim, { queue: { flushIntervalMs: 20, ...queue }, client: { timeout: 200, retry: { maxRetries: 1, minTimeoutMs: 1, maxTimeoutMs: 5 }, ...client } }))
  return { sim, ...built, queue: built.app.cio.queue! }
}

/** Operations the simulator accepted, in arrival order (a 207's rejected ones left out). */
function delivered (sim: CioSimulator): BatchOperation[] {
  return sim.requestsFor('batch').filter((r) => r.status === 200 || r.status === 207).flatMap((r) => (r.body as { batch: BatchOperation[] }).batch)
}

const idsOf = (ops: BatchOperation[]) => ops.map((op) => (op.identifiers as { id: string }).id)

async function metric (app: FastifyInstance, name: string, labels: Record<string, string> = Q) {
  return (await scrape(app)).get(series(name, labels))
}

t.test('each helper becomes the right Track v2 operation, in order', async (t) => {
  const { sim, queue } = await queueApp(t)
  t.equal(queue.identify('p1', { plan: 'pro' }), true)
  queue.track('p1', { name: 'signed_up', data: { source: 'ad' }, timestamp: 1_767_225_600 })
  queue.track('p1', { name: 'viewed' })
  queue.trackAnonymous('anon-1', { name: 'visited', data: { page: '/' } })
  queue.trackAnonymous('anon-2', { name: 'visited', timestamp: 5 })
  queue.trackPageView('p1', '/pricing')
  queue.addDevice('p1', 'token-1', 'ios', { app_version: '1.2' })
  queue.addDevice('p1', 'token-2', 'android')
  queue.deleteDevice('p1', 'token-1')
  queue.suppress('p2')
  queue.unsuppress('p2')
  queue.destroy(3)
  queue.enqueue({ type: 'object', action: 'identify', identifiers: { object_type_id: '1', object_id: 'acme' } })
  await queue.flush()
  t.same(delivered(sim), [
    { type: 'person', identifiers: { id: 'p1' }, action: 'identify', attributes: { plan: 'pro' } },
    { type: 'person', identifiers: { id: 'p1' }, action: 'event', name: 'signed_up', attributes: { source: 'ad' }, timestamp: 1_767_225_600 },
    { type: 'person', identifiers: { id: 'p1' }, action: 'event', name: 'viewed', attributes: {} },
    { type: 'person', action: 'event', anonymous_id: 'anon-1', name: 'visited', attributes: { page: '/' } },
    { type: 'person', action: 'event', anonymous_id: 'anon-2', name: 'visited', attributes: {}, timestamp: 5 },
    { type: 'person', identifiers: { id: 'p1' }, action: 'page', name: '/pricing' },
    { type: 'person', identifiers: { id: 'p1' }, action: 'add_device', device: { token: 'token-1', platform: 'ios', attributes: { app_version: '1.2' } } },
    { type: 'person', identifiers: { id: 'p1' }, action: 'add_device', device: { token: 'token-2', platform: 'android', attributes: {} } },
    { type: 'person', identifiers: { id: 'p1' }, action: 'delete_device', device: { token: 'token-1' } },
    { type: 'person', identifiers: { id: 'p2' }, action: 'suppress' },
    { type: 'person', identifiers: { id: 'p2' }, action: 'unsuppress' },
    { type: 'person', identifiers: { id: 3 }, action: 'delete' },
    { type: 'object', action: 'identify', identifiers: { object_type_id: '1', object_id: 'acme' } }
  ])
  t.equal(sim.requestsFor('batch').length, 1, 'one request for all of them')
})

t.test('bad operations throw FST_CIO_INVALID_OPERATION and are not queued', async (t) => {
  const { queue } = await queueApp(t)
  const cyclic: Record<string, unknown> = { type: 'person', action: 'identify' }
  cyclic.self = cyclic
  const bad: Array<[string, () => unknown, RegExp]> = [
    ['no id', () => queue.identify(''), /identify needs a customer id/],
    ['object id', () => queue.destroy({} as never), /delete needs a customer id/],
    ['no event name', () => queue.track('p', {} as never), /track needs data.name/],
    ['no event', () => queue.track('p', undefined as never), /track needs data.name/],
    ['anonymous id', () => queue.trackAnonymous('', { name: 'x' }), /trackAnonymous needs an anonymous id/],
    ['anonymous id type', () => queue.trackAnonymous({} as never, { name: 'x' }), /anonymous id/],
    ['anonymous name', () => queue.trackAnonymous('a', { name: '' }), /trackAnonymous needs data.name/],
    ['path', () => queue.trackPageView('p', ''), /needs a path/],
    ['device', () => queue.addDevice('p', '', 'ios'), /device id/],
    ['platform', () => queue.addDevice('p', 'tok', ''), /platform/],
    ['delete device', () => queue.deleteDevice('p', ''), /device id/],
    ['shape', () => queue.enqueue({ action: 'identify' } as never), /"type" and "action"/],
    ['null', () => queue.enqueue(null as never), /"type" and "action"/],
    ['cyclic', () => queue.enqueue(cyclic as BatchOperation), /serialised/]
  ]
  for (const [name, call, message] of bad) t.throws(call, { code: 'FST_CIO_INVALID_OPERATION', message }, name)
  t.equal(queue.depth, 0)
})

t.test('batches by count, by bytes and by time', async (t) => {
  const { sim, queue } = await queueApp(t, { batchSize: 10, flushIntervalMs: 60_000 })
  for (let i = 0; i < 25; i++) queue.identify(`p${i}`)
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.same(sim.requestsFor('batch').map((r) => (r.body as { batch: unknown[] }).batch.length), [10, 10], 'full batches go at once')
  t.equal(queue.depth, 5, 'the partial batch waits for the interval')
  await queue.flush()
  t.equal(sim.requestsFor('batch').length, 3)

  const bytes = await queueApp(t, { batchSize: 1000, flushIntervalMs: 10 })
  for (let i = 0; i < 40; i++) bytes.queue.identify(`p${i}`, { bio: 'x'.repeat(30_000) })
  await bytes.queue.flush()
  const sizes = bytes.sim.requestsFor('batch').map((r) => JSON.stringify(r.body).length)
  t.ok(sizes.length >= 3, `split by bytes into ${sizes.length} requests`)
  for (const size of sizes) t.ok(size <= 500_000, `${size} bytes ≤ 500 KB`)
  t.equal(delivered(bytes.sim).length, 40)

  const timed = await queueApp(t, { batchSize: 100, flushIntervalMs: 30 })
  timed.queue.identify('only-one')
  t.equal(timed.sim.requestsFor('batch').length, 0)
  await new Promise((resolve) => setTimeout(resolve, 120))
  t.same(idsOf(delivered(timed.sim)), ['only-one'], 'sent after the interval')

  timed.queue.identify('flushed-early')
  await timed.queue.flush()
  await new Promise((resolve) => setTimeout(resolve, 60))
  t.equal(timed.sim.requestsFor('batch').length, 2, 'the interval timer finds nothing left after an explicit flush')
})

t.test('an operation over 32 KB is dropped as too_large, counted and handed to onDrop', async (t) => {
  const drops: Array<[number, DropReason]> = []
  const { app, queue } = await queueApp(t, { onDrop: (ops, reason) => drops.push([ops.length, reason]) })
  t.equal(queue.identify('big', { blob: 'x'.repeat(33 * 1024) }), false)
  t.same(drops, [[1, 'too_large']])
  t.equal(await metric(app, 'cio_queue_dropped_total', { queue: 'track', reason: 'too_large' }), 1)
})

t.test('a full queue drops the newest (overflow) and counts exactly', async (t) => {
  const sim = await startSimulator(t)
  sim.fault({ api: 'track', hang: true })
  const dropped: BatchOperation[] = []
  const { app, queue, logs } = await queueApp(t, { maxSize: 50, batchSize: 10, onDrop: (ops) => dropped.push(...ops), shutdownTimeoutMs: 0 }, sim)
  let accepted = 0
  for (let i = 0; i < 200; i++) if (queue.identify(`p${i}`)) accepted++
  t.equal(accepted, 50)
  t.equal(dropped.length, 150)
  t.equal(idsOf(dropped)[0], 'p50', 'the newest are the ones dropped')
  t.equal(await metric(app, 'cio_queue_dropped_total', { queue: 'track', reason: 'overflow' }), 150)
  t.equal(await metric(app, 'cio_queue_capacity'), 50)
  t.ok((await metric(app, 'cio_queue_depth'))! >= 40)
  t.ok(logs.lines.filter((l) => l.reason === 'overflow').length <= 2, 'drops are logged in summary, not per operation')
})

t.test('a 207 drops the rejected operations with reason rejected and sends the rest', async (t) => {
  const sim = await startSimulator(t, { rejectBatchOperation: (op) => (op as { identifiers: { id: string } }).identifiers.id.startsWith('bad') ? 'invalid email attribute jane@example.com' : undefined })
  const drops: BatchOperation[] = []
  const { app, queue, logs } = await queueApp(t, { onDrop: (ops, reason) => { t.equal(reason, 'rejected'); drops.push(...ops) } }, sim)
  for (const id of ['ok1', 'bad1', 'ok2', 'bad2', 'ok3']) queue.identify(id)
  await queue.flush()
  t.same(idsOf(drops), ['bad1', 'bad2'])
  t.equal(await metric(app, 'cio_queue_dropped_total', { queue: 'track', reason: 'rejected' }), 2)
  t.equal(await metric(app, 'cio_queue_sent_total'), 3)
  const line = logs.lines.find((l) => l.msg === 'customer.io rejected queued operations')!
  t.equal(line.rejected, 2)
  t.notMatch(JSON.stringify(line), /jane@example\.com/, 'the API\'s reason is logged sanitised')
  t.match(JSON.stringify(line), /invalid email attribute/)
})

t.test('a batch that keeps failing is retried at the front, then dropped as exhausted', async (t) => {
  const sim = await startSimulator(t)
  sim.fault({ operation: 'batch', status: 500, times: 4 })
  const drops: Array<[string[], DropReason]> = []
  const { app, queue } = await queueApp(t, { batchSize: 2, maxAttempts: 2, onDrop: (ops, reason) => drops.push([idsOf(ops), reason]) }, sim)
  queue.identify('a'); queue.identify('b'); queue.identify('c')
  await queue.flush()
  t.same(drops, [[['a', 'b'], 'exhausted']])
  t.same(idsOf(delivered(sim)), ['c'])
  t.equal(await metric(app, 'cio_queue_dropped_total', { queue: 'track', reason: 'exhausted' }), 2)
  t.equal(await metric(app, 'cio_api_errors_total', { api: 'track', operation: 'batch', error_type: '500' }), 2, 'batch calls go through fastify.cio')
})

t.test('an outage: enqueue stays fast, and afterwards every accepted operation arrives exactly once, in order', async (t) => {
  const sim = await startSimulator(t, { seed: 11 })
  const { app, queue } = await queueApp(t, { maxSize: 5_000, batchSize: 50, flushIntervalMs: 5, maxAttempts: 1_000_000 }, sim, { timeout: 40 })
  const outage = [
    sim.fault({ operation: 'batch', status: 503, ratio: 0.4, times: Infinity }),
    sim.fault({ operation: 'batch', status: 429, retryAfter: 0, ratio: 0.3, times: Infinity }),
    sim.fault({ operation: 'batch', hang: true, ratio: 0.2, times: Infinity }),
    sim.fault({ operation: 'batch', reset: true, ratio: 0.5, times: Infinity })
  ]
  let accepted = 0
  let slowest = 0
  const drops: unknown[] = []
  const unhandled: unknown[] = []
  const onUnhandled = (err: unknown) => unhandled.push(err)
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => process.off('unhandledRejection', onUnhandled))
  const deadline = Date.now() + 600
  for (let i = 0; Date.now() < deadline; i++) {
    const start = performance.now()
    if (queue.identify(`p${i}`, { n: i })) accepted++
    else drops.push(i)
    slowest = Math.max(slowest, performance.now() - start)
    if (i % 20 === 0) await new Promise((resolve) => setTimeout(resolve, 1))
  }
  t.ok(slowest < 50, `every enqueue returned at once (slowest ${slowest.toFixed(2)} ms)`)
  t.ok(sim.requestsFor('batch').some((r) => r.status !== 200), 'the outage did hit the batches')
  for (const end of outage) end()
  await queue.flush()
  const ids = idsOf(delivered(sim))
  t.equal(ids.length, accepted, `all ${accepted} accepted operations arrived`)
  t.equal(new Set(ids).size, ids.length, 'none twice')
  t.same(ids, [...ids].sort((a, b) => Number(a.slice(1)) - Number(b.slice(1))), 'in order')
  t.equal(drops.length, 0, 'within capacity nothing was dropped')
  t.equal(await metric(app, 'cio_queue_sent_total'), accepted)
  t.same(unhandled, [])
})

t.test('close flushes what the simulator can take; the rest is dropped as shutdown', async (t) => {
  const { sim, app, queue } = await queueApp(t, { flushIntervalMs: 60_000 })
  for (let i = 0; i < 250; i++) queue.identify(`p${i}`)
  await app.close()
  t.equal(delivered(sim).length, 250, 'close sent everything')
  t.equal(queue.identify('late'), false, 'a closed queue takes nothing more')

  const stuck = await startSimulator(t)
  stuck.fault({ hang: true })
  const drops: Array<[number, DropReason]> = []
  const closing = await queueApp(t, { shutdownTimeoutMs: 100, batchSize: 10, onDrop: (ops, reason) => drops.push([ops.length, reason]) }, stuck, { timeout: 300, retry: { maxRetries: 0 } })
  for (let i = 0; i < 35; i++) closing.queue.identify(`p${i}`)
  await new Promise((resolve) => setTimeout(resolve, 20))
  const shutdownTimer = closing.app.metrics.client.register
  await closing.app.close()
  t.same(drops, [[25, 'shutdown']], 'the queued ones are dropped at the deadline')
  await new Promise((resolve) => setTimeout(resolve, 400))
  t.same(drops, [[25, 'shutdown'], [10, 'shutdown']], 'the batch in flight is dropped when it fails after the deadline')
  t.ok(shutdownTimer)
})

t.test('onDrop failures are logged, never thrown', async (t) => {
  const { queue, logs } = await queueApp(t, { maxSize: 1, onDrop: () => { throw new Error('disk full') } })
  queue.identify('a')
  t.equal(queue.identify('b'), false)
  t.match(logs.lines.find((l) => l.msg === 'customer.io queue onDrop failed'), { err: { message: 'disk full' } })
})

t.test('queue options', async (t) => {
  const sim = await startSimulator(t)
  const none = await buildApp(t, simOptions(sim, { siteId: undefined, trackApiKey: undefined }))
  t.equal(none.app.cio.queue, undefined, 'no Track credentials, no queue')
  const off = await buildApp(t, simOptions(sim, { queue: false }))
  t.equal(off.app.cio.queue, undefined)
  const on = await buildApp(t, simOptions(sim))
  t.equal(await metric(on.app, 'cio_queue_capacity'), 10_000, 'on by default with Track credentials')
  const { default: Fastify } = await import('fastify')
  const { default: cio } = await import('../lib/index.ts')
  for (const [queue, message] of [
    [{}, /"queue".*Track credentials/],
    [true, /"queue"/],
    [{ batchsize: 5 }, /"queue.batchsize"/],
    [{ maxSize: 0 }, /"queue.maxSize"/],
    [{ onDrop: 'x' }, /"queue.onDrop"/]
  ] as const) {
    const app = Fastify()
    const creds = queue === undefined || (typeof queue === 'object' && Object.keys(queue).length === 0) ? { siteId: undefined, trackApiKey: undefined } : {}
    app.register(cio, simOptions(sim, { ...creds, queue: queue as never }))
    t.match(await rejection(app.ready()), { code: 'FST_CIO_INVALID_OPTIONS', message })
    await app.close()
  }
})
