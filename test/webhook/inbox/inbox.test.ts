import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { UnrecoverableError } from 'bullmq'
import { Redis } from 'ioredis'
import type { RecognisedWebhookEvent } from '../../../lib/webhook/events.ts'
import { inboxJobId, WebhookInbox } from '../../../lib/webhook/inbox/inbox.ts'
import type { InboxJob, InboxOptions } from '../../../lib/webhook/inbox/options.ts'
import { InboxResources } from '../../../lib/webhook/inbox/redis.ts'
import { InboxWorker } from '../../../lib/webhook/inbox/worker.ts'
import { counter, until } from '../../fixtures/wait.ts'
import { startRedis, type RedisServer } from '../../fixtures/redis.ts'

const server = await startRedis(t)
let queues = 0

const event = (id: string): RecognisedWebhookEvent => ({ event_id: id, object_type: 'email', metric: 'delivered', timestamp: 1_767_225_590, data: {} })

/** The next `name` event; unlike events.once(), an 'error' on the way (a reconnection attempt) does not reject it. */
const next = (emitter: Redis, name: string) => new Promise<void>((resolve) => { emitter.once(name, () => resolve()) })

const silent = { error: () => {} }

/** An inbox on a queue of its own (the test's Redis unless `on` says otherwise), closed when the test ends. */
async function openInbox (t: Test, options: Partial<InboxOptions> & { on?: RedisServer } = {}) {
  const { on = server, ...rest } = options
  const inbox = await WebhookInbox.open({ connection: on.url, queueName: `q${++queues}`, log: silent, process: async () => {}, ...rest } as InboxOptions)
  t.teardown(() => inbox.close())
  return inbox
}

async function client (t: Test, url = server.url) {
  const redis = new Redis(url)
  redis.on('error', () => {})
  t.teardown(() => redis.disconnect())
  await next(redis, 'ready')
  return redis
}

t.test('job ids: an event_id as it is, unless BullMQ would refuse or misread it', async (t) => {
  t.equal(inboxJobId('01JGZ8K3M4N5P6Q7R8S9T0V1W2'), '01JGZ8K3M4N5P6Q7R8S9T0V1W2', 'a ULID stays itself')
  t.equal(inboxJobId('a:b%c'), 'a%3Ab%25c')
  for (const id of ['123', '0', '-1', 'NaN', '']) t.equal(inboxJobId(id), `${id}%`, JSON.stringify(id))
  const ids = ['a:b', 'a%3Ab', 'a%3Ab%', '123', '123%', '', '%', ':', '0:1', 'é:☃', ' spaced id ']
  t.equal(new Set(ids.map(inboxJobId)).size, ids.length, 'distinct event ids keep distinct job ids')

  const inbox = await openInbox(t, { worker: false })
  t.same(await Promise.all(ids.map((id) => inbox.add(event(id)))), ids.map(() => 'added'), 'BullMQ takes every one')
  t.same(await Promise.all(ids.map((id) => inbox.add(event(id)))), ids.map(() => 'duplicate'))
})

t.test('a process() that fails twice is retried with backoff and completes once', async (t) => {
  const calls = counter()
  const completed: InboxJob[] = []
  const done = counter()
  const failedForGood = counter()
  const inbox = await openInbox(t, {
    backoffMs: 5,
    process: async () => {
      calls.tick()
      if (calls.count <= 2) throw new Error(`attempt ${calls.count} failed`)
    },
    onCompleted: (_event, job) => { completed.push(job); done.tick() },
    onFailed: () => failedForGood.tick()
  })
  t.equal(await inbox.add(event('flaky')), 'added')
  await done.reached(1)
  t.equal(calls.count, 3)
  t.equal(completed.length, 1)
  t.equal(completed[0].id, 'flaky')
  t.equal(completed[0].attemptsMade, 3, 'three attempts ended')
  t.equal(failedForGood.count, 0, 'failed attempts that were retried are not failures')
  t.equal(await inbox.add(event('flaky')), 'duplicate', 'a late copy finds the completed job')
  t.same(await inbox.counts(), { waiting: 0, active: 0, delayed: 0, failed: 0 })
  t.equal(calls.count, 3)
})

t.test('a process() that always fails ends in the failed set, and onFailed is called once', async (t) => {
  const calls = counter()
  const failed = counter()
  const reasons: string[] = []
  const inbox = await openInbox(t, {
    attempts: 3,
    backoffMs: 5,
    process: async () => { calls.tick(); throw new Error('handler down') },
    onCompleted: () => t.fail('never completes'),
    onFailed: (failedEvent, err, job) => {
      reasons.push(`${failedEvent.event_id} ${err.message} after ${job.attemptsMade}`)
      failed.tick()
    }
  })
  t.equal(await inbox.add(event('doomed')), 'added')
  await failed.reached(1)
  t.equal(calls.count, 3)
  t.same(reasons, ['doomed handler down after 3'])
  t.same(await inbox.counts(), { waiting: 0, active: 0, delayed: 0, failed: 1 })
  t.equal(await inbox.add(event('doomed')), 'duplicate', 'a copy of a failed event is not run again')
})

t.test('three instances on one Redis, every event added at all three at once: each runs once', async (t) => {
  const queueName = `q${++queues}`
  const runs = new Map<string, number>()
  const completed = counter()
  const inboxes = await Promise.all([1, 2, 3].map(async () => {
    const inbox = await WebhookInbox.open({
      connection: server.url,
      queueName,
      concurrency: 4,
      log: silent,
      process: async (received) => { runs.set(received.event_id, (runs.get(received.event_id) ?? 0) + 1) },
      onCompleted: () => completed.tick()
    })
    t.teardown(() => inbox.close())
    return inbox
  }))
  const events = Array.from({ length: 200 }, (_, i) => event(`evt:${i}`))
  const answers = await Promise.all(events.map((e) => Promise.all(inboxes.map((inbox) => inbox.add(e)))))
  t.equal(answers.flat().filter((a) => a === 'added').length, 200)
  t.equal(answers.flat().filter((a) => a === 'duplicate').length, 400)
  t.ok(answers.every((copies) => copies.filter((a) => a === 'added').length === 1), 'one copy of each event created its job')
  await completed.reached(200)
  t.equal(runs.size, 200)
  t.ok([...runs.values()].every((n) => n === 1), 'process ran once per event')
  t.same(await inboxes[0].counts(), { waiting: 0, active: 0, delayed: 0, failed: 0 })
})

t.test('counts per state; close lets the active job finish first', async (t) => {
  let open = () => {}
  const gate = new Promise<void>((resolve) => { open = resolve })
  const started = counter()
  const failed = counter()
  const completed: string[] = []
  const inbox = await WebhookInbox.open({
    connection: { host: '127.0.0.1', port: server.port },
    queueName: `q${++queues}`,
    attempts: 2,
    backoffMs: 600_000,
    log: silent,
    process: async (received) => {
      started.tick()
      if (received.event_id === 'unrecoverable') throw new UnrecoverableError('fails at once')
      if (received.event_id === 'retry-later') throw new Error('retried in 10 minutes')
      await gate
    },
    onCompleted: (done) => completed.push(done.event_id),
    onFailed: () => failed.tick()
  })
  await inbox.add(event('unrecoverable'))
  await failed.reached(1)
  // One worker slot: 'blocking' starts only once 'retry-later' has been moved to the delayed set.
  await inbox.add(event('retry-later'))
  await inbox.add(event('blocking'))
  await started.reached(3)
  await inbox.add(event('queued'))
  t.same(await inbox.counts(), { waiting: 1, active: 1, delayed: 1, failed: 1 })

  const closed = inbox.close().then(() => completed.slice())
  open()
  t.same(await closed, ['blocking'], 'the active job completed before close resolved; the queued one waits')
})

t.test('Redis stopped: add rejects at once and the error is logged; once Redis is back the event is accepted once', async (t) => {
  const outage = await startRedis(t)
  const messages: string[] = []
  const runs = counter()
  const completed = counter()
  const inbox = await openInbox(t, {
    on: outage,
    log: { error: ({ err }, message) => { messages.push(`${message}: ${err.message}`) } },
    process: async () => runs.tick(),
    onCompleted: () => completed.tick()
  })
  await outage.stop()
  await t.rejects(inbox.add(event('during-outage')))
  await until(async () => { if (!messages.some((m) => m.includes('ECONNREFUSED'))) throw new Error('not logged yet') })
  t.ok(messages.every((m) => m.startsWith('customer.io webhook inbox error: ')), 'through the log it was given')

  await outage.start()
  t.equal(await until(() => inbox.add(event('during-outage'))), 'added')
  await completed.reached(1)
  t.equal(await inbox.add(event('during-outage')), 'duplicate')
  t.equal(runs.count, 1)
})

t.test('close() while Redis is down still resolves', async (t) => {
  const outage = await startRedis(t)
  const inbox = await WebhookInbox.open({ connection: outage.url, queueName: 'down', log: silent, process: async () => {} })
  await outage.stop()
  await inbox.close()
  t.pass('closed')
})

t.test('close() resolves when Redis goes away while an active job is finishing', async (t) => {
  const outage = await startRedis(t)
  const started = counter()
  let finish!: () => void
  const inbox = await WebhookInbox.open({
    connection: outage.url,
    queueName: 'going',
    log: silent,
    process: async () => { started.tick(); await new Promise<void>((resolve) => { finish = resolve }) }
  })
  await inbox.add(event('held'))
  await started.reached(1)
  const closing = inbox.close()
  await outage.stop()
  await closing
  finish()
  t.pass('closed; the job is left to the stalled check of the next worker')
})

t.test('a worker process killed mid-job: the stalled check hands the job to another worker, which completes it once', async (t) => {
  const queueName = `q${++queues}`
  const inbox = await openInbox(t, { queueName, worker: false })
  t.equal(await inbox.add(event('orphaned')), 'added')

  const child = spawn(process.execPath, [fileURLToPath(new URL('../../fixtures/inbox-worker.ts', import.meta.url)), server.url, queueName], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  t.teardown(() => { child.kill('SIGKILL') })
  const [message] = await once(child, 'message')
  t.same(message, { started: 'orphaned' }, 'the child process took the job')
  const exited = once(child, 'exit')
  child.kill('SIGKILL')
  await exited

  const runs: string[] = []
  const completed = counter()
  const worker = await InboxWorker.start({
    connection: server.url,
    queueName,
    log: silent,
    stalledIntervalMs: 200,
    process: async (received) => { runs.push(received.event_id) },
    onCompleted: () => completed.tick()
  })
  t.teardown(() => worker.close())
  await completed.reached(1)
  t.same(runs, ['orphaned'])
  t.same(await inbox.counts(), { waiting: 0, active: 0, delayed: 0, failed: 0 })
  t.equal(completed.count, 1)
})

t.test('an app’s ioredis instance is a template: its copies get the options each role needs, and it is never closed', async (t) => {
  // ioredis' defaults, maxRetriesPerRequest 20 included, which a BullMQ worker refuses.
  const app = await client(t)
  const completed = counter()
  // No log given: BullMQ's errors would go to the console (none are expected here).
  const inbox = await WebhookInbox.open({ connection: app, queueName: `q${++queues}`, process: async () => {}, onCompleted: () => completed.tick() })
  t.equal(await inbox.add(event('via-template')), 'added')
  await completed.reached(1)
  await inbox.close()
  t.equal(app.status, 'ready')
  t.equal(await app.ping(), 'PONG', 'the app’s instance still works')
})

t.test('each role’s connection options, for every kind of connection', async (t) => {
  const app = await client(t)
  for (const connection of [server.url, { host: '127.0.0.1', port: server.port }, app]) {
    const resources = new InboxResources(connection, silent)
    const producer = await resources.connect('producer')
    const worker = await resources.connect('worker')
    t.match(producer.options, { port: server.port, enableOfflineQueue: false, maxRetriesPerRequest: 0 })
    t.match(worker.options, { port: server.port, maxRetriesPerRequest: null })
    await resources.close()
    await Promise.all([producer, worker].map((c) => c.status === 'end' || next(c, 'end')))
    t.pass('both closed')
  }
  t.match(app.options, { enableOfflineQueue: true, maxRetriesPerRequest: 20 }, 'the template is untouched')
  t.equal(app.status, 'ready')
})

t.test('an error repeated by every reconnection attempt is logged once per outage', async (t) => {
  const outage = await startRedis(t)
  const messages: string[] = []
  const resources = new InboxResources(outage.url, { error: ({ err }) => messages.push(err.message) })
  t.teardown(() => resources.close())
  const redis = await resources.connect('producer')
  // BullMQ listens on the connections it runs on; this one runs nothing.
  redis.on('error', () => {})
  resources.report(new Error('connect ECONNREFUSED'))
  resources.report(new Error('connect ECONNREFUSED'))
  resources.report(new Error('other'))
  t.same(messages, ['connect ECONNREFUSED', 'other'])
  const dropped = next(redis, 'close')
  await outage.stop()
  await dropped
  await outage.start()
  if (redis.status !== 'ready') await next(redis, 'ready')
  resources.report(new Error('other'))
  t.same(messages, ['connect ECONNREFUSED', 'other', 'other'], 'connected again: the next outage is logged')
})

t.test('open() rejects a misconfigured connection and leaves nothing open', async (t) => {
  const app = await client(t)
  // BullMQ refuses ioredis key prefixes; the copies made of this one must be closed again.
  const prefixed = new Redis(server.url, { keyPrefix: 'app:' })
  prefixed.on('error', () => {})
  t.teardown(() => prefixed.disconnect())
  await next(prefixed, 'ready')
  const connections = async () => (await app.client('LIST') as string).trim().split('\n').length
  const before = await connections()
  await t.rejects(WebhookInbox.open({ connection: prefixed, log: silent, process: async () => {} }), /prefix/)
  await t.rejects(InboxWorker.start({ connection: prefixed, log: silent, process: async () => {} }), /prefix/)
  await until(async () => { if (await connections() !== before) throw new Error('a connection is still open') })
  t.pass('no connection left open')
})

t.test('bad numbers are refused before anything is opened', async (t) => {
  // Nothing listens there: an inbox that got as far as connecting would wait for it forever.
  const base = { connection: 'redis://127.0.0.1:1', process: async () => {} }
  for (const bad of [{ attempts: 0 }, { attempts: 1.5 }, { backoffMs: -1 }, { concurrency: 0 }, { lockDurationMs: 0 }, { stalledIntervalMs: -5 }]) {
    await t.rejects(WebhookInbox.open({ ...base, ...bad }), RangeError, JSON.stringify(bad))
  }
  await t.rejects(WebhookInbox.open({ ...base, worker: false, attempts: 0 }), RangeError, 'producer only')
  await t.rejects(InboxWorker.start({ ...base, concurrency: 1.5 }), RangeError, 'worker only')
})
