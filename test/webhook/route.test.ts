import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { signWebhook, unrecognisedWebhookEvent, webhookEvent } from '../../lib/testing/index.ts'
import { METRICS_BY_OBJECT_TYPE, OBJECT_TYPES, type CioWebhookEvent } from '../../lib/webhook/events.ts'
import { MemoryDedupeStore } from '../../lib/webhook/memory-dedupe.ts'
import type { CioWebhookOptions } from '../../lib/index.ts'
import { buildApp, metric, simOptions, startSimulator, WEBHOOK_KEY } from '../helpers.ts'
import { gate } from '../fixtures/gate.ts'

const PATH = '/webhooks/customerio'

async function webhookApp (t: Parameters<typeof startSimulator>[0], webhook: CioWebhookOptions = {}) {
  const sim = await startSimulator(t)
  return buildApp(t, simOptions(sim, { webhook: { signingKeys: WEBHOOK_KEY, ...webhook } }), {}, (app) => {
    app.post('/app-json', async (request) => ({ echo: request.body }))
  })
}

function post (app: FastifyInstance, event: unknown, { key = WEBHOOK_KEY, timestamp, headers = {}, raw }: { key?: string, timestamp?: number, headers?: Record<string, string>, raw?: string } = {}) {
  const body = raw ?? JSON.stringify(event)
  return app.inject({ method: 'POST', url: PATH, payload: body, headers: { 'content-type': 'application/json', ...signWebhook(body, key, timestamp), ...headers } })
}

t.test('every documented object_type × metric is accepted and counted', async (t) => {
  const { app } = await webhookApp(t)
  let total = 0
  for (const type of OBJECT_TYPES) {
    for (const name of METRICS_BY_OBJECT_TYPE[type]) {
      const event = webhookEvent(type, name, {
        subject: 'Ünïcödé 🎉 — ваш заказ',
        href: `https://example.com/${'deep/'.repeat(200)}?utm=${'x'.repeat(500)}`,
        future_field: { nested: [1, 2, 3] }
      })
      const res = await post(app, { ...event, unknown_top_level: true })
      t.equal(res.statusCode, 200, `${type}.${name}`)
      t.same(res.json(), { ok: true })
      total++
    }
  }
  for (const type of OBJECT_TYPES) {
    for (const name of METRICS_BY_OBJECT_TYPE[type]) {
      t.equal(await metric(app, 'cio_webhook_received_total', { object_type: type, metric: name }), 1, `${type}.${name} counted`)
    }
    t.equal(await metric(app, 'cio_webhook_lag_seconds_count', { object_type: type }), METRICS_BY_OBJECT_TYPE[type].length)
  }
  t.equal(total, 89, 'the 89 documented pairs, subscription changes under every channel included')
  t.ok(Math.abs(await metric(app, 'cio_webhook_last_received_timestamp_seconds') - Date.now() / 1000) < 60)
})

t.test('the email funnel: sent by origin, bounced, spam complaints', async (t) => {
  const { app } = await webhookApp(t)
  const origins: Array<[Record<string, unknown>, string]> = [
    [{ transactional_message_id: 3, campaign_id: undefined }, 'transactional'],
    [{ campaign_id: 9 }, 'campaign'],
    [{ trigger_id: 5, broadcast_id: 2, campaign_id: undefined }, 'broadcast'],
    [{ newsletter_id: 8, content_id: 1, campaign_id: undefined }, 'newsletter'],
    [{ campaign_id: undefined }, 'unknown']
  ]
  for (const [origin, type] of origins) {
    const event = webhookEvent('email', 'sent', origin)
    t.equal((await post(app, JSON.parse(JSON.stringify(event)))).statusCode, 200)
    t.equal(await metric(app, 'cio_email_sent_total', { source: 'webhook', type }), 1, type)
  }
  await post(app, webhookEvent('email', 'bounced', { failure_message: 'mailbox full' }))
  await post(app, webhookEvent('email', 'spammed'))
  await post(app, webhookEvent('email', 'spammed'))
  await post(app, webhookEvent('push', 'bounced'))
  t.equal(await metric(app, 'cio_email_bounced_total'), 1, 'only email bounces')
  t.equal(await metric(app, 'cio_email_complained_total'), 2)
})

t.test('unknown object types and metrics are answered 200, counted as _other and handed on as unrecognised', async (t) => {
  const seen: string[] = []
  const { app } = await webhookApp(t, {
    onEvent: (event) => {
      const raw = event.object_type === '_other' ? event.raw as { object_type: string, metric: string } : undefined
      seen.push(raw === undefined ? `${event.object_type}.${event.metric}` : `_other:${raw.object_type}.${raw.metric}`)
    }
  })
  for (const event of [unrecognisedWebhookEvent('email', 'teleported'), unrecognisedWebhookEvent('carrier_pigeon', 'sent'), unrecognisedWebhookEvent('carrier_pigeon', 'flew')]) {
    t.same((await post(app, event)).json(), { ok: true })
  }
  t.same(seen, ['_other:email.teleported', '_other:carrier_pigeon.sent', '_other:carrier_pigeon.flew'], 'a default branch receives them')
  t.equal(await metric(app, 'cio_webhook_received_total', { object_type: 'email', metric: '_other' }), 1)
  t.equal(await metric(app, 'cio_webhook_received_total', { object_type: '_other', metric: 'sent' }), 1)
  t.equal(await metric(app, 'cio_webhook_received_total', { object_type: '_other', metric: '_other' }), 1)
})

t.test('refusals: status, code, reason counted, logged once without the body', async (t) => {
  const { app, logs } = await webhookApp(t, { toleranceSeconds: 300, bodyLimit: 4096 })
  const event = webhookEvent('email', 'delivered')
  const body = JSON.stringify(event)
  const cases: Array<[string, () => ReturnType<typeof post>, number, string, string]> = [
    ['missing', () => app.inject({ method: 'POST', url: PATH, payload: body, headers: { 'content-type': 'application/json' } }), 401, 'FST_CIO_WEBHOOK_SIGNATURE_MISSING', 'missing_signature'],
    ['wrong key', () => post(app, event, { key: 'wrong' }), 401, 'FST_CIO_WEBHOOK_SIGNATURE_INVALID', 'bad_signature'],
    ['forged', () => post(app, event, { headers: { 'x-cio-signature': 'a'.repeat(64) } }), 401, 'FST_CIO_WEBHOOK_SIGNATURE_INVALID', 'bad_signature'],
    ['stale', () => post(app, event, { timestamp: Math.floor(Date.now() / 1000) - 3600 }), 401, 'FST_CIO_WEBHOOK_TIMESTAMP_STALE', 'stale_timestamp'],
    ['too large', () => post(app, { ...event, data: { content: 'x'.repeat(5000) } }), 413, 'FST_CIO_WEBHOOK_TOO_LARGE', 'too_large'],
    ['text/plain', () => app.inject({ method: 'POST', url: PATH, payload: body, headers: { 'content-type': 'text/plain', ...signWebhook(body, WEBHOOK_KEY) } }), 415, 'FST_CIO_WEBHOOK_UNSUPPORTED_MEDIA_TYPE', 'unsupported_media_type'],
    ['no body', () => app.inject({ method: 'POST', url: PATH, headers: signWebhook('', WEBHOOK_KEY) }), 415, 'FST_CIO_WEBHOOK_UNSUPPORTED_MEDIA_TYPE', 'unsupported_media_type']
  ]
  const counts: Record<string, number> = {}
  for (const [name, send, status, code, reason] of cases) {
    const before = logs.lines.length
    const res = await send()
    t.equal(res.statusCode, status, name)
    t.match(res.json(), { statusCode: status, code }, name)
    counts[reason] = (counts[reason] ?? 0) + 1
    t.equal(await metric(app, 'cio_webhook_rejected_total', { reason }), counts[reason], `${name} counted as ${reason}`)
    const refusals = logs.lines.slice(before).filter((l) => l.msg === 'customer.io webhook refused')
    t.equal(refusals.length, 1, `${name} logged once`)
    t.equal(refusals[0]!.reason, reason)
  }
  t.notMatch(logs.text(), /person\d+@example\.com|\+1415|x{100}/, 'no body content in logs')
  t.equal(await metric(app, 'cio_webhook_received_total', { object_type: 'email', metric: 'delivered' }), 0)
})

t.test('a signed body that is not JSON is answered 202 and counted as malformed, never refused', async (t) => {
  const handled: unknown[] = []
  const { app, logs } = await webhookApp(t, { onEvent: (event) => { handled.push(event) } })
  for (const raw of ['{"event_id":', '', 'plain text']) {
    const res = await post(app, undefined, { raw })
    t.equal(res.statusCode, 202, JSON.stringify(raw))
    t.same(res.json(), { ok: false })
  }
  t.equal(await metric(app, 'cio_webhook_rejected_total', { reason: 'malformed' }), 3)
  t.equal(logs.lines.filter((l) => l.reason === 'malformed').length, 3, 'logged once each')
  t.same(handled, [], 'nothing to hand on')
})

t.test('a signed envelope with missing or odd fields is answered 200 and handed on as unrecognised', async (t) => {
  const seen: CioWebhookEvent[] = []
  const { app } = await webhookApp(t, { onEvent: (event) => { seen.push(event) } })
  // Each its own event, so none is a copy of another.
  const good = () => webhookEvent('email', 'opened') as unknown as Record<string, unknown>
  const broken: Array<Record<string, unknown> | unknown[]> = [
    { ...good(), event_id: undefined }, { ...good(), event_id: '' }, { ...good(), event_id: 'x'.repeat(300) }, { ...good(), object_type: 7 },
    { ...good(), metric: '' }, { ...good(), timestamp: '1767225590' }, { ...good(), timestamp: 1.5 }, { ...good(), timestamp: -1 },
    { ...good(), data: null }, { ...good(), data: [] }, [good()]
  ]
  for (const event of broken) {
    const res = await post(app, event)
    t.equal(res.statusCode, 200)
    t.same(res.json(), { ok: true })
  }
  t.equal(seen.length, broken.length)
  t.ok(seen.every((e) => e.object_type === '_other' && e.metric === '_other'), 'each as the unrecognised member')
  t.same(seen.map((e) => (e as { raw: unknown }).raw), JSON.parse(JSON.stringify(broken)), 'with the body as it came')
  t.equal(seen[2]!.event_id, undefined, 'an unusable id is not used')
  t.equal(seen[3]!.event_id, (broken[3] as { event_id: string }).event_id, 'a usable one is')
  t.equal(await metric(app, 'cio_webhook_received_total', { object_type: 'email', metric: 'opened' }), 8, 'counted under the labels they do have')
  t.equal(await metric(app, 'cio_webhook_received_total', { object_type: 'email', metric: '_other' }), 1)
  t.equal(await metric(app, 'cio_webhook_received_total', { object_type: '_other', metric: 'opened' }), 1)
  t.equal(await metric(app, 'cio_webhook_received_total', { object_type: '_other', metric: '_other' }), 1)
})

t.test('subscription changes sent under the channel that caused them are counted under that channel, with their metric', async (t) => {
  const { app } = await webhookApp(t)
  for (const [type, name] of [['email', 'subscribed'], ['sms', 'unsubscribed'], ['push', 'cio_subscription_preferences_changed']] as const) {
    await post(app, webhookEvent(type, name))
    t.equal(await metric(app, 'cio_webhook_received_total', { object_type: type, metric: name }), 1, `${type}.${name}`)
  }
})

t.test('duplicates are answered 200, counted, and not handed on again', async (t) => {
  const handled: string[] = []
  const { app } = await webhookApp(t, { onEvent: async (event) => { handled.push(String(event.event_id)) } })
  const event = webhookEvent('email', 'clicked')
  t.same((await post(app, event)).json(), { ok: true })
  const again = await post(app, event, { timestamp: Math.floor(Date.now() / 1000) + 1 })
  t.equal(again.statusCode, 200)
  t.same(again.json(), { ok: true, duplicate: true })
  t.same(handled, [event.event_id])
  t.equal(await metric(app, 'cio_webhook_duplicates_total'), 1)
  t.equal(await metric(app, 'cio_webhook_received_total', { object_type: 'email', metric: 'clicked' }), 1)
})

t.test('concurrent copies of one event run onEvent once', async (t) => {
  let calls = 0
  const open = gate()
  const { app } = await webhookApp(t, { onEvent: async () => { calls++; await open.promise } })
  const event = webhookEvent('sms', 'delivered')
  const pending = Promise.all([post(app, event), post(app, event), post(app, event)])
  open.open()
  const answers = await pending
  t.same(answers.map((a) => a.statusCode), [200, 200, 200])
  t.equal(calls, 1)
  t.equal(await metric(app, 'cio_webhook_duplicates_total'), 2)
})

t.test('a failing onEvent answers 503 (Customer.io\'s normal retry, not its one-hour hold), is counted, and the event can be retried', async (t) => {
  let fail = true
  const handled: CioWebhookEvent[] = []
  const { app, logs } = await webhookApp(t, {
    onEvent: async (event) => {
      if (fail) throw new Error(`db down while saving ${event.object_type === '_other' ? '' : event.data.identifiers?.email}`)
      handled.push(event)
    }
  })
  const event = webhookEvent('email', 'bounced', { failure_message: 'no such user' })
  const res = await post(app, event)
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'FST_CIO_WEBHOOK_HANDLER_FAILED')
  t.equal(await metric(app, 'cio_webhook_handler_errors_total'), 1)
  t.equal(await metric(app, 'cio_email_bounced_total'), 0, 'not counted until handled')
  const line = logs.lines.find((l) => l.msg === 'customer.io webhook handler failed')!
  t.match(line, { level: 50, object_type: 'email', metric: 'bounced', event_id: event.event_id })
  t.notMatch(JSON.stringify(line), /@example\.com/, 'the handler\'s error message is sanitised')
  fail = false
  t.same((await post(app, event)).json(), { ok: true }, 'the retry is not a duplicate')
  t.equal(handled.length, 1)
  t.equal(await metric(app, 'cio_email_bounced_total'), 1)
})

t.test('dedupe: false hands every copy on; a custom (async) store is used', async (t) => {
  let calls = 0
  const { app } = await webhookApp(t, { dedupe: false, onEvent: () => { calls++ } })
  const event = webhookEvent('push', 'opened')
  await post(app, event)
  await post(app, event)
  t.equal(calls, 2)

  const inner = new MemoryDedupeStore()
  const used: string[] = []
  const store = {
    claim: async (id: string, leaseMs: number) => { used.push(`claim ${leaseMs > 3_000}`); return inner.claim(id, leaseMs) },
    confirm: async (id: string) => { used.push('confirm'); inner.confirm(id) },
    release: async (id: string) => { used.push('release'); inner.release(id) }
  }
  const shared = await webhookApp(t, { dedupe: store, path: '/hooks/cio' })
  const send = () => shared.app.inject({ method: 'POST', url: '/hooks/cio', payload: JSON.stringify(event), headers: { 'content-type': 'application/json', ...signWebhook(JSON.stringify(event), WEBHOOK_KEY) } })
  t.equal((await send()).statusCode, 200)
  t.same((await send()).json(), { ok: true, duplicate: true })
  t.same(used, ['claim true', 'confirm', 'claim true'], 'claimed with a lease longer than any answer, then confirmed')
})

t.test('the memory store forgets the oldest id beyond its size', async (t) => {
  const store = new MemoryDedupeStore({ size: 2 })
  for (const id of ['a', 'b', 'c']) { store.claim(id, 1_000); store.confirm(id) }
  t.same(['c', 'b', 'a'].map((id) => store.claim(id, 1_000)), ['done', 'done', 'new'])
  const { app } = await webhookApp(t, { dedupe: { size: 1 } })
  const first = webhookEvent('email', 'opened')
  await post(app, first)
  await post(app, webhookEvent('email', 'opened'))
  t.same((await post(app, first)).json(), { ok: true }, 'forgotten, so handled again')
})

t.test('with a tolerance, a request is as old as its timestamp when it arrives', async (t) => {
  const { app } = await webhookApp(t, { toleranceSeconds: 300 })
  const now = Math.floor(Date.now() / 1000)
  t.equal((await post(app, webhookEvent('email', 'sent'))).statusCode, 200, 'signed now')
  t.equal((await post(app, webhookEvent('email', 'sent'), { timestamp: now - 250 })).statusCode, 200, 'signed 250 s ago')
  t.equal((await post(app, webhookEvent('email', 'sent'), { timestamp: now + 250 })).statusCode, 200, 'signed by a clock 250 s ahead')
  const stale = await post(app, webhookEvent('email', 'sent'), { timestamp: now - 400 })
  t.equal(stale.statusCode, 401)
  t.equal(stale.json().code, 'FST_CIO_WEBHOOK_TIMESTAMP_STALE', 'signed 400 s ago')
  t.equal(await metric(app, 'cio_webhook_received_total', { object_type: 'email', metric: 'sent' }), 3)
})

t.test('key rotation: either key is accepted', async (t) => {
  const { app } = await webhookApp(t, { signingKeys: ['old-key', 'new-key'] })
  t.equal((await post(app, webhookEvent('email', 'sent'), { key: 'old-key' })).statusCode, 200)
  t.equal((await post(app, webhookEvent('email', 'sent'), { key: 'new-key' })).statusCode, 200)
  t.equal((await post(app, webhookEvent('email', 'sent'), { key: WEBHOOK_KEY })).statusCode, 401)
})

t.test('the app\'s own JSON routes still parse normally', async (t) => {
  const { app } = await webhookApp(t)
  const res = await app.inject({ method: 'POST', url: '/app-json', payload: { a: 1 } })
  t.same(res.json(), { echo: { a: 1 } })
})

t.test('over real HTTP from the simulator, signed the way Customer.io signs', async (t) => {
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim))
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  const res = await sim.sendWebhook(`${address}${PATH}`, webhookEvent('whatsapp', 'replied'), WEBHOOK_KEY)
  t.equal(res.status, 200)
  t.equal(await metric(app, 'cio_webhook_received_total', { object_type: 'whatsapp', metric: 'replied' }), 1)
})

t.test('no recipient, email or phone in logs or labels', async (t) => {
  const { app, logs } = await webhookApp(t)
  for (const type of OBJECT_TYPES) await post(app, webhookEvent(type, METRICS_BY_OBJECT_TYPE[type][0]))
  const exposition = (await app.inject('/metrics')).body
  t.notMatch(exposition, /example\.com|\+1415|device-token|person-\d/)
  t.notMatch(logs.text(), /example\.com|\+1415|device-token|person-\d/)
})

t.test('webhook: false registers no route', async (t) => {
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim, { webhook: false }))
  t.equal((await post(app, webhookEvent('email', 'sent'))).statusCode, 404)
  t.notMatch((await app.inject('/metrics')).body, /cio_webhook_/)
})

t.test('other body errors (a lying Content-Length) are refused as malformed', async (t) => {
  const { app } = await webhookApp(t)
  const body = JSON.stringify(webhookEvent('email', 'sent'))
  const res = await app.inject({ method: 'POST', url: PATH, payload: body, headers: { 'content-type': 'application/json', 'content-length': String(body.length + 10), ...signWebhook(body, WEBHOOK_KEY) } })
  t.equal(res.statusCode, 400)
  t.equal(res.json().code, 'FST_CIO_WEBHOOK_MALFORMED')
  t.equal(await metric(app, 'cio_webhook_rejected_total', { reason: 'malformed' }), 1)
})

t.test('each event and duplicate is logged at debug (also under trace), with its ids only', async (t) => {
  for (const logLevel of ['debug', 'trace', 'info'] as const) {
    const sim = await startSimulator(t)
    const { app, logs } = await buildApp(t, simOptions(sim, { logLevel }))
    const event = webhookEvent('email', 'opened')
    await post(app, event)
    await post(app, event)
    const lines = logs.lines.filter((l) => l.msg === 'customer.io webhook event')
    if (logLevel === 'info') {
      t.same(lines, [], 'nothing below info')
      continue
    }
    t.same(lines.map((l) => [l.outcome, l.object_type, l.metric, l.event_id]), [
      ['handled', 'email', 'opened', event.event_id],
      ['duplicate', 'email', 'opened', event.event_id]
    ], logLevel)
  }
})
