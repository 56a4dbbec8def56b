import { fork } from 'node:child_process'
import { once } from 'node:events'
import t from 'tap'
import { Redis } from 'ioredis'
import type { CioObservabilityOptions, CioOutboxOptions, OutboxDropReason, QueueItem } from '../../../lib/index.ts'
import type { CioSimulator } from '../../../lib/testing/index.ts'
import { startRedis, type RedisServer } from '../../fixtures/redis.ts'
import { until } from '../../fixtures/wait.ts'
import { buildApp, metric, rejection, simOptions, startSimulator } from '../../helpers.ts'

type T = Parameters<typeof startSimulator>[0]

/** Quick retries, a short read and a short takeover, so a test's faults are over in milliseconds. */
const FAST = { retryDelayMs: 1, maxRetryDelayMs: 20, blockMs: 50, claimAfterMs: 500 }

let streams = 0

function options (sim: CioSimulator, redis: RedisServer, outbox: Partial<CioOutboxOptions> = {}, timeout = 1_000): CioObservabilityOptions {
  return simOptions(sim, {
    queue: false,
    webhook: false,
    // No SDK retries, so every re-send is the outbox's; a hang ends after a second.
    client: { retry: { maxRetries: 0 }, timeout },
    outbox: { connection: redis.url, stream: `outbox-${process.pid}-${++streams}`, ...FAST, ...outbox }
  })
}

async function outboxApp (t: T, sim: CioSimulator, redis: RedisServer, outbox: Partial<CioOutboxOptions> = {}, timeout?: number) {
  const built = await buildApp(t, options(sim, redis, outbox, timeout))
  return { ...built, outbox: built.app.cio.outbox! }
}

/** Resolves once a sender has read `count` entries of `stream` and not yet acknowledged them: it is sending them. */
async function inHand (t: T, redis: RedisServer, stream: string, count = 1): Promise<void> {
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  await until(async () => { if (Number(((await admin.xpending(stream, 'customerio-senders')) as [number])[0]) < count) throw new Error('not yet') })
}

/** The customers of the recorded events, sorted: each event once, whatever the order. */
const recorded = (sim: CioSimulator) => sim.events.map((e) => e.customerId).sort()
const customers = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `c${from + i}`).sort()

t.test('each call resolves once the operation is in Redis; the sender delivers it and the stream empties', async (t) => {
  const redis = await startRedis(t)
  const sim = await startSimulator(t)
  const { app, outbox } = await outboxApp(t, sim, redis)
  await outbox.identify('c0', { plan: 'pro' })
  await outbox.track('c1', { name: 'signed_up' })
  await outbox.enqueue({ type: 'person', action: 'event', identifiers: { id: 'c2' }, name: 'raw' })
  await until(async () => { if (sim.events.length < 2) throw new Error('not yet') })
  await outbox.trackAnonymous('anon-1', { name: 'visited' })
  await outbox.trackPageView('c3', '/pricing')
  await outbox.destroy('c4')
  await outbox.suppress('c5')
  await outbox.unsuppress('c5')
  await outbox.addDevice('c6', 'token-1', 'ios')
  await outbox.deleteDevice('c6', 'token-1')
  t.equal((await rejection(outbox.group('c7', 'acme'))).code, 'FST_CIO_INVALID_OPERATION', 'a Pipelines-only method over Track')
  t.equal((await rejection(outbox.alias('c7', 'anon-1'))).code, 'FST_CIO_INVALID_OPERATION')
  await until(async () => { if (await metric(app, 'cio_outbox_sent_total') !== 10) throw new Error('not yet') })
  const actions = sim.requestsFor('batch').flatMap((r) => ((r.body as { batch: Array<{ action: string }> }).batch).map((op) => op.action))
  t.same(actions, ['identify', 'event', 'event', 'event', 'page', 'delete', 'suppress', 'unsuppress', 'add_device', 'delete_device'])
  t.ok(sim.events.every((e) => typeof e.id === 'string'), 'every event carries its id')
  t.same(sim.events.map((e) => e.customerId ?? e.anonymousId), ['c1', 'c2', 'anon-1', 'c3'])
  t.equal(await metric(app, 'cio_outbox_depth'), 0)
  t.equal(await metric(app, 'cio_outbox_oldest_age_seconds'), 0)
  t.equal(await metric(app, 'cio_outbox_dropped_total', { reason: 'rejected' }), 0)
})

t.test('depth and the oldest age are read from Redis at scrape time', async (t) => {
  const redis = await startRedis(t)
  const sim = await startSimulator(t)
  const stream = `depth-${process.pid}`
  const { app, outbox } = await outboxApp(t, sim, redis, { stream, sender: false })
  await outbox.track('c0', { name: 'a' })
  await outbox.track('c1', { name: 'b' })
  t.equal(await metric(app, 'cio_outbox_depth'), 2)
  await until(async () => { if (await metric(app, 'cio_outbox_oldest_age_seconds') <= 0) throw new Error('not yet') })
  t.equal(sim.events.length, 0, 'no sender here')
  // A sender elsewhere takes them.
  await outboxApp(t, sim, redis, { stream })
  await until(async () => { if (await metric(app, 'cio_outbox_depth') !== 0) throw new Error('not yet') })
  t.same(recorded(sim), ['c0', 'c1'])
})

t.test('a bad operation, a too large one, a full outbox: FST_CIO_* errors, nothing stored', async (t) => {
  const redis = await startRedis(t)
  const sim = await startSimulator(t)
  const { app, outbox } = await outboxApp(t, sim, redis, { sender: false, maxLength: 2 })
  t.equal((await rejection(outbox.track('c0', { name: '' }))).code, 'FST_CIO_INVALID_OPERATION')
  t.equal((await rejection(outbox.enqueue({ type: 'person' } as never))).code, 'FST_CIO_INVALID_OPERATION')
  const big = await rejection(outbox.identify('c0', { blob: 'x'.repeat(40_000) }))
  t.equal(big.code, 'FST_CIO_INVALID_OPERATION')
  t.equal(big.statusCode, 400)
  await outbox.track('c0', { name: 'a' })
  await outbox.track('c1', { name: 'b' })
  const full = await rejection(outbox.track('c2', { name: 'c' }))
  t.equal(full.code, 'FST_CIO_OUTBOX_FULL')
  t.equal(full.statusCode, 503)
  t.equal(await metric(app, 'cio_outbox_depth'), 2)
})

t.test('Redis stopped, then hung (SIGSTOP): adds fail with FST_CIO_OUTBOX_UNAVAILABLE within the bound, a scrape still answers, close() is bounded', async (t) => {
  const redis = await startRedis(t)
  const sim = await startSimulator(t)
  const { app, outbox } = await outboxApp(t, sim, redis, { commandTimeoutMs: 300 })
  await outbox.track('c0', { name: 'a' })
  await until(async () => { if (sim.events.length < 1) throw new Error('not yet') })

  redis.pause()
  const hung = await rejection(outbox.track('c1', { name: 'b' }))
  t.equal(hung.code, 'FST_CIO_OUTBOX_UNAVAILABLE')
  t.match(hung.message, /did not answer in time/)
  t.notMatch(JSON.stringify({ message: hung.message, cause: String(hung.cause) }), /c1/, 'no operation in the error')
  const scrape = await app.inject('/metrics')
  t.equal(scrape.statusCode, 200, 'the scrape answered while Redis hung')
  t.ok(await metric(app, 'cio_outbox_store_errors_total') >= 1)
  redis.resume()

  await redis.stop()
  t.equal((await rejection(outbox.track('c2', { name: 'c' }))).code, 'FST_CIO_OUTBOX_UNAVAILABLE')
  await redis.start()
  await until(() => outbox.track('c3', { name: 'd' }))
  await until(async () => { if (!recorded(sim).includes('c3')) throw new Error('not yet') })

  redis.pause()
  await app.close()
  t.pass('app.close() resolved while Redis hung')
  redis.resume()
})

t.test('transient failures are retried with backoff; content refusals drop only the refused batch; a 207 drops only the named operations', async (t) => {
  const redis = await startRedis(t)
  const sim = await startSimulator(t, { rejectBatchOperation: (op) => (op as { identifiers?: { id?: string } }).identifiers?.id === 'c4' ? 'invalid' : undefined })
  const drops: Array<[QueueItem[], OutboxDropReason]> = []
  const { app, outbox } = await outboxApp(t, sim, redis)

  sim.fault({ operation: 'batch', status: 503, times: 2 })
  await outbox.track('c0', { name: 'a' })
  await until(async () => { if (!recorded(sim).includes('c0')) throw new Error('not yet') })
  t.equal(await metric(app, 'cio_outbox_retries_total'), 2)

  // Added while no sender runs, so they go out as one batch.
  const adder = await outboxApp(t, sim, redis, { stream: 'refusals', sender: false })
  await adder.outbox.track('c1', { name: 'refused' })
  await adder.outbox.track('c2', { name: 'refused' })
  sim.fault({ operation: 'batch', status: 422, times: 1 })
  const sender = await outboxApp(t, sim, redis, { stream: 'refusals', batchSize: 2, onDrop: (ops, reason) => { drops.push([ops, reason]) } })
  await until(async () => { if (drops.length < 1) throw new Error('not yet') })
  t.same(drops[0]![0].map((op) => (op.identifiers as { id: string }).id), ['c1', 'c2'])
  t.equal(drops[0]![1], 'rejected')

  // An operation Customer.io refuses in a batch (a 207), beside one it takes.
  await adder.outbox.track('c3', { name: 'fine' })
  await adder.outbox.identify('c4', { bad: true })
  await until(async () => { if (drops.length < 2) throw new Error('not yet') })
  t.same(drops[1]![0].map((op) => (op.identifiers as { id: string }).id), ['c4'])
  await until(async () => { if (await metric(sender.app, 'cio_outbox_dropped_total', { reason: 'rejected' }) !== 3) throw new Error('not yet') })
  t.equal(await metric(sender.app, 'cio_outbox_sent_total'), 1)
  t.same(recorded(sim), ['c0', 'c3'])
  t.equal(await metric(app, 'cio_outbox_depth'), 0)
  t.equal(await metric(sender.app, 'cio_outbox_depth'), 0)
})

t.test('two instances sending at once: every event recorded once', async (t) => {
  const redis = await startRedis(t)
  const sim = await startSimulator(t)
  const stream = `two-${process.pid}`
  const a = await outboxApp(t, sim, redis, { stream, batchSize: 20 })
  const b = await outboxApp(t, sim, redis, { stream, batchSize: 20 })
  const adds: Array<Promise<void>> = []
  for (let i = 0; i < 1_000; i++) adds.push((i % 2 === 0 ? a : b).outbox.track(`c${i}`, { name: `e${i}` }))
  await Promise.all(adds)
  await until(async () => { if (sim.events.length < 1_000) throw new Error('not yet') })
  t.same(recorded(sim), customers(1_000))
  t.equal(sim.discardedEvents.length, 0, 'nothing was sent twice')
  // Counted once acknowledged, a moment after Customer.io recorded them.
  const sent = async () => await metric(a.app, 'cio_outbox_sent_total') + await metric(b.app, 'cio_outbox_sent_total')
  await until(async () => { if (await sent() < 1_000) throw new Error('not yet') })
  t.equal(await sent(), 1_000)
  t.ok(await metric(a.app, 'cio_outbox_sent_total') > 0 && await metric(b.app, 'cio_outbox_sent_total') > 0, 'both sent')
})

t.test('close() with entries in hand: bounded, the entries handed back and taken over at once by the next sender', async (t) => {
  const redis = await startRedis(t)
  const sim = await startSimulator(t)
  const stream = `close-${process.pid}`
  const adder = await outboxApp(t, sim, redis, { stream, sender: false })
  for (let i = 0; i < 3; i++) await adder.outbox.track(`c${i}`, { name: `e${i}`, data: { pad: 'x'.repeat(400) } })
  const removeHang = sim.fault({ operation: 'batch', hang: true })
  // Two batches of the three entries: the first hangs, the second is never started.
  const first = await outboxApp(t, sim, redis, { stream, shutdownTimeoutMs: 200, claimAfterMs: 60_000, maxBatchBytes: 1_200 })
  await until(async () => { if (sim.requestsFor('batch').length < 1) throw new Error('not yet') })
  await first.app.close()
  t.ok(first.logs.lines.some((l) => l.msg === 'customer.io outbox closed with entries in hand; they are left for the next sender'))
  removeHang()
  // With a takeover after a minute, only the handing back lets this sender take them now.
  const next = await outboxApp(t, sim, redis, { stream, claimAfterMs: 60_000 })
  await until(async () => { if (sim.events.length < 3) throw new Error('not yet') })
  t.same(recorded(sim), ['c0', 'c1', 'c2'])
  t.equal(await metric(next.app, 'cio_outbox_claimed_total'), 3)
})

t.test('the app\'s own ioredis instance is duplicated, never closed', async (t) => {
  const redis = await startRedis(t)
  const sim = await startSimulator(t)
  const own = new Redis(redis.url)
  t.teardown(() => own.disconnect())
  const { app, outbox } = await outboxApp(t, sim, redis, { connection: own })
  await outbox.track('c0', { name: 'a' })
  await until(async () => { if (sim.events.length < 1) throw new Error('not yet') })
  await app.close()
  t.equal(await own.ping(), 'PONG')
})

t.test('Redis killed and restarted (AOF on) while events flow: errors only while it is down, nothing accepted is lost', async (t) => {
  const redis = await startRedis(t, { appendonly: true })
  const sim = await startSimulator(t)
  const { outbox } = await outboxApp(t, sim, redis)
  const accepted: string[] = []
  let failedWhileUp = 0
  let down = false
  const adding = (async () => {
    for (let i = 0; i < 600; i++) {
      const id = `c${i}`
      try {
        await outbox.track(id, { name: `e${i}` })
        accepted.push(id)
      } catch (err) {
        if ((err as { code?: string }).code !== 'FST_CIO_OUTBOX_UNAVAILABLE') throw err
        if (!down) failedWhileUp++
      }
      if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve))
      if (i === 200) {
        down = true
        await redis.kill()
      }
      if (i === 400) {
        await redis.start()
        await until(() => outbox.track('probe', { name: 'probe' }))
        down = false
      }
    }
  })()
  await adding
  t.equal(failedWhileUp, 0, 'no error while Redis was up')
  t.ok(accepted.length >= 400, 'most were accepted')
  await until(async () => { if (!accepted.every((id) => sim.events.some((e) => e.customerId === id))) throw new Error('not yet') })
  t.pass('every accepted event was delivered')
})

t.test('a sender process SIGKILLed with 5 000 events while Customer.io hangs: another delivers them all, each recorded once', { timeout: 120_000 }, async (t) => {
  const redis = await startRedis(t, { appendonly: true })
  const sim = await startSimulator(t)
  const stream = `crash-${process.pid}`
  const opts = options(sim, redis, { stream, claimAfterMs: 1_000 })
  const removeHang = sim.fault({ operation: 'batch', hang: true })
  const child = fork(new URL('../../fixtures/outbox-app.ts', import.meta.url), [JSON.stringify({ ...opts, region: { ...sim.region } }), '5000'], { stdio: 'inherit' })
  t.teardown(() => { child.kill('SIGKILL') })
  const accepted = await new Promise<number>((resolve) => { child.on('message', (m: { accepted?: number }) => { if (m.accepted !== undefined) resolve(m.accepted) }) })
  t.equal(accepted, 5_000)
  await until(async () => { if (sim.requestsFor('batch').length < 1) throw new Error('not yet') })
  child.kill('SIGKILL')
  await once(child, 'exit')
  removeHang()
  const { app } = await buildApp(t, opts)
  await until(async () => { if (new Set(sim.events.map((e) => e.customerId)).size < 5_000) throw new Error('not yet') }, 60_000)
  t.same(recorded(sim), customers(5_000), 'each recorded once')
  t.ok(await metric(app, 'cio_outbox_claimed_total') >= 1, 'the dead sender\'s batch was taken over')
  await until(async () => { if (await metric(app, 'cio_outbox_depth') !== 0) throw new Error('not yet') })
})

t.test('options are checked at registration', async (t) => {
  const sim = await startSimulator(t)
  const bad = async (outbox: unknown) => (await rejection(buildApp(t, simOptions(sim, { outbox: outbox as never })))).message
  t.match(await bad({}), /outbox\.connection.*is required/)
  t.match(await bad({ connection: 5 }), /outbox\.connection.*Redis URL/)
  t.match(await bad({ connection: 'redis://x', claimAfterMs: 1 }), /outbox\.claimAfterMs/)
  t.match(await bad({ connection: 'redis://x', retryDelayMs: 10, maxRetryDelayMs: 5 }), /outbox\.maxRetryDelayMs/)
  t.match(await bad({ connection: 'redis://x', colour: 'red' }), /outbox\.colour.*not a known option/)
  t.match(await bad('redis://x'), /outbox.*must be false or an object/)
  const noCreds = await rejection(buildApp(t, { env: {}, metrics: { defaultMetrics: false }, outbox: { connection: 'redis://x' } }))
  t.match(noCreds.message, /outbox.*credentials/)
})

t.test('an operation that is not JSON, and an add after close: FST_CIO_* errors', async (t) => {
  const redis = await startRedis(t)
  const sim = await startSimulator(t)
  const { app, outbox } = await outboxApp(t, sim, redis, { sender: false })
  t.equal((await rejection(outbox.identify('c0', { n: 1n }))).code, 'FST_CIO_INVALID_OPERATION')
  await app.close()
  const closed = await rejection(outbox.track('c0', { name: 'a' }))
  t.equal(closed.code, 'FST_CIO_OUTBOX_UNAVAILABLE')
  t.match(closed.message, /closing/)
})

t.test('a Redis outage is logged once, not once per reconnection attempt', async (t) => {
  const redis = await startRedis(t)
  const sim = await startSimulator(t)
  const { logs, outbox } = await outboxApp(t, sim, redis)
  await redis.stop()
  const lines = () => logs.lines.filter((l) => l.msg === 'customer.io outbox Redis connection error')
  await until(async () => { if (lines().length === 0) throw new Error('not yet') })
  await redis.start()
  await until(() => outbox.track('c0', { name: 'a' }))
  // Both connections may log the refusal; neither logs it again per attempt.
  t.ok(lines().length <= 2, `${lines().length} lines`)
  t.notMatch(logs.text(), /c0/, 'no operation in the logs')
})

t.test('a Redis that restarts empty (no AOF): the sender makes its group again and goes on', async (t) => {
  const redis = await startRedis(t)
  const sim = await startSimulator(t)
  const { outbox } = await outboxApp(t, sim, redis)
  await outbox.track('c0', { name: 'a' })
  await until(async () => { if (sim.events.length < 1) throw new Error('not yet') })
  await redis.stop()
  await redis.start()
  await until(() => outbox.track('c1', { name: 'b' }))
  await until(async () => { if (sim.events.length < 2) throw new Error('not yet') })
  t.same(recorded(sim), ['c0', 'c1'])
})

t.test('stream entries that hold no operation are dropped as unreadable; the rest go out', async (t) => {
  const redis = await startRedis(t)
  const sim = await startSimulator(t)
  const stream = `unreadable-${process.pid}`
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  await admin.xadd(stream, '*', 'op', 'not json')
  await admin.xadd(stream, '*', 'op', '[1]')
  await admin.xadd(stream, '*', 'other', '{}')
  const { app, outbox } = await outboxApp(t, sim, redis, { stream })
  await until(async () => { if (await metric(app, 'cio_outbox_dropped_total', { reason: 'unreadable' }) !== 3) throw new Error('not yet') })
  await outbox.track('c0', { name: 'a' })
  await until(async () => { if (await metric(app, 'cio_outbox_depth') !== 0 || sim.events.length < 1) throw new Error('not yet') })
  t.same(recorded(sim), ['c0'])
})

t.test('an acknowledgement that fails while Redis hangs is tried again: sent once, nothing left behind', async (t) => {
  const redis = await startRedis(t)
  const sim = await startSimulator(t)
  const stream = `ack-${process.pid}`
  const { app, logs, outbox } = await outboxApp(t, sim, redis, { stream, commandTimeoutMs: 100 })
  // The first send hangs until the client gives up (1 s); the second succeeds while Redis hangs.
  sim.fault({ operation: 'batch', hang: true, times: 1 })
  await outbox.track('c0', { name: 'a' })
  await inHand(t, redis, stream)
  redis.pause()
  // The answer comes while Redis hangs: the acknowledgement fails, and is tried again.
  await until(async () => { if (!logs.lines.some((l) => l.msg === 'customer.io outbox cannot reach Redis; the sender retries')) throw new Error('not yet') })
  redis.resume()
  // Counted once an acknowledgement lands (a timed-out one may still run when Redis wakes).
  await until(async () => { if (await metric(app, 'cio_outbox_sent_total') !== 1) throw new Error('not yet') })
  t.equal(await metric(app, 'cio_outbox_depth'), 0)
  t.ok(await metric(app, 'cio_outbox_store_errors_total') >= 1)
  t.same(recorded(sim), ['c0'])
})

t.test('a sender that works on a batch longer than claimAfterMs keeps it: no takeover, no second send', async (t) => {
  const redis = await startRedis(t)
  const sim = await startSimulator(t)
  const stream = `renew-${process.pid}`
  const slow = sim.fault({ operation: 'batch', latencyMs: 1_500, times: 1 })
  const first = await outboxApp(t, sim, redis, { stream, claimAfterMs: 300 }, 5_000)
  await first.outbox.track('c0', { name: 'a' })
  await inHand(t, redis, stream)
  const second = await outboxApp(t, sim, redis, { stream, claimAfterMs: 300 })
  await until(async () => { if (sim.events.length < 1) throw new Error('not yet') })
  await until(async () => { if (await metric(first.app, 'cio_outbox_depth') !== 0) throw new Error('not yet') })
  slow()
  t.equal(await metric(second.app, 'cio_outbox_claimed_total'), 0, 'never taken over')
  t.equal(sim.requestsFor('batch').length, 1, 'sent once')
})

t.test('batches are cut within maxBatchBytes, in order; a failing onDrop is logged; over Data Pipelines too', async (t) => {
  const redis = await startRedis(t)
  const sim = await startSimulator(t)
  const stream = `bytes-${process.pid}`
  const adder = await outboxApp(t, sim, redis, { stream, sender: false })
  for (let i = 0; i < 6; i++) await adder.outbox.track(`c${i}`, { name: `e${i}`, data: { pad: 'x'.repeat(400) } })
  await outboxApp(t, sim, redis, { stream, maxBatchBytes: 1_200 })
  await until(async () => { if (sim.events.length < 6) throw new Error('not yet') })
  t.same(sim.events.map((e) => e.customerId), ['c0', 'c1', 'c2', 'c3', 'c4', 'c5'], 'in order')
  t.equal(sim.requestsFor('batch').length, 3, 'two operations per batch')

  const refusing = await startSimulator(t, { rejectBatchOperation: () => 'invalid' })
  const { logs, outbox } = await outboxApp(t, refusing, redis, { onDrop: () => { throw new Error('onDrop broke') } })
  await outbox.identify('c0', {})
  await until(async () => { if (!logs.lines.some((l) => l.msg === 'customer.io outbox onDrop failed')) throw new Error('not yet') })

  const pipelines = await outboxApp(t, sim, redis, { api: 'pipelines' })
  await pipelines.outbox.track('p0', { name: 'signed_up' })
  await until(async () => { if (sim.pipelinesCalls.length < 1) throw new Error('not yet') })
  t.match(sim.pipelinesCalls[0]!.payload, { type: 'track', userId: 'p0', event: 'signed_up' })
  t.equal((await rejection(pipelines.outbox.destroy('p0'))).code, 'FST_CIO_INVALID_OPERATION', 'a Track-only method over Pipelines')
  await pipelines.outbox.group('p0', 'acme')
  await pipelines.outbox.alias('p0', 'anon-1')
  await until(async () => { if (sim.pipelinesCalls.length < 3) throw new Error('not yet') })
  t.same(sim.pipelinesCalls.map((c) => c.type), ['track', 'group', 'alias'])
})

t.test('outbox: false, or left out: no outbox', async (t) => {
  const sim = await startSimulator(t)
  t.equal((await buildApp(t, simOptions(sim, { outbox: false }))).app.cio.outbox, undefined)
  t.equal((await buildApp(t, simOptions(sim))).app.cio.outbox, undefined)
})

t.test('close() while an acknowledgement waits on a hung Redis: bounded; the entry is sent again by the next sender and discarded by id', async (t) => {
  const redis = await startRedis(t)
  const sim = await startSimulator(t)
  const stream = `ack-close-${process.pid}`
  const first = await outboxApp(t, sim, redis, { stream, commandTimeoutMs: 100, shutdownTimeoutMs: 200 })
  sim.fault({ operation: 'batch', hang: true, times: 1 })
  await first.outbox.track('c0', { name: 'a' })
  await inHand(t, redis, stream)
  redis.pause()
  await until(async () => { if (!first.logs.lines.some((l) => l.msg === 'customer.io outbox cannot reach Redis; the sender retries')) throw new Error('not yet') })
  await first.app.close()
  redis.resume()
  const next = await outboxApp(t, sim, redis, { stream })
  await until(async () => { if (await metric(next.app, 'cio_outbox_depth') !== 0) throw new Error('not yet') })
  t.same(recorded(sim), ['c0'], 'recorded once')
  t.ok(sim.discardedEvents.length <= 1, 'a second send, if Redis ran the timed-out acknowledgement only later, was discarded by its id')
})

t.test('a Redis that is down when the app starts: the app starts, adds fail with FST_CIO_OUTBOX_UNAVAILABLE, then succeed once it is up', async (t) => {
  const redis = await startRedis(t)
  const sim = await startSimulator(t)
  await redis.stop()
  const { outbox } = await outboxApp(t, sim, redis)
  t.equal((await rejection(outbox.track('c0', { name: 'a' }))).code, 'FST_CIO_OUTBOX_UNAVAILABLE')
  await redis.start()
  await until(() => outbox.track('c1', { name: 'b' }))
  await until(async () => { if (!recorded(sim).includes('c1')) throw new Error('not yet') })
  t.same(recorded(sim), ['c1'])
})
