import { createHmac, timingSafeEqual } from 'node:crypto'

export type VerifyFailure = 'missing_signature' | 'bad_signature' | 'stale_timestamp'

export interface VerifyInput {
  /** `X-CIO-Signature`: lowercase hex HMAC-SHA256. */
  readonly signature: unknown
  /** `X-CIO-Timestamp`: Unix seconds when Customer.io sent the request. */
  readonly timestamp: unknown
  /** The raw request bytes, exactly as received. */
  readonly body: Buffer
  /** Any one may match, so keys can be rotated without downtime. */
  readonly keys: readonly string[]
  /** Largest accepted |now − timestamp|; no age limit when undefined. */
  readonly toleranceSeconds?: number
  /** Current time in milliseconds (injectable for tests). */
  readonly now?: number
}

const HEX_SHA256 = /^[0-9a-f]{64}$/
const UNIX_SECONDS = /^\d{1,12}$/

function digest (key: string, timestamp: string, body: Buffer | string): Buffer {
  return createHmac('sha256', key).update(`v0:${timestamp}:`).update(body).digest()
}

/** The hex signature Customer.io sends for `body` at `timestamp`: HMAC-SHA256 of `v0:<timestamp>:<body>`. */
export function computeSignature (key: string, timestamp: string, body: Buffer | string): string {
  return digest(key, timestamp, body).toString('hex')
}

/**
 * Verifies a Customer.io reporting-webhook request in constant time. The signature is
 * checked before the age, so `stale_timestamp` is only ever said of an authentic request.
 */
export function verifySignature (input: VerifyInput): { ok: true } | { ok: false, reason: VerifyFailure } {
  const { signature, timestamp, body, keys } = input
  if (signature === undefined || timestamp === undefined || signature === '' || timestamp === '') {
    return { ok: false, reason: 'missing_signature' }
  }
  // A repeated header arrives as an array, which is never a valid signature or timestamp.
  if (typeof signature !== 'string' || typeof timestamp !== 'string' || !HEX_SHA256.test(signature) || !UNIX_SECONDS.test(timestamp)) {
    return { ok: false, reason: 'bad_signature' }
  }
  const given = Buffer.from(signature, 'hex')
  let match = false
  for (const key of keys) {
    // Every key is tried, so the time taken does not tell which one matched.
    match = timingSafeEqual(given, digest(key, timestamp, body)) || match
  }
  if (!match) return { ok: false, reason: 'bad_signature' }
  if (input.toleranceSeconds !== undefined) {
    const age = Math.abs((input.now ?? Date.now()) / 1000 - Number(timestamp))
    if (age > input.toleranceSeconds) return { ok: false, reason: 'stale_timestamp' }
  }
  return { ok: true }
}
