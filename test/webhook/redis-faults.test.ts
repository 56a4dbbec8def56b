import t, { type Test } from 'tap'
import Fastify from 'fastify'
import pino from 'pino'
import { Redis } from 'ioredis'
import cioObservability, { MemoryDedupeStore, RedisDedupeStore, type CioWebhookOptions, type DedupeStore } from '../../lib/index.ts'
import { createDirectHandler } from '../../lib/webhook/direct.ts'
import { parseEvent } from '../../lib/webhook/events.ts'
import { webhookEvent } from '../../lib/testing/index.ts'
import { gate } from '../fixtures/gate.ts'
import { startRedis, type RedisServer } from '../fixtures/redis.ts'
import { counter, until } from '../fixtures/wait.ts'
import { buildApp, captureLogs, metric, postWebhook, simOptions, startSimulator, WEBHOOK_KEY } from '../helpers.ts'

/** The app's own client, with the options the README gives for a store that must fail fast. */
function appClient (t: Test, server: RedisServer): Redis {
  const client = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 300 })
  client.on('error', () => {})
  t.teardown(() => client.disconnect())
  return client
}

async function redisStoreApp (t: Test, server: RedisServer, webhook: CioWebhookOptions = {}) {
  const client = appClient(t, server)
  await until(async () => { await client.ping() })
  const sim = await startSimulator(t)
  return buildApp(t, simOptions(sim, { webhook: { signingKeys: WEBHOOK_KEY, answerWithinMs: 1_000, dedupe: new RedisDedupeStore(client, { prefix: `t${Math.random()}:` }), ...webhook } }))
}

t.test('a hung Redis (SIGSTOP) under the Redis store: 503 within the answer budget, then the copy runs once', async (t) => {
  const server = await startRedis(t)
  const runs = counter()
  const { app } = await redisStoreApp(t, server, { onEvent: () => { runs.tick() } })
  const event = webhookEvent('email', 'delivered')
  server.pause()
  const hung = await postWebhook(app, event)
  t.equal(hung.statusCode, 503)
  t.equal(hung.json().code, 'FST_CIO_WEBHOOK_RETRY_LATER')
  t.equal(runs.count, 0)
  server.resume()
  const res = await until(async () => {
    const copy = await postWebhook(app, event)
    if (copy.statusCode !== 200) throw new Error(`answered ${copy.statusCode}`)
    return copy
  })
  t.same(res.json(), { ok: true })
  t.equal(runs.count, 1, 'onEvent ran once')
  t.equal((await postWebhook(app, event)).json().duplicate, true)
})

t.test('a Redis killed and restarted: 503 while it is down, the event handled once it is back', async (t) => {
  const server = await startRedis(t)
  const runs = counter()
  const { app } = await redisStoreApp(t, server, { onEvent: () => { runs.tick() } })
  const event = webhookEvent('email', 'opened')
  await server.kill()
  t.equal((await postWebhook(app, event)).statusCode, 503)
  t.ok(await metric(app, 'cio_webhook_store_errors_total', { call: 'claim' }) >= 1, 'the failed claim is counted')
  await server.start()
  await until(async () => { if ((await postWebhook(app, event)).statusCode !== 200) throw new Error('not yet') })
  t.equal(runs.count, 1)
})

t.test('a confirm that fails while Redis refuses writes: retried, never a silent second run', async (t) => {
  const server = await startRedis(t)
  const admin = new Redis(server.url)
  t.teardown(() => admin.disconnect())
  const runs = counter()
  const held = gate()
  const { app, logs } = await redisStoreApp(t, server, { onEvent: async () => { runs.tick(); await held.promise } })
  const event = webhookEvent('email', 'clicked')
  const first = postWebhook(app, event)
  await runs.reached(1)
  // Writes fail (OOM) from here on: the confirm after onEvent cannot land.
  await admin.config('SET', 'maxmemory-policy', 'noeviction')
  await admin.config('SET', 'maxmemory', '1')
  held.open()
  const answer = await first
  t.equal(answer.statusCode, 503)
  t.equal(answer.json().code, 'FST_CIO_WEBHOOK_RETRY_LATER', 'not HANDLER_FAILED: the handler did not fail')
  t.equal(await metric(app, 'cio_webhook_handler_errors_total'), 0)
  t.ok(await metric(app, 'cio_webhook_store_errors_total', { call: 'confirm' }) >= 1)
  t.ok(logs.lines.some((l) => l.msg === 'customer.io webhook dedupe store failed' && l.operation === 'confirm'), 'logged')
  const copy = await postWebhook(app, event)
  t.equal(copy.statusCode, 503, 'a copy meanwhile waits: the claim is alive')
  t.equal(runs.count, 1, 'and does not run onEvent')
  await admin.config('SET', 'maxmemory', '0')
  const done = await until(async () => {
    const res = await postWebhook(app, event)
    if (res.statusCode !== 200) throw new Error(`answered ${res.statusCode}`)
    return res
  })
  t.same(done.json(), { ok: true, duplicate: true }, 'the confirm landed once Redis took writes again')
  t.equal(runs.count, 1, 'onEvent ran once')
  t.equal(await metric(app, 'cio_webhook_received_total', { object_type: 'email', metric: 'clicked' }), 1, 'counted once')
})

t.test('a store whose confirm fails for a while: answered 200 once a retry lands within the budget', async (t) => {
  const memory = new MemoryDedupeStore()
  let failures = 3
  const store: DedupeStore = {
    claim: (id, lease) => memory.claim(id, lease),
    confirm: (id) => {
      if (failures-- > 0) throw new Error('READONLY You can\'t write against a read only replica.')
      return memory.confirm(id)
    },
    release: (id) => memory.release(id)
  }
  const sim = await startSimulator(t)
  const runs = counter()
  const { app } = await buildApp(t, simOptions(sim, { webhook: { signingKeys: WEBHOOK_KEY, dedupe: store, onEvent: () => { runs.tick() } } }))
  const res = await postWebhook(app, webhookEvent('push', 'delivered'))
  t.same(res.json(), { ok: true })
  t.equal(await metric(app, 'cio_webhook_store_errors_total', { call: 'confirm' }), 3)
  t.equal(await metric(app, 'cio_webhook_received_total', { object_type: 'push', metric: 'delivered' }), 1)
  t.equal(runs.count, 1)
})

t.test('inbox mode under a hung Redis: 503 within the answer budget, the event stored once Redis answers, close() bounded', async (t) => {
  const server = await startRedis(t, { appendonly: true })
  const sim = await startSimulator(t)
  const runs = counter()
  const { app } = await buildApp(t, simOptions(sim, {
    webhook: {
      signingKeys: WEBHOOK_KEY,
      answerWithinMs: 1_000,
      inbox: { connection: server.url, backoffMs: 1, closeTimeoutMs: 500 },
      onEvent: () => { runs.tick() }
    }
  }))
  const event = webhookEvent('sms', 'delivered')
  server.pause()
  const hung = await postWebhook(app, event)
  t.equal(hung.statusCode, 503)
  t.equal(hung.json().code, 'FST_CIO_WEBHOOK_RETRY_LATER')
  server.resume()
  await until(async () => { if ((await postWebhook(app, event)).statusCode !== 200) throw new Error('not yet') })
  await runs.reached(1)
  t.equal(runs.count, 1, 'onEvent ran once, whichever copy stored it')

  server.pause()
  await app.close()
  t.pass('app.close() resolved while Redis hung')
  server.resume()
})

t.test('a store whose claim throws answers 503 RETRY_LATER, counted and logged', async (t) => {
  const sim = await startSimulator(t)
  const { app, logs } = await buildApp(t, simOptions(sim, {
    webhook: { signingKeys: WEBHOOK_KEY, dedupe: { claim: () => { throw new Error('bug') }, confirm: () => {}, release: () => {} } }
  }))
  const res = await postWebhook(app, webhookEvent('email', 'sent'))
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'FST_CIO_WEBHOOK_RETRY_LATER')
  t.equal(await metric(app, 'cio_webhook_store_errors_total', { call: 'claim' }), 1)
  t.ok(logs.lines.some((l) => l.msg === 'customer.io webhook dedupe store failed'))
})

t.test('a claim that lapses before any confirm lands: unconfirmed (answered RETRY_LATER), logged, not counted as received', async (t) => {
  const memory = new MemoryDedupeStore()
  const confirms = counter()
  const stores: Record<string, DedupeStore> = {
    'confirm always fails': { claim: (id, lease) => memory.claim(id, lease), confirm: () => { confirms.tick(); throw new Error('OOM command not allowed') }, release: () => {} },
    'confirm never answers': { claim: (id, lease) => memory.claim(id, lease), confirm: () => { confirms.tick(); return new Promise<void>(() => {}) }, release: () => {} }
  }
  // The handler's own timers never hold a process open (a server does, in an app): this test's does.
  const alive = setInterval(() => {}, 1_000)
  t.teardown(() => clearInterval(alive))
  for (const [name, store] of Object.entries(stores)) {
    const { logs, stream } = captureLogs()
    const errors: string[] = []
    const runs = counter()
    const handle = createDirectHandler({
      store,
      onEvent: () => { runs.tick() },
      answerWithinMs: 3_000,
      leaseMs: 100,
      record: () => { t.fail('an unconfirmed event is not counted as received') },
      handlerFailed: () => { t.fail('the handler did not fail') },
      storeFailed: (call) => { errors.push(call) },
      tracing: undefined,
      log: pino({ level: 'info' }, stream),
      secrets: []
    })
    const read = parseEvent(Buffer.from(JSON.stringify(webhookEvent('email', 'delivered'))))
    t.equal(await handle(read, undefined as never, Date.now()), 'unconfirmed', name)
    t.equal(runs.count, 1, `${name}: onEvent ran once`)
    t.ok(errors.length >= 1 && errors.every((call) => call === 'confirm'), `${name}: each failed confirm counted`)
    t.ok(logs.lines.some((l) => l.msg === 'customer.io webhook event handled but not confirmed'), `${name}: logged`)
  }
})

t.test('an app hook that throws on the webhook route answers 503, not a 4xx', async (t) => {
  const sim = await startSimulator(t)
  const { stream, logs } = captureLogs()
  const app = Fastify({ logger: { stream } })
  t.teardown(() => app.close())
  app.addHook('preHandler', async () => { throw new Error('bug in an app hook') })
  await app.register(cioObservability, simOptions(sim))
  const res = await postWebhook(app, webhookEvent('email', 'sent'))
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'FST_CIO_WEBHOOK_RETRY_LATER')
  t.ok(logs.lines.some((l) => l.msg === 'customer.io webhook route failed'))
})

t.test('a slow Redis (DEBUG SLEEP 2): the Redis store and the inbox answer 503 in time, then take the event once', async (t) => {
  const server = await startRedis(t)
  const admin = new Redis(server.url)
  admin.on('error', () => {})
  t.teardown(() => admin.disconnect())
  const store = counter()
  const { app } = await redisStoreApp(t, server, { onEvent: () => { store.tick() } })
  const sim = await startSimulator(t)
  const inboxRuns = counter()
  const inbox = await buildApp(t, simOptions(sim, {
    webhook: { signingKeys: WEBHOOK_KEY, answerWithinMs: 1_000, inbox: { connection: server.url, backoffMs: 1, queueName: 'slow' }, onEvent: () => { inboxRuns.tick() } }
  }))
  const first = webhookEvent('email', 'bounced')
  const second = webhookEvent('email', 'spammed')
  const sleeping = admin.call('DEBUG', 'SLEEP', '2')
  t.equal((await postWebhook(app, first)).statusCode, 503, 'Redis store')
  t.equal((await postWebhook(inbox.app, second)).statusCode, 503, 'inbox')
  await sleeping
  await until(async () => { if ((await postWebhook(app, first)).statusCode !== 200) throw new Error('not yet') })
  await until(async () => { if ((await postWebhook(inbox.app, second)).statusCode !== 200) throw new Error('not yet') })
  await inboxRuns.reached(1)
  t.equal(store.count, 1)
  t.equal(inboxRuns.count, 1)
})
