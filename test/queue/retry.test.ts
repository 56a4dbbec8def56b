import t from 'tap'
import { CustomerIORequestError, MissingParamError } from 'customerio-node'
import { isTransient, retryAfterMs, retryDelay } from '../../lib/queue/retry.ts'

const answered = (status: number, headers: Record<string, string> = {}) =>
  new CustomerIORequestError({}, status, { statusCode: status, headers, ok: false }, '')

t.test('content refusals are final; everything else is transient', async (t) => {
  for (const status of [400, 413, 422]) t.equal(isTransient(answered(status)), false, `${status}`)
  t.equal(isTransient(new MissingParamError('batch')), false, 'a batch the SDK refused')
  for (const status of [401, 403, 404, 408, 409, 429, 500, 502, 503, 504, 418, 599]) t.equal(isTransient(answered(status)), true, `${status}`)
  t.equal(isTransient(new DOMException('timeout', 'TimeoutError')), true, 'timeout')
  t.equal(isTransient(new TypeError('fetch failed')), true, 'network')
})

t.test('Retry-After in seconds or as an HTTP date, on the error or its cause', async (t) => {
  const now = Date.parse('2026-12-01T12:00:00Z')
  t.equal(retryAfterMs(answered(429, { 'retry-after': '3' }), now), 3_000)
  t.equal(retryAfterMs(answered(429, { 'retry-after': '0.5' }), now), 500)
  t.equal(retryAfterMs(answered(503, { 'retry-after': 'Tue, 01 Dec 2026 12:00:10 GMT' }), now), 10_000)
  t.equal(retryAfterMs(answered(503, { 'retry-after': 'Tue, 01 Dec 2026 11:00:00 GMT' }), now), 0, 'a date past is now')
  t.equal(retryAfterMs(answered(503, { 'retry-after': 'soon' }), now), undefined)
  t.equal(retryAfterMs(answered(503), now), undefined)
  t.equal(retryAfterMs(new Error('wrapped', { cause: answered(429, { 'retry-after': '2' }) }), now), 2_000, 'through cause')
  t.equal(retryAfterMs(new TypeError('fetch failed'), now), undefined)
  t.equal(retryAfterMs(undefined, now), undefined)
})

t.test('exponential backoff with full jitter, capped, never sooner than Retry-After', async (t) => {
  const policy = { retryDelayMs: 500, maxRetryDelayMs: 30_000 }
  const top = () => 0.999_999
  t.same([1, 2, 3, 4, 5, 6, 7, 8].map((n) => retryDelay(policy, n, undefined, top)), [499, 999, 1_999, 3_999, 7_999, 15_999, 29_999, 29_999], 'doubling up to the cap')
  t.equal(retryDelay(policy, 3, undefined, () => 0), 0, 'full jitter reaches 0')
  t.equal(retryDelay(policy, 3, undefined, () => 0.5), 1_000)
  t.equal(retryDelay(policy, 1, 4_000, () => 0.5), 4_000, 'Retry-After wins over a shorter backoff')
  t.equal(retryDelay(policy, 8, 4_000, () => 0.5), 15_000, 'a longer backoff wins over Retry-After')
  t.equal(retryDelay(policy, 1, 600_000, () => 0), 30_000, 'Retry-After is honoured up to maxRetryDelayMs')
  t.equal(retryDelay(policy, 1_000, undefined, top), 29_999, 'no overflow after many failures')
  const spread = new Set(Array.from({ length: 100 }, () => retryDelay(policy, 5, undefined)))
  t.ok(spread.size > 50, 'Math.random by default: instances that failed together spread out')
})
