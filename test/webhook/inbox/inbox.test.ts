import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { UnrecoverableError } from 'bullmq'
import Fastify, { type FastifyBaseLogger } from 'fastify'
import { Redis } from 'ioredis'
import cioObservability from '../../../lib/index.ts'
import type { ReadEvent } from '../../../lib/webhook/events.ts'
import { inboxJobId, openInbox } from '../../../lib/webhook/inbox/mode.ts'
import { InboxResources } from '../../../lib/webhook/inbox/redis.ts'
import { INBOX_DEFAULTS, type InboxSettings } from '../../../lib/webhook/options.ts'
import { gate } from '../../fixtures/gate.ts'
import { counter, until } from '../../fixtures/wait.ts'
import { startRedis, type RedisServer } from '../../fixtures/redis.ts'

const server = await startRedis(t)
let queues = 0

const read = (id: string): ReadEvent => ({
  event: { event_id: id, object_type: 'email', metric: 'delivered', timestamp: 1_767_225_590, data: {} },
  labels: { objectType: 'email', metric: 'delivered' },
  eventId: id
})

/** The next `name` event; unlike events.once(), an 'error' on the way (a reconnection attempt) does not reject it. */
const next = (emitter: Redis, name: string) => new Promise<void>((resolve) => { emitter.once(name, () => resolve()) })

/** The inbox logs only errors. */
const logTo = (error: (details: { err: Error }, message: string) => void) => ({ error }) as unknown as FastifyBaseLogger
const silent = logTo(() => {})

type Deps = Parameters<typeof openInbox>[1]

/** Settings as the plugin resolves them, on a queue of its own on the test's Redis unless overridden. */
const settings = (inbox: Partial<InboxSettings> = {}): InboxSettings => ({ ...INBOX_DEFAULTS, connection: server.url, queueName: `q${++queues}`, ...inbox })

/** An inbox as the route opens it, closed when the test ends. */
async function open (t: Test, inbox: Partial<InboxSettings> = {}, deps: Partial<Deps> = {}) {
  const opened = await openInbox(settings(inbox), {
    onEvent: undefined, record: () => {}, handlerFailed: () => {}, tracing: undefined, log: silent, secrets: [], commandTimeoutMs: 3_000, ...deps
  })
  t.teardown(() => opened.close())
  return opened
}

async function client (t: Test, url = server.url) {
  const redis = new Redis(url)
  redis.on('error', () => {})
  t.teardown(() => redis.disconnect())
  await next(redis, 'ready')
  return redis
}

const on = (redis: RedisServer) => ({ connection: redis.url })
const idle = { waiting: 0, active: 0, delayed: 0, failed: 0 }

t.test('job ids: an event_id as it is, unless BullMQ would refuse or misread it', async (t) => {
  t.equal(inboxJobId('01JGZ8K3M4N5P6Q7R8S9T0V1W2'), '01JGZ8K3M4N5P6Q7R8S9T0V1W2', 'a ULID stays itself')
  t.equal(inboxJobId('a:b%c'), 'a%3Ab%25c')
  for (const id of ['123', '0', '-1', 'NaN', '']) t.equal(inboxJobId(id), `${id}%`, JSON.stringify(id))
  const ids = ['a:b', 'a%3Ab', 'a%3Ab%', '123', '123%', '', '%', ':', '0:1', 'é:☃', ' spaced id ']
  t.equal(new Set(ids.map(inboxJobId)).size, ids.length, 'distinct event ids keep distinct job ids')

  const inbox = await open(t, { worker: false })
  t.same(await Promise.all(ids.map((id) => inbox.add(read(id), 0))), ids.map(() => 'added'), 'BullMQ takes every one')
  t.same(await Promise.all(ids.map((id) => inbox.add(read(id), 0))), ids.map(() => 'duplicate'))
})

t.test('an onEvent that fails twice is retried with backoff; the event is recorded once, with the time it was received', async (t) => {
  const calls = counter()
  const failures = counter()
  const recorded: Array<[string | undefined, number]> = []
  const done = counter()
  const inbox = await open(t, { backoffMs: 5 }, {
    onEvent: async () => {
      calls.tick()
      if (calls.count <= 2) throw new Error(`attempt ${calls.count} failed`)
    },
    handlerFailed: () => failures.tick(),
    record: ({ eventId }, receivedAt) => { recorded.push([eventId, receivedAt]); done.tick() }
  })
  t.equal(await inbox.add(read('flaky'), 1_234), 'added')
  await done.reached(1)
  t.equal(calls.count, 3, 'three attempts')
  t.equal(failures.count, 2, 'each failed attempt counted')
  t.same(recorded, [['flaky', 1_234]])
  t.equal(await inbox.add(read('flaky'), 0), 'duplicate', 'a late copy finds the completed job')
  t.same(await inbox.counts(), idle, 'failed attempts that were retried are not failures')
  t.equal(calls.count, 3)
})

t.test('an onEvent that always fails ends in the failed set, never recorded', async (t) => {
  const calls = counter()
  const inbox = await open(t, { attempts: 3, backoffMs: 5 }, {
    onEvent: async () => { calls.tick(); throw new Error('handler down') },
    record: () => t.fail('never completes')
  })
  t.equal(await inbox.add(read('doomed'), 0), 'added')
  await until(async () => { if ((await inbox.counts()).failed !== 1) throw new Error('not failed yet') })
  t.equal(calls.count, 3)
  t.same(await inbox.counts(), { ...idle, failed: 1 })
  t.equal(await inbox.add(read('doomed'), 0), 'duplicate', 'a copy of a failed event is not run again')
  t.equal(calls.count, 3)
})

t.test('three instances on one Redis, every event added at all three at once: each runs once', async (t) => {
  const queueName = `q${++queues}`
  const runs = new Map<string, number>()
  const completed = counter()
  const inboxes = await Promise.all([1, 2, 3].map(() => open(t, { queueName, concurrency: 4 }, {
    onEvent: async ({ event_id: id }) => { runs.set(id!, (runs.get(id!) ?? 0) + 1) },
    record: () => completed.tick()
  })))
  const events = Array.from({ length: 200 }, (_, i) => read(`evt:${i}`))
  const answers = await Promise.all(events.map((e) => Promise.all(inboxes.map((inbox) => inbox.add(e, 0)))))
  t.equal(answers.flat().filter((a) => a === 'added').length, 200)
  t.equal(answers.flat().filter((a) => a === 'duplicate').length, 400)
  t.ok(answers.every((copies) => copies.filter((a) => a === 'added').length === 1), 'one copy of each event created its job')
  await completed.reached(200)
  t.equal(runs.size, 200)
  t.ok([...runs.values()].every((n) => n === 1), 'onEvent ran once per event')
  t.same(await inboxes[0].counts(), idle)
})

t.test('counts per state; close lets the active job finish first', async (t) => {
  const blocking = gate()
  const started = counter()
  const completed: Array<string | undefined> = []
  const inbox = await openInbox(settings({ connection: { host: '127.0.0.1', port: server.port }, attempts: 2, backoffMs: 600_000 }), {
    onEvent: async ({ event_id: id }) => {
      started.tick()
      if (id === 'unrecoverable') throw new UnrecoverableError('fails at once')
      if (id === 'retry-later') throw new Error('retried in 10 minutes')
      await blocking.promise
    },
    record: ({ eventId }) => completed.push(eventId),
    handlerFailed: () => {},
    tracing: undefined,
    log: silent,
    secrets: [],
    commandTimeoutMs: 3_000
  })
  await inbox.add(read('unrecoverable'), 0)
  await until(async () => { if ((await inbox.counts()).failed !== 1) throw new Error('not failed yet') })
  // One worker slot: 'blocking' starts only once 'retry-later' has been moved to the delayed set.
  await inbox.add(read('retry-later'), 0)
  await inbox.add(read('blocking'), 0)
  await started.reached(3)
  await inbox.add(read('queued'), 0)
  t.same(await inbox.counts(), { waiting: 1, active: 1, delayed: 1, failed: 1 })

  const closed = inbox.close().then(() => completed.slice())
  blocking.open()
  t.same(await closed, ['blocking'], 'the active job completed before close resolved; the queued one waits')
})

t.test('Redis stopped: add rejects at once and the error is logged; once Redis is back the event is accepted once', async (t) => {
  const outage = await startRedis(t)
  const messages: string[] = []
  const runs = counter()
  const completed = counter()
  const inbox = await open(t, on(outage), {
    log: logTo(({ err }, message) => { messages.push(`${message}: ${err.message}`) }),
    onEvent: async () => runs.tick(),
    record: () => completed.tick()
  })
  await outage.stop()
  await t.rejects(inbox.add(read('during-outage'), 0))
  await until(async () => { if (!messages.some((m) => m.includes('ECONNREFUSED'))) throw new Error('not logged yet') })
  t.ok(messages.every((m) => m.startsWith('customer.io webhook inbox error: ')), 'through the log it was given')

  await outage.start()
  t.equal(await until(() => inbox.add(read('during-outage'), 0)), 'added')
  await completed.reached(1)
  t.equal(await inbox.add(read('during-outage'), 0), 'duplicate')
  t.equal(runs.count, 1)
})

t.test('close() while Redis is down still resolves', async (t) => {
  const outage = await startRedis(t)
  const inbox = await open(t, on(outage))
  await outage.stop()
  await inbox.close()
  t.pass('closed')
})

t.test('close() resolves when Redis goes away while an active job is finishing', async (t) => {
  const outage = await startRedis(t)
  const started = counter()
  const held = gate()
  const inbox = await open(t, on(outage), { onEvent: async () => { started.tick(); await held.promise } })
  await inbox.add(read('held'), 0)
  await started.reached(1)
  const closing = inbox.close()
  await outage.stop()
  await closing
  held.open()
  t.pass('closed; the job is left to the stalled check of the next worker')
})

t.test('a worker process killed mid-job: the stalled check hands the job to another worker, which completes it once', async (t) => {
  const queueName = `q${++queues}`
  const receiver = await open(t, { queueName, worker: false })
  t.equal(await receiver.add(read('orphaned'), 0), 'added')

  const child = spawn(process.execPath, [fileURLToPath(new URL('../../fixtures/inbox-worker.ts', import.meta.url)), server.url, queueName], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  t.teardown(() => { child.kill('SIGKILL') })
  const [message] = await once(child, 'message')
  t.same(message, { started: 'orphaned' }, 'the child process took the job')
  const exited = once(child, 'exit')
  child.kill('SIGKILL')
  await exited

  const runs: Array<string | undefined> = []
  const completed = counter()
  await open(t, { queueName, stalledIntervalMs: 200 }, {
    onEvent: async ({ event_id: id }) => { runs.push(id) },
    record: () => completed.tick()
  })
  await completed.reached(1)
  t.same(runs, ['orphaned'])
  t.same(await receiver.counts(), idle)
  t.equal(completed.count, 1)
})

t.test('an app’s ioredis instance is a template: its copies get the options each role needs, and it is never closed', async (t) => {
  // ioredis' defaults, maxRetriesPerRequest 20 included, which a BullMQ worker refuses.
  const app = await client(t)
  const completed = counter()
  const inbox = await open(t, { connection: app }, { record: () => completed.tick() })
  t.equal(await inbox.add(read('via-template'), 0), 'added')
  await completed.reached(1)
  await inbox.close()
  t.equal(app.status, 'ready')
  t.equal(await app.ping(), 'PONG', 'the app’s instance still works')
})

t.test('each role’s connection options, for every kind of connection', async (t) => {
  const app = await client(t)
  for (const connection of [server.url, { host: '127.0.0.1', port: server.port }, app]) {
    const resources = new InboxResources({ connection, closeTimeoutMs: 5_000 }, silent, 1_500)
    const producer = await resources.connect('producer')
    const worker = await resources.connect('worker')
    t.match(producer.options, { port: server.port, enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 1_500 })
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
  const resources = new InboxResources({ connection: outage.url, closeTimeoutMs: 5_000 }, { error: ({ err }) => messages.push(err.message) }, 3_000)
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

t.test('opening refuses a misconfigured connection and leaves nothing open', async (t) => {
  const app = await client(t)
  // BullMQ refuses ioredis key prefixes; the copies made of this one must be closed again.
  const prefixed = new Redis(server.url, { keyPrefix: 'app:' })
  prefixed.on('error', () => {})
  t.teardown(() => prefixed.disconnect())
  await next(prefixed, 'ready')
  const connections = async () => (await app.client('LIST') as string).trim().split('\n').length
  const before = await connections()
  for (const worker of [false, true]) await t.rejects(open(t, { connection: prefixed, worker }), /prefix/, `worker: ${worker}`)
  await until(async () => { if (await connections() !== before) throw new Error('a connection is still open') })
  t.pass('no connection left open')
})

t.test('bad inbox options fail registration with FST_CIO_INVALID_OPTIONS naming the option, before anything is opened', async (t) => {
  // Nothing listens there: an inbox that got as far as connecting would wait for it forever.
  const connection = 'redis://127.0.0.1:1'
  for (const [bad, name] of [
    [{ attempts: 0 }, 'attempts'],
    [{ attempts: 1.5 }, 'attempts'],
    [{ worker: false, attempts: 0 }, 'attempts'],
    [{ backoffMs: -1 }, 'backoffMs'],
    [{ concurrency: 0 }, 'concurrency'],
    [{ concurrency: 1.5 }, 'concurrency'],
    [{ lockDurationMs: 0 }, 'lockDurationMs'],
    [{ stalledIntervalMs: -5 }, 'stalledIntervalMs'],
    [{ closeTimeoutMs: -1 }, 'closeTimeoutMs'],
    [{ queueName: '' }, 'queueName']
  ] as const) {
    const app = Fastify()
    app.register(cioObservability, { env: {}, webhook: { signingKeys: 'k', inbox: { connection, ...bad } } })
    const err = await app.ready().then(() => undefined, (e: unknown) => e)
    t.match(err, { code: 'FST_CIO_INVALID_OPTIONS', message: new RegExp(`"webhook\\.inbox\\.${name}"`) }, JSON.stringify(bad))
    await app.close()
  }
})
