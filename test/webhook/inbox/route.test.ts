import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import type { CioWebhookInboxOptions, CioWebhookOptions } from '../../../lib/index.ts'
import { webhookEvent } from '../../../lib/testing/index.ts'
import { gate } from '../../fixtures/gate.ts'
import { startRedis } from '../../fixtures/redis.ts'
import { counter, until } from '../../fixtures/wait.ts'
import { buildApp, metric, simOptions, startSimulator, postWebhook, WEBHOOK_KEY } from '../../helpers.ts'

const redis = await startRedis(t)
let queues = 0

async function inboxApp (t: Test, inbox: Partial<CioWebhookInboxOptions> = {}, webhook: CioWebhookOptions = {}) {
  const sim = await startSimulator(t)
  return buildApp(t, simOptions(sim, { webhook: { signingKeys: WEBHOOK_KEY, inbox: { connection: redis.url, queueName: `inbox-${++queues}`, backoffMs: 1, ...inbox }, ...webhook } }))
}

/** Waits until a metric reaches `n`: the worker counts when a job completes, after the test's own signal. */
async function reaches (app: FastifyInstance, name: string, n: number, labels?: Record<string, string>) {
  await until(async () => { if (await metric(app, name, labels) < n) throw new Error(`${name} < ${n}`) })
}

t.test('an onEvent that fails twice then succeeds is retried by BullMQ and counted once', async (t) => {
  const runs = counter()
  const { app } = await inboxApp(t, { attempts: 5 }, {
    onEvent: async () => {
      runs.tick()
      if (runs.count <= 2) throw new Error('database down')
    }
  })
  t.same((await postWebhook(app, webhookEvent('email', 'bounced'))).json(), { ok: true })
  await runs.reached(3)
  await reaches(app, 'cio_email_bounced_total', 1)
  t.equal(await metric(app, 'cio_webhook_received_total', { object_type: 'email', metric: 'bounced' }), 1)
  t.equal(await metric(app, 'cio_webhook_handler_errors_total'), 2, 'each failed run counted')
  t.equal(await metric(app, 'cio_webhook_inbox_jobs', { state: 'failed' }), 0)
})

t.test('an onEvent that always fails ends in the failed set, counted', async (t) => {
  const runs = counter()
  const { app } = await inboxApp(t, { attempts: 3 }, { onEvent: async () => { runs.tick(); throw new Error('bad data') } })
  await postWebhook(app, webhookEvent('email', 'sent'))
  await runs.reached(3)
  await reaches(app, 'cio_webhook_inbox_jobs', 1, { state: 'failed' })
  t.equal(await metric(app, 'cio_webhook_handler_errors_total'), 3)
  t.equal(await metric(app, 'cio_webhook_received_total', { object_type: 'email', metric: 'sent' }), 0, 'not counted as received')
})

t.test('the answer never waits on onEvent: a handler that takes long does not delay the 200', async (t) => {
  const slow = gate()
  const started = counter()
  const { app } = await inboxApp(t, {}, { onEvent: async () => { started.tick(); await slow.promise } })
  const res = await postWebhook(app, webhookEvent('email', 'delivered'))
  t.equal(res.statusCode, 200, 'answered while onEvent has not finished (it cannot: the test holds it)')
  await started.reached(1)
  t.equal(await metric(app, 'cio_webhook_inbox_jobs', { state: 'active' }), 1)
  slow.open()
  await reaches(app, 'cio_webhook_received_total', 1, { object_type: 'email', metric: 'delivered' })
})

t.test('Redis stopped: 503, so Customer.io keeps the event; once Redis is back the same event is accepted once', async (t) => {
  const own = await startRedis(t)
  const handled = counter()
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim, { webhook: { signingKeys: WEBHOOK_KEY, inbox: { connection: own.url, queueName: 'outage', backoffMs: 1 }, onEvent: () => { handled.tick() } } }))
  const event = webhookEvent('email', 'spammed')
  await own.stop()
  const down = await postWebhook(app, event)
  t.equal(down.statusCode, 503)
  t.equal(down.json().code, 'FST_CIO_WEBHOOK_RETRY_LATER')
  await own.start()
  const back = await until(async () => {
    const res = await postWebhook(app, event)
    if (res.statusCode !== 200) throw new Error(`still ${res.statusCode}`)
    return res
  })
  t.same(back.json(), { ok: true })
  t.same((await postWebhook(app, event)).json(), { ok: true, duplicate: true })
  await handled.reached(1)
  await reaches(app, 'cio_email_complained_total', 1)
  t.equal(handled.count, 1)
})

t.test('an event without a usable id gets a job of its own for every copy', async (t) => {
  const handled = counter()
  const { app } = await inboxApp(t, {}, { onEvent: () => { handled.tick() } })
  const event = { ...webhookEvent('sms', 'sent'), event_id: '' }
  t.same((await postWebhook(app, event)).json(), { ok: true })
  t.same((await postWebhook(app, event)).json(), { ok: true })
  await handled.reached(2)
  await reaches(app, 'cio_webhook_received_total', 2, { object_type: 'sms', metric: 'sent' })
})

t.test('worker: false receives only; a worker app elsewhere runs onEvent and counts it', async (t) => {
  const queueName = `split-${++queues}`
  const handled = counter()
  const receiver = await inboxApp(t, { queueName, worker: false }, { onEvent: () => { throw new Error('never here') } })
  const worker = await inboxApp(t, { queueName }, { onEvent: () => { handled.tick() } })
  t.same((await postWebhook(receiver.app, webhookEvent('push', 'opened'))).json(), { ok: true })
  await handled.reached(1)
  await reaches(worker.app, 'cio_webhook_received_total', 1, { object_type: 'push', metric: 'opened' })
  t.equal(await metric(receiver.app, 'cio_webhook_received_total', { object_type: 'push', metric: 'opened' }), 0, 'counted where it was handled')
})

t.test('closing the app closes what the inbox opened, not a connection the app passed in', async (t) => {
  const mine = new Redis(redis.port, '127.0.0.1')
  t.teardown(() => mine.quit())
  const { app } = await inboxApp(t, { connection: mine })
  await postWebhook(app, webhookEvent('email', 'sent'))
  await app.close()
  t.equal(await mine.ping(), 'PONG', 'the app\'s connection still works')
})

t.test('inbox options are validated at registration', async (t) => {
  const { default: Fastify } = await import('fastify')
  const { default: cio } = await import('../../../lib/index.ts')
  for (const [inbox, message] of [
    [{}, /"webhook.inbox.connection".*required/],
    [{ connection: 5 }, /"webhook.inbox.connection"/],
    [{ connection: redis.url, attempts: 0 }, /"webhook.inbox.attempts"/],
    [{ connection: redis.url, worker: 'yes' }, /"webhook.inbox.worker"/],
    [{ connection: redis.url, concurency: 2 }, /"webhook.inbox.concurency".*not a known option/],
    [true, /"webhook.inbox"/]
  ] as const) {
    const app = Fastify()
    app.register(cio, { env: {}, webhook: { signingKeys: 'k', inbox: inbox as never } })
    t.match(await app.ready().then(() => undefined, (e: unknown) => e), { code: 'FST_CIO_INVALID_OPTIONS', message })
    await app.close()
  }
})
