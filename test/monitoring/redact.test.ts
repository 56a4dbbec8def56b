import t from 'tap'
import { Writable } from 'node:stream'
import pino from 'pino'
import { cioRedactPaths } from '../../lib/monitoring/redact.ts'
import { sanitize, sanitizeString, REDACTED } from '../../lib/monitoring/sanitize.ts'
import { operations } from '../../lib/client/operations.ts'
import { buildApp, rejection, simOptions, startSimulator } from '../helpers.ts'

t.test('sensitive keys at any depth, PII inside strings, secrets and credentials', async (t) => {
  const out = sanitize({
    operation: 'identify',
    nested: { deeper: { email: 'a@b.co', Phone: '123', recipients: [{ device_id: 'tok' }], note: 'call +44 20 7946 0958 or mail x.y@corp.example.org' } },
    headers: { authorization: 'Bearer abc' },
    apiKey: 'k',
    list: ['plain', 'z@z.io'],
    auth: 'Basic dXNlcjpwYXNz in text',
    text: 'key sk-live-abcdef used',
    count: 3,
    ok: true,
    nothing: null,
    fn: () => 1,
    sym: Symbol('s')
  }, ['sk-live-abcdef'])
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

const EMAIL_FORMS: ReadonlyArray<[string, string]> = [
  ['percent-encoded path', '/api/v1/customers/jane.doe%40example.com'],
  ['percent-encoded plus in the local part', '/api/v1/customers/jane%2Bdoe%40example.com/devices'],
  ['lowercase hex, encoded dots', 'GET /v1/customers?email=jane.doe%40example%2ecom&limit=1'],
  ['double-encoded', 'redirect=%2Fcustomers%2Fjane.doe%2540example.com'],
  ['+-encoded form data', 'name=Jane+Doe&email=jane+doe%40example.com&plan=pro'],
  ['JSON \\u escape', '{"error":"no person jane\\u0040example.com"}'],
  ['JS \\x escape', "'jane\\x40example.com'"],
  ['escaped JSON inside a string', '{"error":"{\\"email\\":\\"jane@example.com\\"}"}'],
  ['double-escaped \\u', '"{\\\\"email\\\\":\\\\"jane\\\\u0040example.com\\\\"}"'],
  ['decimal entity', '<p>No customer jane&#64;example.com</p>'],
  ['decimal entity without ;, zero-padded', '<p>jane&#064example.com</p>'],
  ['hex entity, uppercase X', '<td>jane&#X40;example&#x2E;com</td>'],
  ['named entity', '<td>jane&commat;example&period;com</td>'],
  ['entity escaped again', '&lt;b&gt;jane&amp;#64;example.com&lt;/b&gt;'],
  ['%u escape', 'jane%u0040example.com'],
  ['mixed', 'jane%2Edoe&#64;example\\u002ecom']
]

t.test('email addresses in encoded and escaped forms are masked', async (t) => {
  for (const [name, text] of EMAIL_FORMS) {
    const out = sanitizeString(text)
    t.match(out, /\[email\]/, name)
    t.notMatch(out, /jane|doe/i, `${name}: ${out}`)
  }
  t.equal(sanitizeString('/api/v1/customers/jane.doe%40example.com/devices'), '[email]/devices', 'the address and the path before it go')
  t.equal(sanitizeString('{"meta":{"error":"jane&#64;example.com not found"}}'), '{"meta":{"error":"[email] not found"}}')
  t.equal(sanitizeString('x jane\\u0040example.com y'), 'x [email] y')
})

t.test('phone numbers in encoded and punctuated forms are masked', async (t) => {
  const forms: Array<[string, string, string]> = [
    ['percent-encoded +', '/customers/%2B14155550100', '/customers/[phone]'],
    ['encoded spaces', 'phone +1%20415%20555%200100 invalid', 'phone [phone] invalid'],
    ['encoded + and spaces', 'to=%2B1%20415%20555%200100&x=1', 'to=[phone]&x=1'],
    ['form encoding: + as space', 'phone=%2B1+415+555+0100&ok=1', 'phone=[phone]&ok=1'],
    ['encoded parens and dash', 'tel %2B1%20%28415%29%20555%2D0100', 'tel [phone]'],
    ['entities', 'call &#43;1&nbsp;415&nbsp;555&#45;0100 now', 'call [phone] now'],
    ['JSON escapes', '"\\u002b14155550100"', '"[phone]"'],
    ['punctuated', 'call +44 (20) 7946-0958 or 415.555.0100', 'call [phone] or [phone]'],
    ['typeset: no-break hyphen and spaces', 'call &#43;1&nbsp;(415)&nbsp;555&#8209;0100 or +44\u202f20\u202f7946\u20130958', 'call [phone] or [phone]'],
    ['percent-encoded UTF-8 separators', 'tel=%2B1%C2%A0415%E2%80%91555%E2%80%910100', 'tel=[phone]']
  ]
  for (const [name, text, want] of forms) t.equal(sanitizeString(text), want, name)
})

t.test('a short secret is masked by key name only, never as a substring', async (t) => {
  t.equal(sanitizeString('operation identify', ['o']), 'operation identify', 'a one-character key does not mangle words')
  t.equal(sanitizeString('key abc1234 used', ['abc1234']), 'key abc1234 used', 'seven characters are still too short')
  t.same(sanitize({ operation: 'track_anonymous', apiKey: 'k', headers: { authorization: 'Basic k' }, trackApiKey: 'k' }, ['k']), {
    operation: 'track_anonymous', apiKey: REDACTED, headers: REDACTED, trackApiKey: REDACTED
  })
  t.equal(sanitizeString('Authorization: Bearer k'), `Authorization: Bearer ${REDACTED}`, 'a credential is masked by its scheme')
})

t.test('a long secret is masked raw, percent-encoded, escaped and inside base64 credentials', async (t) => {
  const key = 'sk+live/8f3a=b2c'
  const site = 'site-1'
  const basic = Buffer.from(`${site}:${key}`).toString('base64')
  const cases: Array<[string, string]> = [
    ['raw', `key ${key} rejected`],
    ['percent-encoded', `api_key=${encodeURIComponent(key)}&x=1`],
    ['lowercase percent-encoded', `api_key=${encodeURIComponent(key).toLowerCase()}`],
    ['JSON-escaped', JSON.stringify(JSON.stringify({ key }))],
    ['Basic credential', `Authorization: Basic ${basic}`],
    ['Basic credential in escaped JSON', JSON.stringify(JSON.stringify({ headers: { Authorization: `Basic ${basic}` } }))],
    ['Basic credential URL-encoded', `auth=${encodeURIComponent(`Basic ${basic}`)}&y=2`],
    ['Bearer key in escaped JSON', JSON.stringify(JSON.stringify({ Authorization: `Bearer ${key}` }))],
    ['Bearer key URL-encoded', `h=${encodeURIComponent(`Authorization: Bearer ${key}`)}`],
    ['bare base64 of site:key', `token ${basic} seen`],
    ['base64url of site:key', `token ${Buffer.from(`${site}:${key}`).toString('base64url')} seen`]
  ]
  for (let pad = 0; pad < 3; pad++) {
    cases.push([`base64 with a ${pad}-byte prefix`, `x ${Buffer.from(`${'s'.repeat(pad + 4)}:${key}`).toString('base64')} y`])
  }
  for (const [name, text] of cases) {
    const out = sanitizeString(text, [key])
    t.match(out, /\[Redacted\]/, name)
    t.notOk(out.includes(key) || out.includes(encodeURIComponent(key)) || out.includes(basic) || out.includes(basic.slice(4, 16)), `${name}: ${out}`)
  }
  t.equal(sanitizeString(`auth%3A%20Basic%20${encodeURIComponent(basic)}`, [key]), `auth%3A%20Basic%20${REDACTED}`, 'the mask does not eat into the escape before it')
  t.equal(sanitizeString(`a ${key} b ${key} c`, [key]), `a ${REDACTED} b ${REDACTED} c`, 'every occurrence')
  // The derived patterns are cached per secret; many distinct secrets recycle the cache.
  const many = Array.from({ length: 300 }, (_, i) => `secret-number-${i}`)
  t.equal(sanitizeString('uses secret-number-299 and secret-number-0', many), `uses ${REDACTED} and ${REDACTED}`)
})

t.test('ids, timestamps and operation names pass unchanged, also URL-encoded', async (t) => {
  const keep = [
    '01JGZ8K3M4N5P6Q7R8S9T0V1W2', '01ARZ3NDEKTSV4RRFFQ69G5FAV',
    'RPILAgUBcRhIBqSfeiIwdIYJKxTY', 'dgOJBgUBAW8_m9y5bQ4uXQ-5Zs0=', 'ZGVsaXZlcnktMTIzNDU2Nzg5',
    '1', '42', '1234567', 'id=1234567', '/api/v1/customers/1234567/events', 'ids 1234567, 7654321',
    '2026-01-31T12:34:56Z', '2026-01-31T12:34:56.789Z', '2026-01-31T12:34:56+01:00', '2026-01-31 12:34:56', '20260131T123456Z',
    'at 2026-01-31T12%3A34%3A56.789Z', 'ids 1234567 2026-01-31T12:34:56Z',
    'at file:///app/node_modules/@fastify/otel/index.js:10:5', 'fastify@5.12.8', '100% done & 50%off, C:\\new\\user\\x',
    ...operations.map((op) => op.label), ...operations.map((op) => op.name), ...operations.map((op) => encodeURIComponent(op.template))
  ]
  for (const text of keep) t.equal(sanitizeString(text, ['o', 'sk-live-abcdef']), text, text)
  t.same(sanitize({ event_id: '01JGZ8K3M4N5P6Q7R8S9T0V1W2', attempts: 2, status: 503 }), { event_id: '01JGZ8K3M4N5P6Q7R8S9T0V1W2', attempts: 2, status: 503 })
})

t.test('a value cut by the length limit is masked whole', async (t) => {
  const pad = 'x'.repeat(1_990)
  const email = sanitizeString(`${pad} jane.doe%40example.com ${'y'.repeat(3_000)}`)
  t.equal(email, `${pad} [email]…`)
  const key = 'sk-live-abcdefghijklmnop'
  t.equal(sanitizeString(`${pad} ${key} ${'y'.repeat(3_000)}`, [key]), `${pad} ${REDACTED}…`)
  t.equal(sanitizeString(`${'x'.repeat(2_100)} jane@example.com`), `${'x'.repeat(2_000)}…`, 'a value past the limit is cut off, not masked')
  t.ok(sanitizeString('a@b.co '.repeat(400)).length < 2_400, 'masks may be longer than what they hide, but the input is cut first')
})

t.test('truncated addresses and V8\'s JSON snippet are masked', async (t) => {
  t.equal(sanitizeString('Unexpected token \'j\', "jane.doe@e"... is not valid JSON'), 'Unexpected token \'j\', "[email]"... is not valid JSON')
  t.equal(sanitizeString('sent to jane.doe@exam…'), 'sent to [email]…')
})

t.test('escape edge cases decode or stay literal', async (t) => {
  t.equal(sanitizeString('50% %zz %4 %u00zz \\q \\u12 \\x4 &unknown; &#; & trailing \\'), '50% %zz %4 %u00zz \\q \\u12 \\x4 &unknown; &#; & trailing \\')
  t.equal(sanitizeString('jos%C3%A9%40example.com &#233;lodie&#64;example.com'), '[email] [email]', 'non-ASCII bytes and entities are part of the token')
  t.equal(sanitizeString('%F0%9F%98%80jane%40example.com &#x1F600;jane&#64;example.com'), '[email] [email]', 'so are astral characters')
  t.equal(sanitizeString('jane&#65568;doe&#64;example.com'), '[email]', 'U+10020 is no space')
  t.equal(sanitizeString('jane&#8195;doe&#64;example.com'), 'jane&#8195;[email]', 'U+2003 (em space) is one')
  t.equal(sanitizeString('%C3x %E2%80 %FF%FE %C3%41 %E2%80%91 &#128512;'), '%C3x %E2%80 %FF%FE %C3%41 %E2%80%91 &#128512;', 'broken UTF-8 stays as it is')
  t.equal(sanitizeString('1%C3%2B14155550100'), '1%C3[phone]', 'a stray lead byte is a character of its own')
  t.equal(sanitizeString('jane%25252540example.com'), '[email]', 'four rounds deep')
  t.equal(sanitizeString('jane%2525252540example.com'), 'jane%2525252540example.com', 'decoding stops after four rounds')
  t.equal(sanitizeString('+14155550100@example.com and +14155550100'), '[email] and [phone]', 'overlapping matches merge')
})

t.test('object keys and string error codes are sanitised too', async (t) => {
  t.same(sanitize({ 'jane@example.com': { plan: 'pro' } }), { '[email]': { plan: 'pro' } })
  t.equal((sanitize(Object.assign(new Error('x'), { code: 'E_FOR jane@example.com' })) as { code: string }).code, 'E_FOR [email]')
})
