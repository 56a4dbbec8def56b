import { createHmac, timingSafeEqual } from 'node:crypto'
import { CioWebhookSignatureInvalidError, CioWebhookSignatureMissingError, CioWebhookTimestampStaleError } from '../errors.ts'
import { parseEvent, type CioWebhookEvent } from './events.ts'

export const VERIFY_FAILURES = ['missing_signature', 'bad_signature', 'stale_timestamp'] as const
export type VerifyFailure = (typeof VERIFY_FAILURES)[number]

/** The error each failure is answered with (401), here and by {@link verifyCioWebhook}. */
export const VERIFY_ERRORS: Readonly<Record<VerifyFailure, () => Error>> = {
  missing_signature: () => new CioWebhookSignatureMissingError(),
  bad_signature: () => new CioWebhookSignatureInvalidError(),
  stale_timestamp: () => new CioWebhookTimestampStaleError()
}

export interface SignedRequest {
  /** `X-CIO-Signature`: lowercase hex HMAC-SHA256. */
  readonly signature: unknown
  /** `X-CIO-Timestamp`: Unix seconds when Customer.io sent the request. */
  readonly timestamp: unknown
  /** The raw request bytes, exactly as received. */
  readonly body: Buffer | string
  /** Current time in milliseconds (injectable for tests). Default `Date.now()`. */
  readonly now?: number
}

export type Verdict = { readonly ok: true } | { readonly ok: false, readonly reason: VerifyFailure }

const HEX_SHA256 = /^[0-9a-f]{64}$/
const UNIX_SECONDS = /^\d{1,12}$/
const OK: Verdict = Object.freeze({ ok: true })

/** The hex signature Customer.io sends for `body` at `timestamp`: HMAC-SHA256 of `v0:<timestamp>:<body>`. */
export function computeSignature (key: string, timestamp: string, body: Buffer | string): string {
  return createHmac('sha256', key).update(`v0:${timestamp}:`).update(body).digest('hex')
}

/**
 * Prepares a verifier for a set of signing keys (any may match, so keys can be rotated
 * without downtime) and an optional tolerance in seconds for |now − X-CIO-Timestamp|.
 * Signatures are compared in constant time, and the signature is checked before the age, so
 * `stale_timestamp` is only ever said of an authentic request.
 */
export function createWebhookVerifier (keys: readonly string[], toleranceSeconds?: number): (request: SignedRequest) => Verdict {
  // A copy: the verifier's keys cannot change under it.
  const signingKeys = [...keys]
  return ({ signature, timestamp, body, now }) => {
    if (signature === undefined || timestamp === undefined || signature === '' || timestamp === '') {
      return { ok: false, reason: 'missing_signature' }
    }
    // A repeated header arrives as an array, which is never a valid signature or timestamp.
    if (typeof signature !== 'string' || typeof timestamp !== 'string' || !HEX_SHA256.test(signature) || !UNIX_SECONDS.test(timestamp)) {
      return { ok: false, reason: 'bad_signature' }
    }
    const given = Buffer.from(signature, 'hex')
    // Every key is tried, so the time taken does not tell which one matched.
    let match = false
    for (const key of signingKeys) {
      match = timingSafeEqual(given, Buffer.from(computeSignature(key, timestamp, body), 'hex')) || match
    }
    if (!match) return { ok: false, reason: 'bad_signature' }
    if (toleranceSeconds !== undefined && Math.abs((now ?? Date.now()) / 1000 - Number(timestamp)) > toleranceSeconds) {
      return { ok: false, reason: 'stale_timestamp' }
    }
    return OK
  }
}

export interface VerifyCioWebhookInput {
  /** The raw request body, exactly as received (not re-serialised JSON). */
  readonly body: Buffer | string
  /** The request headers: Node's lower-cased record, or a fetch `Headers`. */
  readonly headers: Readonly<Record<string, string | readonly string[] | undefined>> | { get: (name: string) => string | null }
  readonly signingKeys: string | readonly string[]
  readonly toleranceSeconds?: number
  /** Current time in milliseconds. Default `Date.now()`. */
  readonly now?: number
}

function header (headers: VerifyCioWebhookInput['headers'], name: string): unknown {
  return typeof headers.get === 'function' ? (headers.get(name) ?? undefined) : (headers as Record<string, unknown>)[name]
}

/**
 * The route's check for apps that receive the webhook elsewhere: verifies the signature and
 * returns the event (an unrecognised one as `object_type: '_other'`), or throws the route's
 * errors (`FST_CIO_WEBHOOK_SIGNATURE_MISSING`, `…_INVALID`, `…_TIMESTAMP_STALE`, and
 * `…_MALFORMED` for a body that is not JSON).
 */
export function verifyCioWebhook (input: VerifyCioWebhookInput): CioWebhookEvent {
  const keys = typeof input.signingKeys === 'string' ? [input.signingKeys] : input.signingKeys
  const verdict = createWebhookVerifier(keys, input.toleranceSeconds)({
    signature: header(input.headers, 'x-cio-signature'),
    timestamp: header(input.headers, 'x-cio-timestamp'),
    body: input.body,
    now: input.now
  })
  if (!verdict.ok) throw VERIFY_ERRORS[verdict.reason]()
  return parseEvent(input.body).event
}
