import t, { type Test } from 'tap'
import promClient from '@prometheus-io/client'
import { TrackClient } from 'customerio-node'
import { Agent } from 'undici'
import type { BatchOperation, CioQueueOptions, DropReason } from '../../lib/index.ts'
import { createMetrics, type PromClient } from '../../lib/monitoring/metrics.ts'
import { QUEUE_DEFAULTS } from '../../lib/queue/options.ts'
import { CioQueue } from '../../lib/queue/queue.ts'
import type { CioSimulator } from '../../lib/testing/index.ts'
import { JitterClock, ManualClock } from '../fixtures/clock.ts'
import { buildApp, metric, registryMetric, rejection, simOptions, startSimulator } from '../helpers.ts'
import pino from 'pino'

const Q = { queue: 'track' }

type T = Parameters<typeof startSimulator>[0]

/** Short backoff, so a test's outage is over in milliseconds; no SDK retries, so every re-send is the queue's. */
const FAST = { flushIntervalMs: 20, retryDelayMs: 1, maxRetryDelayMs: 4 }

async function queueApp (t: T, queue: CioQueueOptions = {}, sim?: CioSimulator, client = {}) {
  sim ??= await startSimulator(t)
  const built = await buildApp(t, simOptions(sim, { queue: { ...FAST, ...queue }, client: { retry: { maxRetries: 0 }, ...client } }))
  return { sim, ...built, queue: built.app.cio.queue! }
}

type ClockClass = typeof ManualClock | typeof JitterClock

/** The clocks a test of timing runs under: an exact one, and one at least as hostile as real timers. */
const CLOCKS: readonly ClockClass[] = [ManualClock, JitterClock]

/** Runs `fn` as one subtest per clock, named after the clock. */
function underEachClock (name: string, fn: (t: Test, Clock: ClockClass) => Promise<void>): void {
  t.test(name, async (t) => {
    for (const Clock of CLOCKS) await t.test(Clock.name, (t) => fn(t, Clock))
  })
}

/**
 * A queue on a clock the test moves, sending through a real TrackClient to the simulator;
 * `sends` holds every batch call, so a test can wait for the last one to settle.
 */
async function clockedQueue (t: T, settings: Partial<typeof QUEUE_DEFAULTS> = {}, sim?: CioSimulator, Clock: ClockClass = ManualClock) {
  sim ??= await startSimulator(t)
  const clock = new Clock()
  const agent = new Agent()
  t.teardown(() => agent.destroy())
  const client = new TrackClient(sim.siteId, sim.trackApiKey, { region: sim.region, dispatcher: agent, retry: { maxRetries: 0 } } as never)
  const registry = { ...promClient, register: new promClient.Registry() } as unknown as PromClient
  const sends: Array<Promise<unknown>> = []
  const drops: Array<[BatchOperation[], DropReason]> = []
  let inFlight = 0
  const send = (ops: BatchOperation[]) => {
    const sent = client.batch(ops as never)
    sends.push(sent)
    inFlight++
    sent.then(() => inFlight--, () => inFlight--)
    return sent
  }
  const queue = new CioQueue({ ...QUEUE_DEFAULTS, api: 'track', ...FAST, ...settings, onDrop: (ops, reason) => drops.push([ops as BatchOperation[], reason]) },
    send, createMetrics(registry, { version: '0', sdkVersion: '0' }), pino({ level: 'silent' }), clock, () => 0.5)
  /** Resolves once every batch call so far has settled and the queue has reacted to it (batches it then started included). */
  const settled = async () => {
    for (let seen = -1; seen !== sends.length;) {
      seen = sends.length
      await Promise.allSettled(sends)
      await new Promise(setImmediate)
    }
  }
  /** Whether the queue goes on by itself: nothing waiting, or a batch in flight, or a timer armed. */
  const alive = () => queue.depth === 0 || inFlight > 0 || clock.armed > 0
  /**
   * Moves the clock on `step` ms at a time, letting the queue react after each move, until
   * `done()`; answers how many moves that took. Throws when the queue is wedged (operations
   * waiting, no batch in flight, no timer armed) or not done after `max` moves.
   */
  const until = async (done: () => boolean, step: number, max: number): Promise<number> => {
    for (let moves = 0; ; moves++) {
      await settled()
      if (done()) return moves
      if (!alive()) throw new Error(`wedged after ${moves} moves of ${step} ms: ${queue.depth} operations waiting, no batch in flight, no timer armed`)
      if (moves === max) throw new Error(`not done after ${max} moves of ${step} ms (depth ${queue.depth}, ${inFlight} in flight, ${clock.armed} timers armed)`)
      clock.advance(step)
    }
  }
  return { sim, clock, queue, sends, drops, agent, register: registry.register, settled, alive, until }
}

const events = (sim: CioSimulator) => sim.events.map((e) => e.customerId)

/** Operations the simulator accepted, in arrival order (a 207's rejected ones left out). */
function delivered (sim: CioSimulator): BatchOperation[] {
  return sim.requestsFor('batch').filter((r) => r.status === 200 || r.status === 207).flatMap((r) => (r.body as { batch: BatchOperation[] }).batch)
}

const idsOf = (ops: BatchOperation[]) => ops.map((op) => (op.identifiers as { id: string }).id)

t.test('each helper becomes the right Track v2 operation, in order; events carry a ULID id', async (t) => {
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
  const own = { type: 'person', action: 'screen', identifiers: { id: 'p1' }, name: 'home', id: '01JGZ8K3M4N5P6Q7R8S9T0V1W2' }
  queue.enqueue(own)
  await queue.flush()
  const sent = delivered(sim)
  const ids = sent.map((op) => op.id)
  for (const [i, id] of ids.entries()) {
    if (['event', 'page', 'screen'].includes(sent[i]!.action)) t.match(id, /^[0-9A-HJKMNP-TV-Z]{26}$/, `${sent[i]!.action} ${i} has a ULID id`)
    else t.equal(id, undefined, `${sent[i]!.action} ${i} has none`)
  }
  t.equal(new Set(ids.filter(Boolean)).size, 6, 'each event its own id')
  t.equal(ids[13], own.id, 'an id the caller set is kept')
  t.notOk('id' in own && own.id !== '01JGZ8K3M4N5P6Q7R8S9T0V1W2', 'the caller\'s object is not changed')
  t.same(sent.map(({ id: _, ...op }) => op), [
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
    { type: 'object', action: 'identify', identifiers: { object_type_id: '1', object_id: 'acme' } },
    { type: 'person', action: 'screen', identifiers: { id: 'p1' }, name: 'home' }
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

t.test('batches by count at once, a partial batch after the flush interval (on a clock the test moves)', async (t) => {
  const { sim, clock, queue, settled } = await clockedQueue(t, { batchSize: 10, flushIntervalMs: 60_000 })
  for (let i = 0; i < 25; i++) queue.identify(`p${i}`)
  await sim.until((s) => s.requestsFor('batch').length === 2)
  await settled()
  t.same(sim.requestsFor('batch').map((r) => (r.body as { batch: unknown[] }).batch.length), [10, 10], 'full batches go at once')
  t.equal(queue.depth, 5, 'the partial batch waits for the interval')
  clock.advance(59_999)
  t.equal(sim.requestsFor('batch').length, 2, 'not before the interval')
  clock.advance(1)
  await sim.until((s) => s.requestsFor('batch').length === 3)
  t.equal(queue.depth, 0)

  const one = await clockedQueue(t, { flushIntervalMs: 30 })
  one.queue.identify('only-one')
  clock.advance(1_000)
  t.equal(one.sends.length, 0, 'another queue\'s clock moves nothing here')
  one.clock.advance(29)
  t.equal(one.sends.length, 0, 'not before the interval')
  one.clock.advance(1)
  t.equal(one.sends.length, 1, 'sent when the interval has passed')
  await one.sim.until((s) => s.requestsFor('batch').length === 1)
  t.same(idsOf(delivered(one.sim)), ['only-one'])

  one.queue.identify('flushed-early')
  await one.queue.flush()
  t.equal(one.sends.length, 2)
  one.clock.advance(30)
  t.equal(one.sends.length, 2, 'the interval timer finds nothing left after an explicit flush')
  t.equal(one.clock.pending, 0)
})

t.test('batches by bytes', async (t) => {
  const bytes = await queueApp(t, { batchSize: 1000 })
  for (let i = 0; i < 40; i++) bytes.queue.identify(`p${i}`, { bio: 'x'.repeat(30_000) })
  await bytes.queue.flush()
  const sizes = bytes.sim.requestsFor('batch').map((r) => JSON.stringify(r.body).length)
  t.ok(sizes.length >= 3, `split by bytes into ${sizes.length} requests`)
  for (const size of sizes) t.ok(size <= 500_000, `${size} bytes ≤ 500 KB`)
  t.equal(delivered(bytes.sim).length, 40)

  const small = await queueApp(t, { batchSize: 1000, maxBatchBytes: 100_000 })
  for (let i = 0; i < 10; i++) small.queue.identify(`p${i}`, { bio: 'x'.repeat(30_000) })
  await small.queue.flush()
  for (const r of small.sim.requestsFor('batch')) t.ok(JSON.stringify(r.body).length <= 100_000, 'maxBatchBytes holds')
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
  const { app, queue, logs } = await queueApp(t, { maxSize: 50, batchSize: 10, onDrop: (ops) => dropped.push(...ops as BatchOperation[]), shutdownTimeoutMs: 0 }, sim)
  let accepted = 0
  for (let i = 0; i < 200; i++) if (queue.identify(`p${i}`)) accepted++
  t.equal(accepted, 50)
  t.equal(dropped.length, 150)
  t.equal(idsOf(dropped)[0], 'p50', 'the newest are the ones dropped')
  t.equal(await metric(app, 'cio_queue_dropped_total', { queue: 'track', reason: 'overflow' }), 150)
  t.equal(await metric(app, 'cio_queue_capacity', Q), 50)
  t.ok(await metric(app, 'cio_queue_depth', Q) >= 40)
  t.ok(logs.lines.filter((l) => l.reason === 'overflow').length <= 2, 'drops are logged in summary, not per operation')
})

t.test('a 207 drops the rejected operations with reason rejected and sends the rest', async (t) => {
  const sim = await startSimulator(t, { rejectBatchOperation: (op) => (op as { identifiers: { id: string } }).identifiers.id.startsWith('bad') ? 'invalid email attribute jane@example.com' : undefined })
  const drops: BatchOperation[] = []
  const { app, queue, logs } = await queueApp(t, { onDrop: (ops, reason) => { t.equal(reason, 'rejected'); drops.push(...ops as BatchOperation[]) } }, sim)
  for (const id of ['ok1', 'bad1', 'ok2', 'bad2', 'ok3']) queue.identify(id)
  await queue.flush()
  t.same(idsOf(drops), ['bad1', 'bad2'])
  t.equal(await metric(app, 'cio_queue_dropped_total', { queue: 'track', reason: 'rejected' }), 2)
  t.equal(await metric(app, 'cio_queue_sent_total', Q), 3)
  const line = logs.lines.find((l) => l.msg === 'customer.io rejected queued operations')!
  t.equal(line.rejected, 2)
  t.notMatch(JSON.stringify(line), /jane@example\.com/, 'the API\'s reason is logged sanitised')
  t.match(JSON.stringify(line), /invalid email attribute/)
})

t.test('a batch refused for its content (400, 422) is dropped as rejected, counted and handed on; the next batch goes on', async (t) => {
  for (const status of [400, 422]) {
    const sim = await startSimulator(t)
    sim.fault({ operation: 'batch', status, times: 1 })
    const drops: Array<[string[], DropReason]> = []
    const { app, queue, logs } = await queueApp(t, { batchSize: 2, onDrop: (ops, reason) => drops.push([idsOf(ops as BatchOperation[]), reason]) }, sim)
    queue.identify('a'); queue.identify('b'); queue.identify('c')
    await queue.flush()
    t.same(drops, [[['a', 'b'], 'rejected']], `${status}`)
    t.same(idsOf(delivered(sim)), ['c'], `${status}: the next batch was sent`)
    t.equal(await metric(app, 'cio_queue_dropped_total', { queue: 'track', reason: 'rejected' }), 2)
    t.equal(await metric(app, 'cio_queue_retries_total', Q), 0, 'never sent again')
    t.equal(await metric(app, 'cio_api_errors_total', { api: 'track', operation: 'batch', error_type: String(status) }), 1, 'batch calls go through fastify.cio')
    t.ok(logs.lines.some((l) => l.msg === 'customer.io refused a queued batch'))
  }
})

t.test('an outage of 503s, 429s, hangs, resets and lost answers: nothing dropped, every event recorded once, in order', async (t) => {
  const sim = await startSimulator(t, { seed: 11 })
  // A hang needs a timeout; it fires against a server that never answers, so it races nothing.
  const { app, queue } = await queueApp(t, { maxSize: 5_000, batchSize: 50 }, sim, { timeout: 2_000 })
  // Faults are tried in this order; each hits a share of the batches until it is used up.
  sim.fault({ operation: 'batch', lose: 'reset', ratio: 0.3, times: 3 })
  sim.fault({ operation: 'batch', status: 503, ratio: 0.5, times: 6 })
  sim.fault({ operation: 'batch', status: 429, retryAfter: 0, ratio: 0.5, times: 4 })
  sim.fault({ operation: 'batch', hang: true, ratio: 0.3, times: 2 })
  sim.fault({ operation: 'batch', reset: true, ratio: 0.5, times: 4 })
  let accepted = 0
  for (let i = 0; i < 2_000; i++) if (queue.track(`p${i}`, { name: 'step', data: { n: i } })) accepted++
  t.equal(accepted, 2_000, 'all accepted: enqueue answers at once, whatever the API does')
  await queue.flush()
  const statuses = new Set(sim.requestsFor('batch').map((r) => `${r.status}${r.applied ? ' applied' : ''}`))
  t.same([...statuses].sort(), ['200 applied', '429', '503', 'hang', 'reset', 'reset applied'], 'every kind of failure hit the batches')
  t.equal(sim.events.length, 2_000, 'the customers\' histories hold every event')
  t.same(events(sim), Array.from({ length: 2_000 }, (_, i) => `p${i}`), 'once each, in order')
  t.ok(sim.discardedEvents.length > 0, `re-sent events were discarded by id (${sim.discardedEvents.length})`)
  t.equal(await metric(app, 'cio_queue_dropped_total', { queue: 'track', reason: 'overflow' }), 0)
  t.equal(await metric(app, 'cio_queue_sent_total', Q), 2_000)
  t.ok(await metric(app, 'cio_queue_retries_total', Q) > 0, 'retries were counted')
})

underEachClock('a batch whose answer is lost is sent again with the same ids, and Customer.io discards the copies', async (t, Clock) => {
  const sim = await startSimulator(t)
  sim.fault({ operation: 'batch', lose: 'reset', times: 1 })
  const { queue, sends, register, until } = await clockedQueue(t, { batchSize: 5, retryDelayMs: 100 }, sim, Clock)
  for (let i = 0; i < 5; i++) queue.track('p1', { name: `e${i}` })
  // With the jitter at 0.5 the backoff is 50 ms.
  await until(() => sends.length === 2, 10, 10)
  const [first, second] = sim.requestsFor('batch').map((r) => (r.body as { batch: BatchOperation[] }).batch.map((op) => op.id))
  t.same(second, first, 'the same ids')
  t.equal(sim.eventsFor('p1').length, 5, 'recorded once')
  t.equal(sim.discardedEvents.length, 5, 'the copies were discarded')
  t.equal(await registryMetric(register, 'cio_queue_retries_total', Q), 1)
})

underEachClock('the backoff grows after each failure, honours Retry-After, and resets after a success', async (t, Clock) => {
  const sim = await startSimulator(t)
  sim.fault({ operation: 'batch', status: 503, times: 3 })
  const { clock, queue, sends, settled, until } = await clockedQueue(t, { retryDelayMs: 100, maxRetryDelayMs: 1_000, batchSize: 1 }, sim, Clock)
  // On an exact clock the batch goes again exactly `wait` ms after it failed. On a jittery one
  // not before the queue's coarse now() reads so (in true time up to a granularity sooner), and
  // by the time the last timer armed for it has fired (a granularity and the jitter later).
  const early = clock.granularityMs
  const late = clock.jitterMs === 0 ? 0 : 2 * clock.granularityMs + clock.jitterMs
  const sentAgainAfter = async (wait: number, n: number, message: string) => {
    await settled()
    t.equal(sends.length, n, `attempt ${n} failed`)
    clock.advance(wait - early)
    await new Promise(setImmediate)
    t.equal(sends.length, n, `${message}: not before ${wait} ms`)
    const moves = await until(() => sends.length === n + 1, 1, early + late)
    t.ok(moves <= early + late, `${message}: sent again after ${wait - early + moves} ms`)
  }
  queue.identify('a')
  // With the jitter at 0.5 the waits are 50, 100, 200 ms.
  for (const [n, wait] of [[1, 50], [2, 100], [3, 200]] as const) await sentAgainAfter(wait, n, `attempt ${n + 1}`)
  await settled()
  t.same(idsOf(delivered(sim)), ['a'])

  sim.fault({ operation: 'batch', status: 429, retryAfter: 0.7, times: 1 })
  queue.identify('b')
  clock.advance(20)
  await sentAgainAfter(700, 5, 'Retry-After (700 ms) wins over the backoff (50 ms)')
  await settled()
  t.same(idsOf(delivered(sim)), ['a', 'b'])

  // Four failures so far, each followed by a success: the next failure waits 50 ms again, not 500.
  sim.fault({ operation: 'batch', status: 503, times: 1 })
  queue.identify('c')
  await sentAgainAfter(50, 7, 'after a success the backoff starts over')
  await settled()
  t.same(idsOf(delivered(sim)), ['a', 'b', 'c'])
})

underEachClock('an outage of 30 simulated seconds is retried to its end: nothing dropped, nothing doubled', async (t, Clock) => {
  const sim = await startSimulator(t)
  sim.fault({ operation: 'batch', status: 503, times: 40 })
  const { queue, sends, register, until } = await clockedQueue(t, { retryDelayMs: 100, maxRetryDelayMs: 1_000, batchSize: 10 }, sim, Clock)
  for (let i = 0; i < 20; i++) queue.track(`p${i}`, { name: 'e' })
  let waited = 0
  // 40 failed sends, then the one that succeeds; each within a second of the last (the backoff is at most 500 ms).
  for (let n = 1; n <= 41; n++) waited += 1_000 * await until(() => sends.length >= n, 1_000, 1)
  await until(() => sim.events.length === 20, 1_000, 0)
  await queue.flush()
  t.ok(waited >= 30_000, `${waited / 1000} s of outage`)
  t.same(events(sim), Array.from({ length: 20 }, (_, i) => `p${i}`))
  t.equal(await registryMetric(register, 'cio_queue_retries_total', Q), 40)
  t.equal(await registryMetric(register, 'cio_queue_dropped_total', { queue: 'track', reason: 'overflow' }), 0)
  t.equal(await registryMetric(register, 'cio_queue_sent_total', Q), 20)
})

underEachClock('close() under a hanging API: at the deadline everything is handed to onDrop and counted, the batch in flight included', async (t, Clock) => {
  const sim = await startSimulator(t)
  sim.fault({ operation: 'batch', hang: true })
  const { clock, queue, drops, agent, register, settled } = await clockedQueue(t, { batchSize: 10, shutdownTimeoutMs: 5_000 }, sim, Clock)
  for (let i = 0; i < 35; i++) queue.track(`p${i}`, { name: 'e' })
  await sim.until((s) => s.requestsFor('batch').length === 1)
  let closed = false
  const closing = queue.close().then(() => { closed = true })
  t.equal(queue.track('late', { name: 'e' }), false, 'a closing queue takes nothing more')
  // The deadline's timer fires within the clock's jitter of it.
  clock.advance(4_999 - clock.jitterMs)
  await new Promise(setImmediate)
  t.equal(closed, false, 'it waits for the batch in flight until the deadline')
  clock.advance(1 + 2 * clock.jitterMs)
  await closing
  t.same(drops.map(([ops, reason]) => [ops.length, reason]), [[1, 'shutdown'], [35, 'shutdown']], 'the late one, then every accepted one')
  t.same(drops[1]![0].map((op) => (op.identifiers as { id: string }).id), Array.from({ length: 35 }, (_, i) => `p${i}`), 'in order, the batch in flight first')
  // The plugin ends the request in flight by closing its pool; its late failure changes nothing.
  await agent.destroy()
  await settled()
  t.equal(await registryMetric(register, 'cio_queue_dropped_total', { queue: 'track', reason: 'shutdown' }), 36)
  t.equal(await registryMetric(register, 'cio_queue_sent_total', Q), 0, 'sent + handed over = accepted + the late one, exactly')
  t.equal(drops.length, 2, 'nothing handed over twice')
})

underEachClock('close() during a backoff hands everything over at the deadline; a batch answered after the deadline is not counted twice', async (t, Clock) => {
  const sim = await startSimulator(t)
  sim.fault({ operation: 'batch', status: 503, times: 1 })
  const waiting = await clockedQueue(t, { retryDelayMs: 10_000, maxRetryDelayMs: 10_000, shutdownTimeoutMs: 1_000 }, sim, Clock)
  // Timers fire within the clock's jitter of their due time: moving it on by that much more is moving it past them.
  const past = (ms: number) => ms + waiting.clock.jitterMs
  waiting.queue.track('p1', { name: 'e' })
  await waiting.until(() => waiting.sends.length === 1, past(FAST.flushIntervalMs), 1)
  await waiting.settled()
  const closing = waiting.queue.close()
  waiting.clock.advance(past(1_000))
  await closing
  t.same(waiting.drops.map(([ops, reason]) => [ops.length, reason]), [[1, 'shutdown']], 'handed over while waiting out the backoff')

  const slow = await startSimulator(t)
  slow.fault({ operation: 'batch', latencyMs: 200, times: 1 })
  const late = await clockedQueue(t, { shutdownTimeoutMs: 1_000 }, slow, Clock)
  late.queue.track('p2', { name: 'e' })
  late.clock.advance(past(FAST.flushIntervalMs))
  t.equal(late.sends.length, 1, 'in flight')
  const ending = late.queue.close()
  late.clock.advance(past(1_000))
  await ending
  await late.settled()
  t.equal(slow.events.length, 1, 'Customer.io took it after the deadline')
  t.same(late.drops.map(([ops, reason]) => [ops.length, reason]), [[1, 'shutdown']], 'handed over once, at the deadline')
  t.equal(await registryMetric(late.register, 'cio_queue_sent_total', Q), 0, 'and not counted as sent as well')
})

t.test('a dispatcher the app passes in stays the app\'s: the plugin does not close it', async (t) => {
  const sim = await startSimulator(t)
  const dispatcher = new Agent()
  t.teardown(() => dispatcher.close())
  const { app } = await buildApp(t, simOptions(sim, { client: { dispatcher, retry: { maxRetries: 0 } } }))
  await app.cio.identify('p1', {})
  await app.close()
  const res = await fetch(`${sim.url}/api/v1/accounts/region`, { dispatcher } as RequestInit)
  t.equal(res.status, 401, 'still usable after the app closed')
})

t.test('app.close() under a hanging API resolves, with every accepted operation handed over, and ends the request in flight', async (t) => {
  const sim = await startSimulator(t)
  sim.fault({ hang: true })
  const drops: Array<[number, DropReason]> = []
  const { app, queue } = await queueApp(t, { shutdownTimeoutMs: 100, batchSize: 10, onDrop: (ops, reason) => drops.push([ops.length, reason]) }, sim)
  for (let i = 0; i < 35; i++) queue.identify(`p${i}`)
  await sim.until((s) => s.requestsFor('batch').length === 1)
  t.equal(sim.openConnections, 1)
  await app.close()
  t.same(drops, [[35, 'shutdown']])
  await sim.until((s) => s.openConnections === 0)
  t.pass('the hanging connection was closed by the plugin')
})

t.test('close() flushes what the simulator can take', async (t) => {
  const { sim, app, queue } = await queueApp(t, { flushIntervalMs: 60_000 })
  for (let i = 0; i < 250; i++) queue.identify(`p${i}`)
  await app.close()
  t.equal(delivered(sim).length, 250, 'close sent everything')
  t.equal(queue.identify('late'), false, 'a closed queue takes nothing more')
})

t.test('onDrop failures are logged, never thrown', async (t) => {
  const { queue, logs } = await queueApp(t, { maxSize: 1, onDrop: () => { throw new Error('disk full') } })
  queue.identify('a')
  t.equal(queue.identify('b'), false)
  t.match(logs.lines.find((l) => l.msg === 'customer.io queue onDrop failed'), { err: { message: 'disk full' } })
})

t.test('queue options', async (t) => {
  const sim = await startSimulator(t)
  const none = await buildApp(t, simOptions(sim, { siteId: undefined, trackApiKey: undefined, pipelinesWriteKey: undefined }))
  t.equal(none.app.cio.queue, undefined, 'no Track or Pipelines credentials, no queue')
  const off = await buildApp(t, simOptions(sim, { queue: false }))
  t.equal(off.app.cio.queue, undefined)
  const on = await buildApp(t, simOptions(sim))
  t.equal(await metric(on.app, 'cio_queue_capacity', Q), 10_000, 'on by default with Track credentials')
  const { default: Fastify } = await import('fastify')
  const { default: cio } = await import('../../lib/index.ts')
  for (const [queue, message] of [
    [{}, /"queue".*needs credentials/],
    [{ api: 'pipelines' }, /"queue.api".*needs credentials for the pipelines API/],
    [{ api: 'sms' }, /"queue.api".*must be one of track, pipelines/],
    [true, /"queue"/],
    [{ batchsize: 5 }, /"queue.batchsize"/],
    [{ maxAttempts: 3 }, /"queue.maxAttempts".*not a known option/],
    [{ maxSize: 0 }, /"queue.maxSize"/],
    [{ maxBatchBytes: 600_000 }, /"queue.maxBatchBytes"/],
    [{ retryDelayMs: 1_000, maxRetryDelayMs: 500 }, /"queue.maxRetryDelayMs".*not be less/],
    [{ onDrop: 'x' }, /"queue.onDrop"/]
  ] as const) {
    const app = Fastify()
    const creds = typeof queue === 'object' && (Object.keys(queue).length === 0 || 'api' in queue) ? { siteId: undefined, trackApiKey: undefined, pipelinesWriteKey: undefined } : {}
    app.register(cio, simOptions(sim, { ...creds, queue: queue as never }))
    t.match(await rejection(app.ready()), { code: 'FST_CIO_INVALID_OPTIONS', message })
    await app.close()
  }
})
