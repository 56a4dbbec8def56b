import { hash } from 'node:crypto'

/** SHA-256's block, in bytes: HMAC pads the key to it, and hashes a longer key first. */
const BLOCK = 64
const DIGEST = 32

/**
 * HMAC-SHA256 (RFC 2104) for one key, its padded keys prepared once: each message is then two
 * one-shot hashes, H((K ⊕ opad) ‖ H((K ⊕ ipad) ‖ head ‖ body)). createHmac repeats the key
 * setup and builds a stream object per message: about 2 µs more per request in the benchmark's
 * server (`node bench/profile.ts`), where it was the largest part of the route's own cost.
 * Returns a fresh Buffer per message.
 */
export function prepareHmacSha256 (key: string): (head: string, body: Buffer | string) => Buffer {
  let bytes = Buffer.from(key, 'utf8')
  if (bytes.length > BLOCK) bytes = hash('sha256', bytes, 'buffer')
  const inner = Buffer.alloc(BLOCK, 0x36)
  // The outer pad with room for the inner digest after it; reused, as each message is hashed synchronously.
  const outer = Buffer.alloc(BLOCK + DIGEST, 0x5c)
  for (let i = 0; i < bytes.length; i++) {
    inner[i]! ^= bytes[i]!
    outer[i]! ^= bytes[i]!
  }
  return (head, body) => {
    hash('sha256', Buffer.concat([inner, Buffer.from(head, 'utf8'), typeof body === 'string' ? Buffer.from(body, 'utf8') : body]), 'buffer').copy(outer, BLOCK)
    return hash('sha256', outer, 'buffer')
  }
}
