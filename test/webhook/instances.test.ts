import t, { type Test } from 'tap'
import { once } from 'node:events'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import type { CioWebhookOptions } from '../../lib/index.ts'
import { webhookEvent } from '../../lib/testing/index.ts'
import { RedisDedupeStore } from '../../lib/webhook/redis-dedupe.ts'
import { startRedis } from '../fixtures/redis.ts'
import { counter } from '../fixtures/wait.ts'
import { buildApp, metric, simOptions, startSimulator, postWebhook, WEBHOOK_KEY } from '../helpers.ts'

const redis = await startRedis(t)
let queues = 0

async function instances (t: Test, webhook: () => Promise<CioWebhookOptions> | CioWebhookOptions) {
  const sim = await startSimulator(t)
  return Promise.all([1, 2, 3].map(async () => (await buildApp(t, simOptions(sim, { logLevel: 'warn', webhook: { signingKeys: WEBHOOK_KEY, ...await webhook() } }))).app))
}

/** A series summed over the instances; each must have it. */
async function total (apps: FastifyInstance[], name: string, labels?: Record<string, string>): Promise<number> {
  let sum = 0
  for (const app of apps) sum += await metric(app, name, labels)
  return sum
}

/** 200 distinct events, each POSTed to all three instances at once. */
async function deliverEverywhere (apps: FastifyInstance[]) {
  const events = Array.from({ length: 200 }, () => webhookEvent('email', 'delivered'))
  const answers = await Promise.all(events.flatMap((event) => apps.map((app) => postWebhook(app, event))))
  return { events, statuses: answers.map((a) => a.statusCode) }
}

t.test('three instances sharing a Redis dedupe store: 600 copies of 200 events, onEvent ran 200 times, counts exact', async (t) => {
  const handled: string[] = []
  const apps = await instances(t, async () => {
    // Fails fast while Redis is down (a 503 Customer.io retries) instead of holding requests.
    const client = new Redis(redis.port, '127.0.0.1', { enableOfflineQueue: false })
    t.teardown(() => client.quit())
    await once(client, 'ready')
    return { dedupe: new RedisDedupeStore(client, { prefix: 'instances:' }), onEvent: (event) => { handled.push(String(event.event_id)) } }
  })
  const { events, statuses } = await deliverEverywhere(apps)
  t.same([...new Set(statuses)], [200], 'every copy answered 200')
  t.equal(handled.length, 200)
  t.same(new Set(handled), new Set(events.map((e) => e.event_id)), 'each event once')
  t.equal(await total(apps, 'cio_webhook_received_total', { object_type: 'email', metric: 'delivered' }), 200)
  t.equal(await total(apps, 'cio_webhook_duplicates_total'), 400)
})

t.test('three instances in inbox mode: 600 copies of 200 events, onEvent ran 200 times, counted once when each job completed', async (t) => {
  const done = counter()
  const handled: string[] = []
  const queueName = `instances-${++queues}`
  const apps = await instances(t, () => ({
    inbox: { connection: redis.url, queueName, concurrency: 4 },
    onEvent: (event) => { handled.push(String(event.event_id)); done.tick() }
  }))
  const { events, statuses } = await deliverEverywhere(apps)
  t.same([...new Set(statuses)], [200], 'every copy answered 200 once stored')
  await done.reached(200)
  const received = async () => total(apps, 'cio_webhook_received_total', { object_type: 'email', metric: 'delivered' })
  while (await received() < 200) await new Promise(setImmediate)
  t.equal(handled.length, 200)
  t.same(new Set(handled), new Set(events.map((e) => e.event_id)))
  t.equal(await received(), 200)
  t.equal(await total(apps, 'cio_webhook_duplicates_total'), 400)
  t.equal(await total(apps, 'cio_webhook_inbox_jobs', { state: 'failed' }), 0)
})
