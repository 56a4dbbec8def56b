import { computeSignature } from '../webhook/verify.ts'

/**
 * The two headers Customer.io sends with a reporting webhook, for `body` signed with
 * `key` at `timestamp` (Unix seconds, default now). Sign the exact bytes you send.
 */
export function signWebhook (body: string | Buffer, key: string, timestamp = Math.floor(Date.now() / 1000)): { 'x-cio-timestamp': string, 'x-cio-signature': string } {
  const ts = String(timestamp)
  return { 'x-cio-timestamp': ts, 'x-cio-signature': computeSignature(key, ts, body) }
}
