import t from 'tap'
import { signWebhook, webhookEvent } from '../../lib/testing/index.ts'
import { METRICS_BY_OBJECT_TYPE, OBJECT_TYPES } from '../../lib/webhook/events.ts'
import { buildApp, metric, simOptions, startSimulator, WEBHOOK_KEY } from '../helpers.ts'

/** Repeatable pseudo-random numbers (LCG), so a failure can be replayed. */
function rng (seed: number) {
  let s = seed
  return () => { s = (s * 1103515245 + 12345) & 0x7fffffff; return s / 0x7fffffff }
}

t.test('no mutated body or signature is ever accepted, and bad input never gets a 5xx', async (t) => {
  const sim = await startSimulator(t)
  let handed = 0
  const { app } = await buildApp(t, simOptions(sim, { webhook: { signingKeys: WEBHOOK_KEY, onEvent: () => { handed++ } } }))
  const random = rng(2026)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!
  const statuses = new Map<number, number>()
  const mutations = ['flip-body', 'truncate-body', 'append-body', 'flip-signature', 'swap-timestamp', 'drop-header', 'reserialise', 'other-key']
  for (let i = 0; i < 2000; i++) {
    const type = pick(OBJECT_TYPES)
    const event = webhookEvent(type, pick(METRICS_BY_OBJECT_TYPE[type]))
    let body = JSON.stringify(event)
    const headers: Record<string, string> = { 'content-type': 'application/json', ...signWebhook(body, WEBHOOK_KEY) }
    const mutation = pick(mutations)
    const bytes = Buffer.from(body)
    const at = Math.floor(random() * bytes.length)
    if (mutation === 'flip-body') { bytes[at] = bytes[at]! ^ (1 + Math.floor(random() * 254)); body = bytes.toString('latin1') }
    if (mutation === 'truncate-body') body = body.slice(0, at)
    if (mutation === 'append-body') body += pick([' ', '\n', '{}', '\u0000'])
    if (mutation === 'flip-signature') {
      const sig = headers['x-cio-signature']!.split('')
      const pos = Math.floor(random() * sig.length)
      sig[pos] = sig[pos] === '0' ? '1' : '0'
      headers['x-cio-signature'] = sig.join('')
    }
    if (mutation === 'swap-timestamp') headers['x-cio-timestamp'] = String(Number(headers['x-cio-timestamp']) + 1 + Math.floor(random() * 100))
    if (mutation === 'drop-header') delete headers[pick(['x-cio-signature', 'x-cio-timestamp'])]
    if (mutation === 'reserialise') body = JSON.stringify(JSON.parse(body), null, 2)
    if (mutation === 'other-key') Object.assign(headers, signWebhook(body, `${WEBHOOK_KEY}-x`))
    const res = await app.inject({ method: 'POST', url: '/webhooks/customerio', payload: body, headers })
    statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1)
  }
  t.same([...statuses.keys()].filter((s) => s === 200 || s >= 500), [], `answers: ${JSON.stringify(Object.fromEntries(statuses))}`)
  t.equal(handed, 0, 'nothing reached onEvent')
})

t.test('correctly signed junk is never refused (it came from Customer.io): 202 when not JSON, 200 otherwise, never 4xx or 5xx', async (t) => {
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim))
  const random = rng(7)
  const junk = () => {
    const parts = ['{', '}', '[', ']', '"event_id"', ':', ',', '"x"', '1', 'null', 'true', '"data"', '{}', '"timestamp"', '1.5', '-3', '"\\u0000"', '"\\ud800"']
    return Array.from({ length: 1 + Math.floor(random() * 12) }, () => parts[Math.floor(random() * parts.length)]).join('')
  }
  const statuses = new Map<number, number>()
  for (let i = 0; i < 1000; i++) {
    const body = junk()
    const res = await app.inject({ method: 'POST', url: '/webhooks/customerio', payload: body, headers: { 'content-type': 'application/json', ...signWebhook(body, WEBHOOK_KEY) } })
    statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1)
  }
  t.same([...statuses.keys()].sort(), [200, 202], `answers: ${JSON.stringify(Object.fromEntries(statuses))}`)
  t.equal(await metric(app, 'cio_webhook_rejected_total', { reason: 'malformed' }), statuses.get(202), 'each body that is not JSON counted as malformed')
  t.equal(await metric(app, 'cio_webhook_received_total', { object_type: '_other', metric: '_other' }), statuses.get(200), 'the rest as unrecognised events')
})
