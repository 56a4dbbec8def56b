import t from 'tap'
import promClient from '@prometheus-io/client'
import pino from 'pino'
import { Redis } from 'ioredis'
import { SendEmailRequest } from 'customerio-node'
import { MemoryDeliveryStore, RedisDeliveryStore, type CioObservabilityOptions } from '../../../lib/index.ts'
import { createMetrics, type PromClient } from '../../../lib/monitoring/metrics.ts'
import type { CioSimulator } from '../../../lib/testing/index.ts'
import { DELIVERY_DEFAULTS, type DeliverySettings } from '../../../lib/webhook/delivery/options.ts'
import { keepFor, type DeliveryEvent } from '../../../lib/webhook/delivery/store.ts'
import { DeliveryTracker } from '../../../lib/webhook/delivery/tracker.ts'
import type { ReadEvent } from '../../../lib/webhook/events.ts'
import { ManualClock } from '../../fixtures/clock.ts'
import { startRedis } from '../../fixtures/redis.ts'
import { until } from '../../fixtures/wait.ts'
import { buildApp, metric, registryMetric, rejection, simOptions, startSimulator, WEBHOOK_KEY } from '../../helpers.ts'

type T = Parameters<typeof startSimulator>[0]
const WEBHOOK = '/webhooks/customerio'

async function deliveryApp (t: T, sim: CioSimulator, extra: CioObservabilityOptions = {}) {
  const built = await buildApp(t, simOptions(sim, { queue: false, ...extra }))
  const url = `${await built.app.listen({ host: '127.0.0.1', port: 0 })}${WEBHOOK}`
  return { ...built, url }
}

const latency = (app: Parameters<typeof metric>[0], channel: string, metricName: string) => ({
  sum: () => metric(app, 'cio_delivery_latency_seconds_sum', { channel, metric: metricName }),
  count: () => metric(app, 'cio_delivery_latency_seconds_count', { channel, metric: metricName })
})

t.test('sent at T, delivered at T+42 s by the events\' timestamps: 42 s observed under email/delivered, read from /metrics', async (t) => {
  const sim = await startSimulator(t)
  const { app, url } = await deliveryApp(t, sim)
  const start = Math.floor(Date.now() / 1000) - 100
  const answers = await sim.deliver('d-1', [{ metric: 'sent', after: 0 }, { metric: 'delivered', after: 42 }, { metric: 'opened', after: 70 }], { url, signingKey: WEBHOOK_KEY, start })
  t.same(answers.map((a) => a.status), [200, 200, 200])
  const delivered = latency(app, 'email', 'delivered')
  await until(async () => { if (await delivered.count() !== 1) throw new Error('not yet') })
  t.equal(await delivered.sum(), 42)
  t.equal(await latency(app, 'email', 'opened').sum(), 70, 'time to open')
  t.equal(await latency(app, 'email', 'sent').sum(), 0, 'began at sent')
  t.equal(await metric(app, 'cio_delivery_started_total', { channel: 'email' }), 1)
  t.equal(await metric(app, 'cio_delivery_unconfirmed_total', { channel: 'email' }), 0)
})

t.test('a sendEmail through fastify.cio, then its delivered event: measured from the send', async (t) => {
  const sim = await startSimulator(t)
  const { app, url } = await deliveryApp(t, sim)
  const sentAt = Date.now()
  const { delivery_id: id } = await app.cio.sendEmail(new SendEmailRequest({ to: 'x@example.com', identifiers: { id: 'p1' }, transactional_message_id: 1 })) as { delivery_id: string }
  await until(async () => { if (await metric(app, 'cio_delivery_started_total', { channel: 'email' }) !== 1) throw new Error('not yet') })
  // Customer.io says it was sent 5 s and delivered 30 s after the send answered.
  const start = Math.floor(sentAt / 1000)
  await sim.deliver(id, [{ metric: 'sent', after: 5 }, { metric: 'delivered', after: 30 }], { url, signingKey: WEBHOOK_KEY, start })
  const delivered = latency(app, 'email', 'delivered')
  await until(async () => { if (await delivered.count() !== 1) throw new Error('not yet') })
  // The send's time is in ms, the events' in whole seconds: within a second of 30 s.
  const observed = await delivered.sum()
  t.ok(observed > 28.9 && observed <= 30, `${observed} s`)
  t.ok(await latency(app, 'email', 'sent').sum() > 3.9, 'sent measured from the send too')
  t.equal(await metric(app, 'cio_delivery_started_total', { channel: 'email' }), 1, 'the sent event did not start it again')
})

t.test('duplicates, out of order, unknown deliveries: what "sensibly" means', async (t) => {
  const sim = await startSimulator(t)
  const { app, url } = await deliveryApp(t, sim)
  const start = Math.floor(Date.now() / 1000) - 1000
  const signingKey = WEBHOOK_KEY
  // Opened before delivered (webhooks arrive in any order): each first event is measured from the beginning.
  await sim.deliver('d-order', [{ metric: 'sent', after: 0 }, { metric: 'opened', after: 90 }, { metric: 'delivered', after: 10 }], { url, signingKey, start })
  // The same metric twice (Customer.io's copies are new event ids): only the first is measured.
  await sim.deliver('d-twice', [{ metric: 'sent', after: 0 }, { metric: 'delivered', after: 20 }, { metric: 'delivered', after: 500 }], { url, signingKey, start })
  // No beginning known: nothing to measure from; the outcome still settles it.
  await sim.deliver('d-unknown', [{ metric: 'delivered', after: 5 }, { metric: 'opened', after: 7 }], { url, signingKey, start })
  // A beginning that arrives after an event: the earlier event is not measured, later ones are.
  await sim.deliver('d-late-start', [{ metric: 'opened', after: 50 }, { metric: 'sent', after: 0 }, { metric: 'clicked', after: 60 }], { url, signingKey, start })
  const delivered = latency(app, 'email', 'delivered')
  await until(async () => { if (await latency(app, 'email', 'clicked').count() !== 1) throw new Error('not yet') })
  await until(async () => { if (await delivered.count() !== 2) throw new Error('not yet') })
  t.equal(await delivered.sum(), 10 + 20, 'd-order 10 s, d-twice 20 s; d-unknown not measured')
  t.equal(await latency(app, 'email', 'opened').count(), 1, 'd-order only')
  t.equal(await latency(app, 'email', 'opened').sum(), 90)
  t.equal(await latency(app, 'email', 'clicked').sum(), 60)
  t.equal(await metric(app, 'cio_delivery_started_total', { channel: 'email' }), 3)
})

/** A tracker on its own registry and `store`, on a clock the test moves. */
function tracker (store: DeliverySettings['store'], clock = new ManualClock(), confirmWithinSeconds = 900) {
  const client = { ...promClient, register: new promClient.Registry() } as unknown as PromClient
  const delivery = new DeliveryTracker({ ...DELIVERY_DEFAULTS, confirmWithinSeconds, store }, createMetrics(client, { version: '0', sdkVersion: '0' }), pino({ level: 'silent' }), clock)
  return { delivery, clock, unconfirmed: (channel = 'email') => registryMetric(client.register, 'cio_delivery_unconfirmed_total', { channel }), register: client.register }
}

/** A handled webhook event, as the route hands it to the tracker. */
const read = (objectType: string, metric: string, deliveryId: string, timestamp: number): ReadEvent =>
  ({ event: { event_id: `${deliveryId}-${metric}`, object_type: objectType, metric, timestamp, data: { delivery_id: deliveryId } }, labels: { objectType, metric }, eventId: `${deliveryId}-${metric}` }) as unknown as ReadEvent

t.test('a delivery with only sent is counted unconfirmed once after the window, by one of three instances sharing Redis (clock moved by hand)', async (t) => {
  const redis = await startRedis(t)
  const client = new Redis(redis.url)
  t.teardown(() => client.disconnect())
  const clock = new ManualClock()
  const instances = [1, 2, 3].map(() => tracker(new RedisDeliveryStore(client, { prefix: 'three:' }), clock))
  t.teardown(() => Promise.all(instances.map((i) => i.delivery.close())))
  const now = clock.now() / 1000
  instances[0]!.delivery.event(read('email', 'sent', 'void', now))
  instances[1]!.delivery.event(read('email', 'sent', 'arrives', now))
  instances[2]!.delivery.event(read('email', 'delivered', 'arrives', now + 3))
  // Slack has no delivery receipts: never unconfirmed.
  instances[2]!.delivery.event(read('slack', 'sent', 'no-receipts', now))
  await until(async () => { if (Number(await client.zcard('three:deadlines')) !== 1) throw new Error('not yet') })
  clock.advance(899_000)
  await until(async () => { if (Number(await client.zcard('three:deadlines')) !== 1) throw new Error('not yet') })
  t.same(await Promise.all(instances.map((i) => i.unconfirmed())), [0, 0, 0], 'not before the window ends')
  // Past the window and the next sweep (every 10 s).
  clock.advance(12_000)
  await until(async () => { if ((await Promise.all(instances.map((i) => i.unconfirmed()))).reduce((a, b) => a + b) !== 1) throw new Error('not yet') })
  clock.advance(60_000)
  await until(async () => { if (Number(await client.zcard('three:deadlines')) !== 0) throw new Error('not yet') })
  const counts = await Promise.all(instances.map((i) => i.unconfirmed()))
  t.equal(counts.reduce((a, b) => a + b), 1, `counted once in all: ${counts.join(', ')}`)
  t.same([await client.hget('three:d:void', 'u'), await client.hget('three:d:arrives', 'u')], ['1', null], 'the record says it was counted unconfirmed')
  t.notMatch(await instances[0]!.register.metrics(), /cio_delivery_unconfirmed_total\{channel="slack"\}/, 'slack has no receipts: never unconfirmed')
  // A late outcome is still measured.
  instances[1]!.delivery.event(read('email', 'delivered', 'void', now + 1_000))
  await until(async () => { if (await registryMetric(instances[1]!.register, 'cio_delivery_latency_seconds_count', { channel: 'email', metric: 'delivered' }) !== 1) throw new Error('not yet') })
  t.equal(await registryMetric(instances[1]!.register, 'cio_delivery_latency_seconds_sum', { channel: 'email', metric: 'delivered' }), 1_000)
  t.ok(Number(await client.pttl('three:d:void')) > 0, 'records expire')
})

t.test('real time, a 2 s window, three apps on one Redis: the delivery with only sent is counted once', { timeout: 60_000 }, async (t) => {
  const redis = await startRedis(t)
  const client = new Redis(redis.url)
  t.teardown(() => client.disconnect())
  const sim = await startSimulator(t)
  const apps = await Promise.all([1, 2, 3].map(() => deliveryApp(t, sim, { delivery: { confirmWithinSeconds: 2, store: new RedisDeliveryStore(client, { prefix: 'real:' }) } })))
  const total = async () => (await Promise.all(apps.map(({ app }) => metric(app, 'cio_delivery_unconfirmed_total', { channel: 'email' })))).reduce((a, b) => a + b)
  await sim.deliver('real-void', [{ metric: 'sent', after: 0 }], { url: apps[0]!.url, signingKey: WEBHOOK_KEY })
  await sim.deliver('real-ok', [{ metric: 'sent', after: 0 }], { url: apps[1]!.url, signingKey: WEBHOOK_KEY })
  await sim.deliver('real-ok', [{ metric: 'delivered', after: 1 }], { url: apps[2]!.url, signingKey: WEBHOOK_KEY })
  await until(async () => { if (await total() < 1) throw new Error('not yet') })
  // Several sweeps of every instance later, still once.
  await until(async () => { if (Number(await client.zcard('real:deadlines')) !== 0) throw new Error('not yet') })
  // A count twice would come from another instance's later sweep: wait until the three have swept
  // twice more each (every sweep is one EVAL; nothing else runs a script now), then look again.
  const sweeps = async () => Number(/cmdstat_eval:calls=(\d+)/.exec(await client.info('commandstats'))?.[1] ?? 0)
  const before = await sweeps()
  await until(async () => { if (await sweeps() < before + 6) throw new Error('not yet') })
  t.equal(await total(), 1)
})

t.test('1 000 000 deliveries through the memory store keep it at its bound; each one forgotten is counted', async (t) => {
  let evicted = 0
  const store = new MemoryDeliveryStore({ size: 10_000, onEvict: () => { evicted++ } })
  for (let i = 0; i < 1_000_000; i++) {
    store.record({ deliveryId: `d${i}`, channel: 'email', metric: 'sent', at: i, begins: true, outcome: false, awaitsOutcome: true, confirmWithinMs: 900_000 })
  }
  t.equal(store.size, 10_000)
  t.equal(evicted, 990_000)
  // And in time: everything is forgotten once its window and margin passed.
  t.equal(store.expire(1_000_000 + 900_000).length, 10_000, 'the rest expire unconfirmed')
  store.expire(1_000_000 + 2 * 900_000)
  t.equal(store.size, 0)
  const later = { deliveryId: 'n', channel: 'email' as const, metric: 'a_metric_added_later', at: 0, begins: false, outcome: false, awaitsOutcome: true, confirmWithinMs: 1 }
  t.equal(store.record(later).first, true)
  t.equal(store.record(later).first, true, 'a metric this version does not know is each time a first')
})

t.test('a full memory store forgets the least recent delivery, also after expiry took some or all of them', async (t) => {
  let evicted = 0
  const store = new MemoryDeliveryStore({ size: 3, onEvict: () => { evicted++ } })
  const begin = (deliveryId: string, at = 0) => store.record({ deliveryId, channel: 'email', metric: 'sent', at, begins: true, outcome: false, awaitsOutcome: true, confirmWithinMs: 1_000 })
  const known = (deliveryId: string) => !begin(deliveryId).started
  begin('a')
  begin('b')
  begin('c', 100_000)
  store.expire(70_000)
  t.equal(store.size, 1, 'a and b expired')
  begin('d', 100_000)
  begin('e', 100_000)
  begin('f', 100_000)
  t.equal(evicted, 1)
  t.ok(known('d') && known('e') && known('f'), 'd, e and f are kept')
  t.notOk(known('c'), 'c, the oldest left, was forgotten')
  store.expire(1_000_000)
  t.equal(store.size, 0, 'every record expired')
  for (const id of ['g', 'h', 'i', 'j']) begin(id, 1_000_000)
  t.ok(known('h') && known('i') && known('j'), 'the newest three are kept')
  t.notOk(known('g'), 'g, the oldest, was forgotten')
  // In order of latest event: a later event keeps its record, and does not keep the others.
  const open = (deliveryId: string, at: number) => store.record({ deliveryId, channel: 'email', metric: 'opened', at, begins: false, outcome: false, awaitsOutcome: true, confirmWithinMs: 1_000 })
  store.expire(2_000_000)
  begin('k', 2_000_000)
  begin('l', 2_000_000)
  open('k', 2_060_000)
  store.expire(2_070_000)
  t.equal(store.size, 1, 'l was forgotten on time although k, older, is kept')
  t.ok(known('k'))
})

t.test('the memory store answers as a plain model of it does, over random events, sweeps and time', async (t) => {
  /** The store, plainly: records in an array in order of latest event, every one looked at each time. */
  interface Kept { id: string, channel: string, beganAt: number | undefined, seen: Set<string>, deadline: number | undefined, settled: boolean, keepUntil: number }
  class Model {
    records: Kept[] = []
    evicted = 0
    readonly size: number
    constructor (size: number) { this.size = size }
    record (e: DeliveryEvent) {
      let r = this.records.find((k) => k.id === e.deliveryId)
      if (r !== undefined) {
        this.records = [...this.records.filter((k) => k !== r), r]
      } else {
        r = { id: e.deliveryId, channel: e.channel, beganAt: undefined, seen: new Set(), deadline: undefined, settled: false, keepUntil: 0 }
        this.records.push(r)
        if (this.records.length > this.size) { this.records.shift(); this.evicted++ }
      }
      const started = e.begins && r.beganAt === undefined
      if (e.begins) r.beganAt = Math.min(r.beganAt ?? e.at, e.at)
      const first = !r.seen.has(e.metric)
      r.seen.add(e.metric)
      r.keepUntil = Math.max(r.keepUntil, e.at + keepFor(e.confirmWithinMs))
      if (e.outcome) r.settled = true
      r.deadline = !r.settled && e.awaitsOutcome && r.beganAt !== undefined ? r.beganAt + e.confirmWithinMs : undefined
      return { started, beganAt: r.beganAt, first }
    }

    expire (now: number) {
      const due = this.records.filter((r) => r.deadline !== undefined && r.deadline <= now)
      for (const r of due) { r.deadline = undefined; r.settled = true }
      while (this.records.length > 0 && this.records[0]!.keepUntil <= now) this.records.shift()
      return due.map((r) => r.channel).sort()
    }
  }
  const METRICS = [['sent', true, false], ['drafted', true, false], ['delivered', false, true], ['bounced', false, true], ['opened', false, false]] as const
  let seed = 7
  const random = (n: number) => {
    seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0
    return (seed >>> 8) % n
  }
  let mismatches = 0
  for (const size of [1, 3, 10, 50]) {
    let evicted = 0
    const store = new MemoryDeliveryStore({ size, onEvict: () => { evicted++ } })
    const model = new Model(size)
    const pool = Array.from({ length: size * 3 }, (_, i) => `d${size}-${i}`)
    let clock = 0
    for (let step = 0; step < 20_000; step++) {
      const op = random(10)
      if (op < 7) {
        const [metric, begins, outcome] = METRICS[random(METRICS.length)]!
        // Now and then an event from the future (a clock ahead of ours), or a late one.
        const at = clock - random(2_000) + (random(40) === 0 ? 90_000 : 0) - (random(40) === 0 ? 90_000 : 0)
        const event: DeliveryEvent = { deliveryId: pool[random(pool.length)]!, channel: random(4) === 0 ? 'slack' : 'email', metric, at, begins, outcome, awaitsOutcome: random(4) !== 0, confirmWithinMs: 1_000 }
        const [got, want] = [store.record(event), model.record(event)]
        if (JSON.stringify(got) !== JSON.stringify(want) && mismatches++ < 5) t.fail(`size ${size}, step ${step}: record answered ${JSON.stringify(got)}, the model ${JSON.stringify(want)}`)
      } else if (op < 9) {
        const [got, want] = [[...store.expire(clock)].sort(), model.expire(clock)]
        if (JSON.stringify(got) !== JSON.stringify(want) && mismatches++ < 5) t.fail(`size ${size}, step ${step}: expire answered ${got.join()}, the model ${want.join()}`)
      } else {
        clock += random(20_000)
      }
      if ((store.size !== model.records.length || evicted !== model.evicted) && mismatches++ < 5) t.fail(`size ${size}, step ${step}: ${store.size} held and ${evicted} evicted, the model ${model.records.length} and ${model.evicted}`)
    }
  }
  t.equal(mismatches, 0, 'no answer differed from the model')
})

t.test('the tracker through the plugin counts evictions and store errors, and never fails an answer or a send', async (t) => {
  const sim = await startSimulator(t)
  const failing = { record: async () => { throw new Error('store down') }, expire: async () => { throw new Error('store down') } }
  const { app, url, logs } = await deliveryApp(t, sim, { delivery: { store: failing, confirmWithinSeconds: 1 } })
  const [answer] = await sim.deliver('d-x', [{ metric: 'sent', after: 0 }], { url, signingKey: WEBHOOK_KEY })
  t.equal(answer!.status, 200)
  await app.cio.sendEmail(new SendEmailRequest({ to: 'x@example.com', identifiers: { id: 'p1' }, transactional_message_id: 1 }))
  await until(async () => { if (await metric(app, 'cio_delivery_store_errors_total') < 3) throw new Error('not yet') })
  t.equal(logs.lines.filter((l) => l.msg === 'customer.io delivery store failed; delivery tracking misses events until it is back').length, 1, 'logged once')

  const small = await deliveryApp(t, sim, { delivery: { store: { size: 1 } } })
  await sim.deliver('a', [{ metric: 'sent', after: 0 }], { url: small.url, signingKey: WEBHOOK_KEY })
  await sim.deliver('b', [{ metric: 'sent', after: 0 }], { url: small.url, signingKey: WEBHOOK_KEY })
  await until(async () => { if (await metric(small.app, 'cio_delivery_evicted_total') !== 1) throw new Error('not yet') })
  t.pass('the eviction was counted')
})

t.test('options: on with the webhook route, off with delivery: false; checked at registration', async (t) => {
  const sim = await startSimulator(t)
  const on = await buildApp(t, simOptions(sim))
  t.equal(await metric(on.app, 'cio_delivery_started_total', { channel: 'email' }), 0, 'on by default')
  const off = await buildApp(t, simOptions(sim, { delivery: false }))
  t.notMatch((await off.app.inject('/metrics')).body, /cio_delivery_/)
  const bad = async (options: CioObservabilityOptions) => (await rejection(buildApp(t, simOptions(sim, options)))).message
  t.match(await bad({ delivery: { confirmWithinSeconds: 0 } }), /delivery\.confirmWithinSeconds/)
  t.match(await bad({ delivery: { store: 'redis' as never } }), /delivery\.store/)
  t.match(await bad({ delivery: { store: { size: 0 } } }), /delivery\.store\.size/)
  t.match(await bad({ webhook: false, delivery: {} }), /"delivery".*needs the webhook route/)
  const noRoute = await buildApp(t, simOptions(sim, { webhook: false }))
  t.notMatch((await noRoute.app.inject('/metrics')).body, /cio_delivery_/, 'off without the route')
})

t.test('events that are not a delivery\'s are not recorded; a store that answers at once works as well as one that awaits', async (t) => {
  const store = new MemoryDeliveryStore({ size: 1 })
  const { delivery, register } = tracker(store)
  t.teardown(() => delivery.close())
  delivery.event(read('customer', 'subscribed', 'x', 1))
  delivery.event({ event: { object_type: '_other', metric: '_other', event_id: 'e', timestamp: 1, raw: {} }, labels: { objectType: '_other', metric: '_other' }, eventId: 'e' })
  delivery.event({ ...read('email', 'sent', '', 1) })
  const noId = read('email', 'sent', 'y', 1)
  delete (noId.event as { data: Record<string, unknown> }).data.delivery_id
  delivery.event(noId)
  await new Promise(setImmediate)
  t.equal(store.size, 0, 'nothing recorded')
  delivery.event(read('push', 'sent', 'p1', 1))
  delivery.event(read('push', 'sent', 'p2', 1))
  await until(async () => { if (await registryMetric(register, 'cio_delivery_started_total', { channel: 'push' }) !== 2) throw new Error('not yet') })
  t.equal(store.size, 1, 'the store\'s own bound, without an onEvict')
})

t.test('the Redis store answers a delivery without a known beginning', async (t) => {
  const redis = await startRedis(t)
  const client = new Redis(redis.url)
  t.teardown(() => client.disconnect())
  const store = new RedisDeliveryStore(client)
  const event = { deliveryId: 'u', channel: 'email' as const, metric: 'delivered', at: 5_000, begins: false, outcome: true, awaitsOutcome: true, confirmWithinMs: 1_000 }
  t.same(await store.record(event), { started: false, beganAt: undefined, first: true })
  t.same(await store.record(event), { started: false, beganAt: undefined, first: false })
  t.same(await store.record({ ...event, metric: 'sent', at: 4_000, begins: true, outcome: false }), { started: true, beganAt: 4_000, first: true })
  t.same(await store.expire(1e13), [], 'settled: never unconfirmed')
})

t.test('the Redis store answers expired deliveries again when an answer was lost (a timeout while Redis hung), and never twice', async (t) => {
  const redis = await startRedis(t)
  const client = new Redis(redis.url)
  t.teardown(() => client.disconnect())
  let lose = false
  const lossy = {
    eval: async (...args: Parameters<Redis['eval']>) => {
      const answer = await client.eval(...args)
      if (lose) {
        lose = false
        throw new Error('Command timed out')
      }
      return answer
    }
  }
  const store = new RedisDeliveryStore(lossy, { prefix: 'lossy:' })
  const event = { channel: 'email' as const, metric: 'sent', at: 1_000, begins: true, outcome: false, awaitsOutcome: true, confirmWithinMs: 1_000 }
  await store.record({ ...event, deliveryId: 'a' })
  await store.record({ ...event, deliveryId: 'b', channel: 'sms' })
  lose = true
  await t.rejects(store.expire(5_000), /timed out/, 'Redis settled them; the answer was lost')
  t.same(await store.expire(6_000), ['email', 'sms'], 'answered again')
  t.same(await store.expire(7_000), [], 'and not again')
  await store.record({ ...event, deliveryId: 'c', at: 7_000 })
  t.same(await store.expire(9_000), ['email'])
  t.equal(Number(await client.llen(`lossy:expired:${(await client.keys('lossy:expired:*'))[0]!.split(':').pop()}`)), 1, 'only the last answer is kept, until the next call')
})
