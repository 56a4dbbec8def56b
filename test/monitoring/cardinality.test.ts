import t from 'tap'
import { randomBytes } from 'node:crypto'
import { APIS, ATTEMPT_STATUSES, CHANNELS, EMAIL_TYPES, ERROR_TYPES, QUEUES } from '../../lib/labels.ts'
import { OUTBOX_DROP_REASONS } from '../../lib/queue/outbox/options.ts'
import { operations } from '../../lib/client/operations.ts'
import { DROP_REASONS } from '../../lib/queue/options.ts'
import { STORE_OPERATIONS } from '../../lib/webhook/dedupe.ts'
import { REJECT_REASONS } from '../../lib/webhook/metrics.ts'
import { METRICS, METRICS_BY_OBJECT_TYPE, OBJECT_TYPES } from '../../lib/webhook/events.ts'
import { signWebhook, webhookEvent } from '../../lib/testing/index.ts'
import { argsFor, methodOf } from '../fixtures/sdk-args.ts'
import { buildApp, rejection, simOptions, startSimulator, WEBHOOK_KEY } from '../helpers.ts'

const SERIES_BUDGET = 2_500
const STATUSES = [400, 401, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 504, 418, 599]

/** Every label value a plugin series may carry, by label name. */
const CLOSED: Record<string, ReadonlySet<string>> = {
  api: new Set(APIS),
  operation: new Set([...operations.map((o) => o.label), '_other']),
  outcome: new Set(['success', 'error']),
  error_type: new Set(ERROR_TYPES),
  status_code: new Set(ATTEMPT_STATUSES),
  source: new Set(['api', 'webhook']),
  type: new Set(EMAIL_TYPES),
  object_type: new Set([...OBJECT_TYPES, '_other']),
  metric: new Set([...METRICS, '_other']),
  reason: new Set([...REJECT_REASONS, ...DROP_REASONS, ...OUTBOX_DROP_REASONS]),
  channel: new Set(CHANNELS),
  queue: new Set(QUEUES),
  call: new Set(STORE_OPERATIONS)
}

t.test('a fuzzed run stays inside the series budget with closed label values and no identifiers', async (t) => {
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim, { client: { retry: { maxRetries: 0 } } }))
  // Every operation: success, every HTTP failure class, a synchronous argument error.
  for (const op of operations) {
    await methodOf(app.cio, op)(...argsFor(op.name))
    for (const status of STATUSES) {
      sim.fault({ status, times: 1 })
      await rejection(methodOf(app.cio, op)(...argsFor(op.name)))
    }
  }
  for (const op of operations.slice(0, 20)) {
    sim.fault({ reset: true, times: 1 })
    await rejection(methodOf(app.cio, op)(...argsFor(op.name)))
    sim.fault({ status: 200, body: '<html>', times: 1 })
    await rejection(methodOf(app.cio, op)(...argsFor(op.name)))
  }
  // Every documented webhook pair, then 1 000 events with random types, metrics and ids.
  const post = (event: object) => {
    const body = JSON.stringify(event)
    return app.inject({ method: 'POST', url: '/webhooks/customerio', payload: body, headers: { 'content-type': 'application/json', ...signWebhook(body, WEBHOOK_KEY) } })
  }
  for (const type of OBJECT_TYPES) for (const metric of METRICS_BY_OBJECT_TYPE[type]) await post(webhookEvent(type, metric))
  for (let i = 0; i < 1000; i++) {
    const random = randomBytes(6).toString('hex')
    const event = webhookEvent('email', 'sent', { delivery_id: `d-${random}` })
    await post({ ...event, object_type: i % 2 === 0 ? `type_${random}` : 'email', metric: `metric_${random}@example.com` })
  }
  for (const reason of ['missing', 'bad']) await app.inject({ method: 'POST', url: '/webhooks/customerio', payload: '{}', headers: { 'content-type': 'application/json', ...(reason === 'bad' ? { 'x-cio-signature': 'f'.repeat(64), 'x-cio-timestamp': '1' } : {}) } })
  app.cio.queue!.identify('person-queued@example.com')
  await app.cio.queue!.flush()

  const text = (await app.inject('/metrics')).body
  const series = text.split('\n').filter((line) => line.startsWith('cio_'))
  t.ok(series.length <= SERIES_BUDGET, `${series.length} cio_* series ≤ ${SERIES_BUDGET}`)
  t.ok(series.length > 1_000, 'the run really filled the budget')
  const bad: string[] = []
  for (const line of series) {
    const labels = /\{(.*)\}/.exec(line)?.[1] ?? ''
    for (const [, name, value] of labels.matchAll(/(\w+)="([^"]*)"/g)) {
      if (name === 'le' || name === 'version' || name === 'sdk_version') continue
      if (!CLOSED[name!]?.has(value!)) bad.push(`${name}=${value}`)
    }
  }
  t.same(bad, [], 'every label value is from its closed set')
  t.notMatch(series.join('\n'), /@|person-|d-[0-9a-f]{12}|type_[0-9a-f]|metric_[0-9a-f]/, 'no ids, emails or free text in labels')
})
