import { hash } from 'node:crypto'

/** SHA-256's block, in bytes: HMAC pads the key to it, and hashes a longer key first. */
const BLOCK = 64
const DIGEST = 32
/** Messages up to this size are assembled in a buffer kept for the key; a larger one gets its own. */
const KEPT_MESSAGE = 16 * 1024

/**
 * HMAC-SHA256 (RFC 2104) for one key, its padded keys prepared once: each message is then two
 * one-shot hashes, H((K ⊕ opad) ‖ H((K ⊕ ipad) ‖ head ‖ body)). createHmac repeats the key
 * setup and builds a stream object per message: about 2 µs more per request in the benchmark's
 * server (`node bench/profile.ts`), where it was the largest part of the route's own cost.
 *
 * Returns a function writing the MAC of a message into `out` (32 bytes). Nothing is allocated
 * outside the JS heap per message (the digests come back as binary strings, the message is
 * assembled in a buffer kept for the key): Buffers made per request grow Node's external
 * memory, whose pressure set off full GCs that stalled the server for 5 to 13 ms each.
 * Synchronous, so one set of buffers serves every message.
 */
export function prepareHmacSha256 (key: string): (head: string, body: Buffer | string, out: Buffer) => void {
  let bytes = Buffer.from(key, 'utf8')
  if (bytes.length > BLOCK) bytes = hash('sha256', bytes, 'buffer')
  // The inner pad, then room for the message.
  let message = Buffer.alloc(BLOCK + 1024, 0x36)
  // The outer pad, then the inner digest.
  const outer = Buffer.alloc(BLOCK + DIGEST, 0x5c)
  for (let i = 0; i < bytes.length; i++) {
    message[i]! ^= bytes[i]!
    outer[i]! ^= bytes[i]!
  }
  return (head, body, out) => {
    const length = BLOCK + Buffer.byteLength(head) + Buffer.byteLength(body)
    let into = message
    if (length > message.length) {
      // Not from Node's shared pool: it holds the key's pad and the last body.
      into = Buffer.allocUnsafeSlow(length)
      message.copy(into, 0, 0, BLOCK)
      if (length <= KEPT_MESSAGE) message = into
    }
    const at = BLOCK + into.write(head, BLOCK)
    if (typeof body === 'string') into.write(body, at)
    else body.copy(into, at)
    outer.write(hash('sha256', into.subarray(0, length), 'binary'), BLOCK, 'binary')
    out.write(hash('sha256', outer, 'binary'), 'binary')
  }
}
