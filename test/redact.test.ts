import t from 'tap'
import { Writable } from 'node:stream'
import pino from 'pino'
import { cioRedactPaths, sanitize, sanitizeString, REDACTED } from '../lib/redact.ts'
import { buildApp, rejection, simOptions, startSimulator } from './helpers.ts'

t.test('sensitive keys at any depth, PII inside strings, secrets and credentials', async (t) => {
  const out = sanitize({
    operation: 'identify',
    nested: { deeper: { email: 'a@b.co', Phone: '123', recipients: [{ device_id: 'tok' }], note: 'call +44 20 7946 0958 or mail x.y@corp.example.org' } },
    headers: { authorization: 'Bearer abc' },
    apiKey: 'k',
    list: ['plain', 'z@z.io'],
    auth: 'Basic dXNlcjpwYXNz in text',
    text: 'key sk-123 used',
    count: 3,
    ok: true,
    nothing: null,
    fn: () => 1,
    sym: Symbol('s')
  }, ['sk-123'])
  t.same(out, {
    operation: 'identify',
    nested: { deeper: { email: REDACTED, Phone: REDACTED, recipients: REDACTED, note: 'call [phone] or mail [email]' } },
    headers: REDACTED,
    apiKey: REDACTED,
    list: ['plain', '[email]'],
    auth: REDACTED,
    text: `key ${REDACTED} used`,
    count: 3,
    ok: true,
    nothing: null,
    fn: undefined,
    sym: undefined
  })
  t.equal(sanitizeString('Authorization: Bearer abc.def'), `Authorization: Bearer ${REDACTED}`)
})

t.test('ids, ULIDs, timestamps-as-numbers and status codes survive', async (t) => {
  t.equal(sanitizeString('event 01JGZ8K3M4N5P6Q7R8S9T0V1W2 delivery RPILAgUBcRhIBqSfeiIwdIYJKxTY status 503'), 'event 01JGZ8K3M4N5P6Q7R8S9T0V1W2 delivery RPILAgUBcRhIBqSfeiIwdIYJKxTY status 503')
  t.equal(sanitizeString('id 0123456789ABCDEF stays'), 'id 0123456789ABCDEF stays')
  t.same(sanitize({ timestamp: 1767225600 }), { timestamp: 1767225600 })
})

t.test('bounded on large and cyclic input', async (t) => {
  const cyclic: Record<string, unknown> = { a: 1 }
  cyclic.self = cyclic
  t.same(sanitize(cyclic), { a: 1, self: '[Circular]' })
  let deep: Record<string, unknown> = { leaf: 'x' }
  for (let i = 0; i < 20; i++) deep = { next: deep }
  t.match(JSON.stringify(sanitize(deep)), /\[Truncated\]/)
  const wide = Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`k${i}`, i]))
  t.equal(Object.keys(sanitize(wide) as object).length, 100)
  t.equal((sanitize(Array.from({ length: 500 }, () => 1)) as unknown[]).length, 100)
  t.ok(sanitizeString('x'.repeat(10_000)).length < 2_100)
})

t.test('errors become type/message/code/status with sanitised text and causes', async (t) => {
  const cause = Object.assign(new Error('connect to jane@example.com failed'), { code: 'ECONNREFUSED' })
  const err = Object.assign(new TypeError('fetch failed for bob@example.com', { cause }), { statusCode: 502, code: 42 })
  const out = sanitize(err) as Record<string, any>
  t.equal(out.type, 'TypeError')
  t.equal(out.message, 'fetch failed for [email]')
  t.equal(out.statusCode, 502)
  t.equal(out.code, 42)
  t.equal(out.cause.code, 'ECONNREFUSED')
  t.equal(out.cause.message, 'connect to [email] failed')
  t.notMatch(out.stack, /bob@/)
  const custom = new Error('y')
  custom.stack = 'rewritten by a framework: see bob@example.com\n    at somewhere'
  t.equal((sanitize(custom) as { stack: string }).stack, 'rewritten by a framework: see [email]\n    at somewhere', 'a stack that does not start with the message is scanned whole')
  const bare = new Error('x')
  bare.stack = undefined
  t.same(sanitize(bare), { type: 'Error', message: 'x' })
  t.notOk('code' in (sanitize(Object.assign(new Error('y'), { code: { nested: true } })) as object), 'a non-scalar code is left out')
})

/** A deterministic generator of nested payloads that hide PII and secrets at random depths. */
function * payloads (count: number, secret: string): Generator<unknown> {
  let seed = 42
  const random = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x7fffffff }
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!
  const leaks = [
    () => `user${Math.floor(random() * 1e6)}@mail${Math.floor(random() * 100)}.example.com`,
    () => `+1 (415) 555-${String(Math.floor(random() * 1e4)).padStart(4, '0')}`,
    () => `+4479${String(Math.floor(random() * 1e8)).padStart(8, '0')}`,
    () => secret,
    () => `Bearer ${secret}`
  ]
  const keys = ['email', 'phone', 'recipient', 'ip_address', 'password', 'token', 'api_key', 'note', 'message', 'detail', 'value', 'attrs']
  const build = (depth: number): unknown => {
    if (depth === 0 || random() < 0.2) return random() < 0.5 ? `text ${pick(leaks)()} more` : pick(leaks)()
    if (random() < 0.3) return Array.from({ length: 1 + Math.floor(random() * 3) }, () => build(depth - 1))
    return Object.fromEntries(Array.from({ length: 1 + Math.floor(random() * 4) }, () => [pick(keys), build(depth - 1)]))
  }
  for (let i = 0; i < count; i++) yield build(1 + Math.floor(random() * 7))
}

const LEAK = /@mail\d+\.example\.com|555-\d{4}|\+4479\d{8}|fuzz-secret-key/

t.test('fuzz: 10 000 nested payloads leak nothing through the sanitizer', async (t) => {
  let leaks = 0
  for (const payload of payloads(10_000, 'fuzz-secret-key')) {
    if (LEAK.test(JSON.stringify(sanitize(payload, ['fuzz-secret-key'])))) leaks++
  }
  t.equal(leaks, 0)
})

t.test('fuzz through the plugin: error bodies with PII reach logs and errors sanitised', async (t) => {
  const sim = await startSimulator(t, { trackApiKey: 'fuzz-secret-key' })
  const { app, logs } = await buildApp(t, simOptions(sim, { client: { retry: { maxRetries: 0 } } }))
  const statuses = [400, 401, 403, 404, 409, 413, 422, 429, 500, 502, 503, 504]
  let n = 0
  for (const payload of payloads(300, 'fuzz-secret-key')) {
    sim.fault({ status: statuses[n++ % statuses.length], body: { meta: { error: JSON.stringify(payload).slice(0, 1500) } }, times: 1 })
    await rejection(app.cio.identify('a', {}))
  }
  t.equal(logs.lines.filter((l) => l.msg === 'customer.io call failed').length, 300)
  t.notMatch(logs.text(), LEAK, 'no PII or key in any log line')
})

t.test('the plugin logs through a child logger at its own level, and never secrets', async (t) => {
  const sim = await startSimulator(t)
  const { logs } = await buildApp(t, simOptions(sim, { logLevel: 'warn' }))
  t.equal(logs.lines.filter((l) => l.plugin === 'customerio').length, 0, 'info is below the plugin\'s level')
  const all = await buildApp(t, simOptions(sim))
  const ready = all.logs.lines.find((l) => l.msg === 'customer.io observability ready')!
  t.match(ready, { plugin: 'customerio', track: true, app: true, region: 'custom', metrics: '/metrics' })
  t.notMatch(all.logs.text(), new RegExp(`${sim.trackApiKey}|${sim.appApiKey}`))
  const eu = await buildApp(t, { env: {}, region: 'eu', metrics: { defaultMetrics: false }, webhook: false })
  t.match(eu.logs.lines.find((l) => l.msg === 'customer.io observability ready'), { region: 'eu', track: false, app: false })
  const us = await buildApp(t, { env: {}, metrics: { defaultMetrics: false }, webhook: false })
  t.match(us.logs.lines.find((l) => l.msg === 'customer.io observability ready'), { region: 'us' })
})

t.test('cioRedactPaths redacts an app logger\'s own lines', async (t) => {
  let out = ''
  const logger = pino({ redact: [...cioRedactPaths] }, new Writable({ write (c, _e, done) { out += c.toString(); done() } }))
  logger.info({ req: { headers: { authorization: 'Bearer xyz', 'x-cio-signature': 'abc' } }, user: { email: 'a@b.co', phone: '+15550100' }, data: { identifiers: { id: 1 }, subject: 'Hi' } })
  t.notMatch(out, /xyz|abc|a@b\.co|15550100|"Hi"/)
  t.match(out, /\[Redacted\]/)
})
