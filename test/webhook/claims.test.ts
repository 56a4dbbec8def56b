import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import type { CioWebhookOptions, DedupeStore } from '../../lib/index.ts'
import { webhookEvent } from '../../lib/testing/index.ts'
import { MemoryDedupeStore } from '../../lib/webhook/memory-dedupe.ts'
import { RedisDedupeStore } from '../../lib/webhook/redis-dedupe.ts'
import { gate } from '../fixtures/gate.ts'
import { startRedis } from '../fixtures/redis.ts'
import { counter } from '../fixtures/wait.ts'
import { buildApp, metric, simOptions, startSimulator, postWebhook, WEBHOOK_KEY } from '../helpers.ts'

async function webhookApp (t: Test, webhook: CioWebhookOptions) {
  const sim = await startSimulator(t)
  return buildApp(t, simOptions(sim, { webhook: { signingKeys: WEBHOOK_KEY, ...webhook } }))
}

/** A store that tells the test how many claims it has answered, around a real one. */
function observed (store: DedupeStore) {
  const claims = counter()
  const wrapped: DedupeStore = {
    claim: async (id, leaseMs) => { try { return await store.claim(id, leaseMs) } finally { claims.tick() } },
    confirm: (id) => store.confirm(id),
    release: (id) => store.release(id)
  }
  return { store: wrapped, claims }
}

const redis = await startRedis(t)
const client = (): Redis => {
  const r = new Redis(redis.port, '127.0.0.1', { lazyConnect: false })
  t.teardown(() => r.quit())
  return r
}

const stores = [
  ['memory store', () => new MemoryDedupeStore()],
  ['Redis store', () => new RedisDedupeStore(client(), { prefix: `claims:${Math.random()}:` })]
] as const

for (const [name, make] of stores) {
  t.test(`${name}: the first onEvent throws while 4 copies wait; it never runs twice at once, the failure answers 503, a later copy succeeds, counts are exact`, async (t) => {
    const { store, claims } = observed(make())
    const release = gate()
    let running = 0
    let most = 0
    let calls = 0
    const { app } = await webhookApp(t, {
      dedupe: store,
      onEvent: async () => {
        calls++
        running++
        most = Math.max(most, running)
        try {
          if (calls === 1) {
            await release.promise
            throw new Error('database down')
          }
        } finally {
          running--
        }
      }
    })
    const event = webhookEvent('email', 'bounced')
    const answers = Array.from({ length: 5 }, () => postWebhook(app, event))
    await claims.reached(5) // every copy has asked, so four are waiting on the first
    release.open()
    const results = (await Promise.all(answers)).map((res) => [res.statusCode, res.json().code ?? (res.json().duplicate === true ? 'duplicate' : 'handled')])
    t.same(results.filter(([status]) => status === 503), [[503, 'FST_CIO_WEBHOOK_HANDLER_FAILED']], 'the failure answers 503')
    t.same(results.filter(([, what]) => what === 'handled'), [[200, 'handled']], 'one later copy ran it')
    t.equal(results.filter(([, what]) => what === 'duplicate').length, 3, 'the rest found it done')
    t.equal(calls, 2)
    t.equal(most, 1, 'never two at once')
    t.equal(await metric(app, 'cio_webhook_received_total', { object_type: 'email', metric: 'bounced' }), 1)
    t.equal(await metric(app, 'cio_email_bounced_total'), 1)
    t.equal(await metric(app, 'cio_webhook_duplicates_total'), 3)
    t.equal(await metric(app, 'cio_webhook_handler_errors_total'), 1)
  })
}

for (const [name, make] of stores) {
  // Without the release, the copy would find the id claimed for the whole 60 s lease and answer
  // 503 at answerWithinMs; the short budget makes that fail at once.
  t.test(`${name}: a failed onEvent hands its claim back at once, so the next copy runs it (not after the lease)`, { timeout: 5_000 }, async (t) => {
    const store = make()
    let calls = 0
    const { app } = await webhookApp(t, {
      dedupe: store,
      answerWithinMs: 300,
      onEvent: () => { if (++calls === 1) throw new Error('database down') }
    })
    const event = webhookEvent('email', 'bounced')
    const failed = await postWebhook(app, event)
    t.equal(failed.statusCode, 503)
    t.equal(failed.json().code, 'FST_CIO_WEBHOOK_HANDLER_FAILED')
    const copy = await postWebhook(app, event)
    t.same(copy.json(), { ok: true }, 'the next copy runs onEvent at once')
    t.equal(calls, 2)
    t.same((await postWebhook(app, event)).json(), { ok: true, duplicate: true }, 'and confirms it')
    t.equal(await metric(app, 'cio_webhook_handler_errors_total'), 1)
    t.equal(await metric(app, 'cio_webhook_received_total', { object_type: 'email', metric: 'bounced' }), 1)
  })
}

t.test('a copy at another instance polls the shared store: a duplicate once the first run is done, 503 if it is not done in time', async (t) => {
  const shared = new MemoryDedupeStore()
  const hold = gate()
  const entered = counter()
  const first = await webhookApp(t, { dedupe: shared, onEvent: async () => { entered.tick(); await hold.promise } })
  const other = await webhookApp(t, { dedupe: shared, answerWithinMs: 3_999, onEvent: () => { t.fail('never run twice') } })
  const impatient = await webhookApp(t, { dedupe: shared, answerWithinMs: 30, onEvent: () => { t.fail('never run twice') } })
  const event = webhookEvent('email', 'opened')
  const running = postWebhook(first.app, event)
  await entered.reached(1)
  t.equal((await postWebhook(impatient.app, event)).statusCode, 503, 'the first run is not done within answerWithinMs')
  const copy = postWebhook(other.app, event)
  hold.open()
  t.same((await running).json(), { ok: true })
  t.same((await copy).json(), { ok: true, duplicate: true }, 'found done by polling')
})

t.test('an onEvent that has not settled within answerWithinMs answers 503 and goes on; a later copy finds its outcome', async (t) => {
  const slow = gate()
  const finished = counter()
  const { app } = await webhookApp(t, { answerWithinMs: 50, onEvent: async () => { await slow.promise; finished.tick() } })
  const event = webhookEvent('email', 'delivered')
  const first = await postWebhook(app, event)
  t.equal(first.statusCode, 503)
  t.equal(first.json().code, 'FST_CIO_WEBHOOK_RETRY_LATER')
  const copy = await postWebhook(app, event)
  t.equal(copy.statusCode, 503, 'a copy while it runs waits, then answers 503 too')
  slow.open()
  await finished.reached(1)
  await new Promise(setImmediate)
  t.same((await postWebhook(app, event)).json(), { ok: true, duplicate: true }, 'once it finished, a copy is a duplicate')
  t.equal(await metric(app, 'cio_webhook_received_total', { object_type: 'email', metric: 'delivered' }), 1, 'counted once, when it finished')
})

t.test('a dedupe store that fails answers 503, so Customer.io keeps the event', async (t) => {
  const { app, logs } = await webhookApp(t, { dedupe: { claim: async () => { throw new Error('redis down') }, confirm: () => {}, release: () => {} } })
  const res = await postWebhook(app, webhookEvent('email', 'sent'))
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'FST_CIO_WEBHOOK_RETRY_LATER')
  t.ok(logs.lines.some((l) => l.msg === 'customer.io webhook dedupe store failed'))
})

t.test('a store that throws at once answers 503 too', async (t) => {
  const { app } = await webhookApp(t, { dedupe: { claim: () => { throw new Error('bad store') }, confirm: () => {}, release: () => {} } })
  t.equal((await postWebhook(app, webhookEvent('email', 'sent'))).statusCode, 503)
})

t.test('a store that does not answer within answerWithinMs answers 503', async (t) => {
  const never = new Promise<never>(() => {})
  const { app } = await webhookApp(t, { answerWithinMs: 50, dedupe: { claim: () => never, confirm: () => {}, release: () => {} } })
  t.equal((await postWebhook(app, webhookEvent('email', 'sent'))).statusCode, 503)
})

t.test('a claim the store grants after the answer was given is handed back; a later copy runs at once', async (t) => {
  const store = new MemoryDedupeStore()
  const slow = gate()
  const released = counter()
  let late = true
  const { app } = await webhookApp(t, {
    answerWithinMs: 50,
    dedupe: {
      claim: async (id, leaseMs) => {
        if (late) await slow.promise
        return store.claim(id, leaseMs)
      },
      confirm: (id) => store.confirm(id),
      release: (id) => { store.release(id); released.tick() }
    }
  })
  const event = webhookEvent('email', 'sent')
  t.equal((await postWebhook(app, event)).statusCode, 503, 'the store answered too late')
  late = false
  slow.open()
  await released.reached(1)
  t.equal((await postWebhook(app, event)).statusCode, 200, 'the late claim was released: this copy runs')
  t.equal(await metric(app, 'cio_webhook_received_total', { object_type: 'email', metric: 'sent' }), 1)
})

t.test('a late busy answer hands nothing back: the claim another copy holds stays', { timeout: 5_000 }, async (t) => {
  const memory = new MemoryDedupeStore()
  const slow = gate()
  const answered = counter()
  const released: string[] = []
  const { app } = await webhookApp(t, {
    answerWithinMs: 50,
    dedupe: {
      claim: async (id, leaseMs) => {
        await slow.promise
        try { return memory.claim(id, leaseMs) } finally { answered.tick() }
      },
      confirm: (id) => memory.confirm(id),
      release: (id) => { released.push(id); memory.release(id) }
    }
  })
  const event = webhookEvent('email', 'sent')
  t.equal(memory.claim(event.event_id, 60_000), 'new', 'another instance runs the event')
  t.equal((await postWebhook(app, event)).statusCode, 503, 'the store answered too late')
  slow.open()
  await answered.reached(1)
  // The late answer is handled in microtasks: once the event loop turns, it is done.
  await new Promise((resolve) => { setImmediate(resolve) })
  t.same(released, [], 'nothing handed back')
  t.equal(memory.claim(event.event_id, 60_000), 'busy', 'the other instance still holds its claim')
})

t.test('a late answer that is no claim, or whose release fails, is left alone and logged', async (t) => {
  const slow = gate()
  const { app, logs } = await webhookApp(t, {
    answerWithinMs: 50,
    dedupe: { claim: async () => { await slow.promise; return 'busy' as const }, confirm: () => {}, release: () => {} }
  })
  t.equal((await postWebhook(app, webhookEvent('email', 'sent'))).statusCode, 503)
  const failing = gate()
  const releases = counter()
  const { app: other, logs: otherLogs } = await webhookApp(t, {
    answerWithinMs: 50,
    dedupe: {
      claim: async () => { await failing.promise; return 'new' as const },
      confirm: () => {},
      release: async () => { releases.tick(); throw new Error('store down') }
    }
  })
  t.equal((await postWebhook(other, webhookEvent('email', 'sent'))).statusCode, 503)
  slow.open()
  failing.open()
  await releases.reached(1)
  // The late answers are handled in microtasks: once the event loop turns, they are done.
  await new Promise((resolve) => { setImmediate(resolve) })
  t.ok(otherLogs.lines.some((l) => l.msg === 'customer.io webhook dedupe store failed'), 'the failed release is logged')
  t.notOk(logs.lines.some((l) => l.msg === 'customer.io webhook dedupe store failed'), 'a late busy is nothing to hand back')
})

t.test('an event without a usable id is handed on every time; its failure answers 503 and is logged without an id', async (t) => {
  let calls = 0
  const { app, logs } = await webhookApp(t, { onEvent: () => { if (++calls === 3) throw new Error('full') } })
  const event = { ...webhookEvent('email', 'sent'), event_id: '' }
  t.equal((await postWebhook(app, event)).statusCode, 200)
  t.equal((await postWebhook(app, event)).statusCode, 200)
  t.equal(calls, 2)
  t.equal((await postWebhook(app, event)).statusCode, 503)
  const line = logs.lines.find((l) => l.msg === 'customer.io webhook handler failed')
  t.match(line, { object_type: 'email', metric: 'sent' })
  t.notOk('event_id' in line!, 'no id to log')
})
