import t from 'tap'
import { createHmac, randomBytes } from 'node:crypto'
import { verifyRequestSignature } from 'customerio-node'
import { execFileSync } from 'node:child_process'
import { computeSignature, createWebhookVerifier, type SignedRequest } from '../../lib/webhook/verify.ts'
import { verifyCioWebhook } from '../../lib/index.ts'
import { signWebhook, webhookEvent } from '../../lib/testing/index.ts'

/** One-shot verification: prepares a verifier for the keys and checks one request. */
const verifySignature = ({ keys, toleranceSeconds, ...request }: SignedRequest & { keys: readonly string[], toleranceSeconds?: number }) =>
  createWebhookVerifier(keys, toleranceSeconds)(request)

const KEY = 'cio-test-signing-key'
const VECTOR_BODY = '{"event_id":"01JGZ8K3M4N5P6Q7R8S9T0V1W2","object_type":"email","metric":"delivered","timestamp":1767225590,"data":{}}'

t.test('matches the reference test vector', async (t) => {
  t.equal(computeSignature(KEY, '1767225600', VECTOR_BODY), 'b6ee051bf30ce289cf46807d4996d7b2b44d1f359adbf5221277796d8d5b350a')
  t.same(verifySignature({ signature: 'b6ee051bf30ce289cf46807d4996d7b2b44d1f359adbf5221277796d8d5b350a', timestamp: '1767225600', body: Buffer.from(VECTOR_BODY), keys: [KEY] }), { ok: true })
})

t.test('agrees with customerio-node\'s verifyRequestSignature', async (t) => {
  for (let i = 0; i < 200; i++) {
    const key = randomBytes(16).toString('hex')
    const body = randomBytes(1 + (i % 64)).toString(i % 2 === 0 ? 'base64' : 'latin1')
    const timestamp = String(1_700_000_000 + i)
    const forged = i % 3 === 0
    const signature = forged ? computeSignature('other', timestamp, body) : signWebhook(body, key, Number(timestamp))['x-cio-signature']
    const ours = verifySignature({ signature, timestamp, body: Buffer.from(body), keys: [key] }).ok
    t.equal(ours, verifyRequestSignature({ signingSecret: key, timestamp, body, signature }), `case ${i}`)
  }
})

t.test('equals OpenSSL\'s HMAC-SHA256 for keys shorter than, equal to and longer than the block', async (t) => {
  const body = Buffer.from(VECTOR_BODY)
  // 64 bytes is SHA-256's block: longer keys are hashed first. 'é' is two UTF-8 bytes.
  for (const length of [1, 2, 31, 32, 63, 64, 65, 100, 128, 129, 200]) {
    for (const key of [randomBytes(length).toString('latin1').slice(0, length), 'é'.repeat(Math.ceil(length / 2)), 'k'.repeat(length)]) {
      const expected = createHmac('sha256', key).update('v0:1767225600:').update(body).digest('hex')
      t.equal(computeSignature(key, '1767225600', body), expected, `key of ${Buffer.byteLength(key)} bytes`)
      t.same(verifySignature({ signature: expected, timestamp: '1767225600', body, keys: ['other', key] }), { ok: true })
    }
  }
  const empty = createHmac('sha256', KEY).update('v0:1767225600:').digest('hex')
  t.equal(computeSignature(KEY, '1767225600', ''), empty, 'empty body')
  t.same(verifySignature({ signature: empty, timestamp: '1767225600', body: Buffer.alloc(0), keys: [KEY] }), { ok: true }, 'the verifier, empty body')
  t.same(verifySignature({ signature: computeSignature(KEY, '1767225600', 'é'), timestamp: '1767225600', body: 'é', keys: [KEY] }), { ok: true }, 'the verifier, a string body as UTF-8')
})

t.test('one verifier checks bodies of any size, in any order: a large body changes nothing for the next', async (t) => {
  const verify = createWebhookVerifier(['other', KEY])
  // Around the buffer a verifier keeps (1 KiB), past it, and past what it keeps at all (16 KiB).
  for (const length of [0, 1, 1_000, 1_024, 1_100, 300, 5_000, 200, 16_000, 16_500, 40_000, 100, 16_384]) {
    for (const body of [Buffer.from('x'.repeat(length)), 'é'.repeat(Math.ceil(length / 2))]) {
      const signature = createHmac('sha256', KEY).update('v0:1767225600:').update(body).digest('hex')
      const size = Buffer.byteLength(body)
      t.same(verify({ signature, timestamp: '1767225600', body }), { ok: true }, `${typeof body} of ${size} bytes`)
      t.same(verify({ signature, timestamp: '1767225601', body }), { ok: false, reason: 'bad_signature' }, `${typeof body} of ${size} bytes, another timestamp`)
    }
  }
})

t.test('a prepared verifier reads its keys once: it verifies the same way every time and ignores later changes to the array', async (t) => {
  const body = Buffer.from(VECTOR_BODY)
  const headers = signWebhook(body, KEY, 1_767_225_600)
  const request = { signature: headers['x-cio-signature'], timestamp: headers['x-cio-timestamp'], body }
  const keys = ['old-key', KEY]
  const verify = createWebhookVerifier(keys)
  for (let i = 0; i < 3; i++) t.same(verify(request), { ok: true })
  keys[1] = 'rotated-away'
  t.same(verify(request), { ok: true }, 'the keys were copied when it was prepared')
  t.same(createWebhookVerifier(keys)(request), { ok: false, reason: 'bad_signature' }, 'a verifier prepared from the changed keys refuses')
})

t.test('a distinct reason for each failure', async (t) => {
  const body = Buffer.from(VECTOR_BODY)
  const headers = signWebhook(body, KEY, 1_767_225_600)
  const check = (patch: Record<string, unknown>) => verifySignature({ signature: headers['x-cio-signature'], timestamp: headers['x-cio-timestamp'], body, keys: [KEY], ...patch })
  t.same(check({ signature: undefined }), { ok: false, reason: 'missing_signature' })
  t.same(check({ timestamp: undefined }), { ok: false, reason: 'missing_signature' })
  t.same(check({ signature: '' }), { ok: false, reason: 'missing_signature' })
  t.same(check({ timestamp: '' }), { ok: false, reason: 'missing_signature' })
  t.same(check({ signature: [headers['x-cio-signature'], headers['x-cio-signature']] }), { ok: false, reason: 'bad_signature' }, 'repeated header')
  t.same(check({ signature: headers['x-cio-signature'].toUpperCase() }), { ok: false, reason: 'bad_signature' }, 'upper-case hex')
  t.same(check({ signature: `v0=${headers['x-cio-signature']}` }), { ok: false, reason: 'bad_signature' }, 'prefixed')
  t.same(check({ signature: headers['x-cio-signature'].slice(0, 63) }), { ok: false, reason: 'bad_signature' }, 'truncated')
  t.same(check({ timestamp: '1767225600.0' }), { ok: false, reason: 'bad_signature' }, 'not a unix timestamp')
  t.same(check({ keys: ['wrong'] }), { ok: false, reason: 'bad_signature' })
  t.same(check({ body: Buffer.from(JSON.stringify(JSON.parse(VECTOR_BODY), null, 1)) }), { ok: false, reason: 'bad_signature' }, 're-serialised JSON')
  t.same(check({ body: body.subarray(0, body.length - 1) }), { ok: false, reason: 'bad_signature' }, 'truncated body')
  t.same(check({ keys: ['old-key', KEY] }), { ok: true }, 'any key of a rotation matches')
})

t.test('optional tolerance, symmetric, with an injectable clock; stale only for authentic requests', async (t) => {
  const body = Buffer.from(VECTOR_BODY)
  const headers = signWebhook(body, KEY, 1_767_225_600)
  const at = (nowSeconds: number, keys = [KEY]) => verifySignature({ signature: headers['x-cio-signature'], timestamp: headers['x-cio-timestamp'], body, keys, toleranceSeconds: 300, now: nowSeconds * 1000 })
  t.same(at(1_767_225_600 + 300), { ok: true })
  t.same(at(1_767_225_600 + 301), { ok: false, reason: 'stale_timestamp' })
  t.same(at(1_767_225_600 - 301), { ok: false, reason: 'stale_timestamp' }, 'from the future')
  t.same(at(1_767_225_600 + 10_000, ['wrong']), { ok: false, reason: 'bad_signature' })
  t.same(verifySignature({ signature: headers['x-cio-signature'], timestamp: headers['x-cio-timestamp'], body, keys: [KEY] }), { ok: true }, 'no age limit by default')
  const fresh = signWebhook(body, KEY)
  t.same(verifySignature({ signature: fresh['x-cio-signature'], timestamp: fresh['x-cio-timestamp'], body, keys: [KEY], toleranceSeconds: 5 }), { ok: true }, 'the real clock by default')
})

/** An independent signer: OpenSSL's command line, not Node's crypto. */
function opensslSign (key: string, timestamp: string, body: string): string {
  const out = execFileSync('openssl', ['dgst', '-sha256', '-hmac', key], { input: `v0:${timestamp}:${body}` }).toString()
  return out.trim().split(/\s+/).at(-1)!
}

t.test('verifyCioWebhook returns the event signed by an independent signer, or throws the route\'s errors', async (t) => {
  const event = webhookEvent('email', 'delivered')
  const body = JSON.stringify(event)
  const timestamp = '1767225600'
  const headers = { 'x-cio-timestamp': timestamp, 'x-cio-signature': opensslSign(KEY, timestamp, body) }
  t.same(verifyCioWebhook({ body, headers, signingKeys: KEY }), event, 'a string body and a Node headers record')
  t.same(verifyCioWebhook({ body: Buffer.from(body), headers: new Headers(headers), signingKeys: ['old', KEY] }), event, 'a Buffer and fetch Headers, any key of a rotation')
  const cases: Array<[string, Parameters<typeof verifyCioWebhook>[0], string]> = [
    ['no headers', { body, headers: {}, signingKeys: KEY }, 'FST_CIO_WEBHOOK_SIGNATURE_MISSING'],
    ['no fetch Headers', { body, headers: new Headers(), signingKeys: KEY }, 'FST_CIO_WEBHOOK_SIGNATURE_MISSING'],
    ['wrong key', { body, headers, signingKeys: 'other' }, 'FST_CIO_WEBHOOK_SIGNATURE_INVALID'],
    ['tampered', { body: body.replace('delivered', 'bounced'), headers, signingKeys: KEY }, 'FST_CIO_WEBHOOK_SIGNATURE_INVALID'],
    ['stale', { body, headers, signingKeys: KEY, toleranceSeconds: 300, now: (Number(timestamp) + 301) * 1000 }, 'FST_CIO_WEBHOOK_TIMESTAMP_STALE']
  ]
  for (const [name, input, code] of cases) t.throws(() => verifyCioWebhook(input), { code, statusCode: 401 }, name)
  t.same(verifyCioWebhook({ body, headers, signingKeys: KEY, toleranceSeconds: 300, now: Number(timestamp) * 1000 }), event, 'within the tolerance')
  const notJson = 'not json'
  t.throws(() => verifyCioWebhook({ body: notJson, headers: { 'x-cio-timestamp': timestamp, 'x-cio-signature': opensslSign(KEY, timestamp, notJson) }, signingKeys: KEY }), { code: 'FST_CIO_WEBHOOK_MALFORMED' })
})
