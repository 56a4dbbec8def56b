/**
 * Property tests of the sanitizer: many generated email addresses, phone numbers and keys, each
 * put through every encoding and context an upstream error may carry it in, and not one may
 * survive in the output, in any encoding, nor once the output is decoded. Seeded, so repeatable.
 */
import t from 'tap'
import { sanitize, sanitizeString } from '../../lib/monitoring/sanitize.ts'
import { operations } from '../../lib/client/operations.ts'
import { ENCODINGS, leaks, type Pii } from '../fixtures/leak-check.ts'

/** mulberry32: small, seeded, repeatable. */
function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = Math.imul(a ^ (a >>> 15), a | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

const random = prng(20260131)
const int = (n: number) => Math.floor(random() * n)
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!
const chars = (alphabet: string, min: number, max: number) => Array.from({ length: min + int(max - min + 1) }, () => alphabet[int(alphabet.length)]).join('')
const ALNUM = 'abcdefghijklmnopqrstuvwxyz0123456789'
const digits = (n: number) => chars('0123456789', n, n)

// Values ------------------------------------------------------------------------------------

/** Local parts with dots, plus tags, underscores, hyphens, apostrophes, capitals; always a 5+ character run to search for. */
function email (): string {
  const core = chars(ALNUM, 5, 10)
  const local = pick([
    () => core,
    () => `${core}.${chars(ALNUM, 1, 8)}`,
    () => `${core}+${chars(ALNUM, 1, 6)}`,
    () => `${core}_${chars(ALNUM, 1, 4)}-${chars(ALNUM, 1, 4)}`,
    () => `${chars(ALNUM, 1, 3)}.${core}`,
    () => `o'${core}`,
    () => core.toUpperCase()
  ])()
  const labels = Array.from({ length: 1 + int(3) }, () => pick([() => chars(ALNUM, 2, 12), () => `${chars(ALNUM, 2, 6)}-${chars(ALNUM, 2, 6)}`])())
  const tld = pick(['com', 'org', 'io', 'co', 'de', 'co.uk', 'example', 'museum'])
  return `${local}@${labels.join('.')}.${tld}`
}

/** E.164 and the usual punctuated national and international forms; 10–15 digits. */
function phone (): string {
  return pick([
    () => `+1${digits(10)}`,
    () => `+44${digits(10)}`,
    () => `+${1 + int(9)}${digits(9 + int(5))}`,
    () => `+1 (${digits(3)}) ${digits(3)}-${digits(4)}`,
    () => `+1 ${digits(3)} ${digits(3)} ${digits(4)}`,
    () => `+1-${digits(3)}-${digits(3)}-${digits(4)}`,
    () => `(${digits(3)}) ${digits(3)}-${digits(4)}`,
    () => `${digits(3)}.${digits(3)}.${digits(4)}`,
    () => `+44 ${digits(2)} ${digits(4)} ${digits(4)}`,
    () => `+33 ${digits(1)} ${digits(2)} ${digits(2)} ${digits(2)} ${digits(2)}`,
    () => `+49 (0)${digits(3)} ${digits(7)}`,
    // As typeset pages have them: no-break spaces and hyphens, en dashes, the minus sign.
    () => `+1\u00a0${digits(3)}\u2011${digits(3)}\u2011${digits(4)}`,
    () => `+44\u202f${digits(2)}\u202f${digits(4)}\u202f${digits(4)}`,
    () => `(${digits(3)})\u2009${digits(3)}\u2013${digits(4)}`,
    () => `${digits(3)}\u2212${digits(3)}\u2212${digits(4)}`
  ])()
}

/** Customer.io-like keys: hex, prefixed, base64-ish; 8–40 characters. */
function secret (): string {
  return pick([
    () => chars('0123456789abcdef', 20, 20),
    () => `sk_live_${chars(ALNUM, 8, 24)}`,
    () => chars('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_.', 8, 40)
  ])()
}

// Contexts ----------------------------------------------------------------------------------

type Context = (encoded: string) => unknown
const html404 = (e: string) => `<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>\n<h1>Not Found</h1>\n<p>The requested URL /api/v1/customers/${e}/attributes was not found on this server.</p>\n<hr><address>nginx</address>\n</body></html>`
const CONTEXTS: Record<string, Context> = {
  alone: (e) => e,
  sentence: (e) => `attribute is invalid for person ${e}, try again`,
  'URL path': (e) => `PUT https://track.customer.io/api/v1/customers/${e}/devices?x=1`,
  'URL query': (e) => `GET /v1/customers?email=${e}&limit=10`,
  'HTML 404 page': html404,
  'JSON error body': (e) => `{"meta":{"error":"invalid value ${e}","errors":["${e} rejected"]}}`,
  'SDK parse error': (e) => `Unable to parse JSON. Error: SyntaxError: Unexpected token '<', "<!DOCTYPE "... is not valid JSON \nBody:\n ${html404(e)}`,
  'Error message and stack': (e) => new Error(`request failed for ${e}`),
  'Error with a rewritten stack': (e) => Object.assign(new Error('request failed'), { stack: `Wrapped: ${e} failed\n    at handler (/app/index.js:1:1)` }),
  'nested objects and arrays': (e) => ({ detail: { items: [{ note: 'ok' }, { note: `see ${e}` }, [e]] } }),
  'error cause chain': (e) => new Error('outer', { cause: new TypeError('middle', { cause: { reason: `upstream said ${e}` } }) })
}

const asText = (out: unknown) => typeof out === 'string' ? out : JSON.stringify(out)

// Tests --------------------------------------------------------------------------------------------

t.test('generated emails, phones and keys leak in no encoding and no context', async (t) => {
  const site = `site-${chars(ALNUM, 4, 8)}`
  const values: Pii[] = [
    ...Array.from({ length: 120 }, () => ({ kind: 'email' as const, value: email() })),
    ...Array.from({ length: 120 }, () => ({ kind: 'phone' as const, value: phone() })),
    ...Array.from({ length: 60 }, () => ({ kind: 'secret' as const, value: secret() }))
  ]
  const failures: string[] = []
  let checked = 0
  for (const pii of values) {
    const secrets = pii.kind === 'secret' ? ['other-key-0000', pii.value] : ['other-key-0000']
    // A key travels as itself, as `Bearer key` and as `Basic base64(site:key)`.
    const forms = pii.kind === 'secret'
      ? [pii.value, `Bearer ${pii.value}`, `Basic ${Buffer.from(`${site}:${pii.value}`).toString('base64')}`, Buffer.from(`${site}:${pii.value}`).toString('base64')]
      : [pii.value]
    for (const form of forms) {
      for (const [encodingName, encode] of Object.entries(ENCODINGS)) {
        for (const [contextName, context] of Object.entries(CONTEXTS)) {
          const input = context(encode(form))
          const output = typeof input === 'string' ? sanitizeString(input, secrets) : asText(sanitize(input, secrets))
          checked++
          const leak = leaks(pii, output)
          if (leak !== undefined && failures.length < 20) failures.push(`${pii.kind} ${JSON.stringify(form)} / ${encodingName} / ${contextName}: found ${JSON.stringify(leak)} in ${output}`)
        }
      }
    }
  }
  t.ok(checked > 40_000, `${checked} cases`)
  t.same(failures, [], 'no leaks')
})

t.test('the leak check itself finds every value left unmasked', async (t) => {
  const missed: string[] = []
  const values: Pii[] = [{ kind: 'email', value: email() }, { kind: 'email', value: email() }, { kind: 'phone', value: phone() }, { kind: 'phone', value: phone() }, { kind: 'secret', value: secret() }]
  for (const pii of values) {
    for (const [name, encode] of Object.entries(ENCODINGS)) {
      // Errors serialise to `{}`; every other context as it is.
      for (const context of Object.values(CONTEXTS).filter((c) => !(c('x') instanceof Error))) {
        const text = asText(context(encode(pii.value)))
        if (leaks(pii, text) === undefined) missed.push(`${name}: ${text}`)
      }
    }
  }
  t.same(missed, [])
})

t.test('several values in one string, mixed encodings, all masked', async (t) => {
  const key = secret()
  const failures: string[] = []
  const encodings = Object.values(ENCODINGS)
  for (let i = 0; i < 2_000; i++) {
    const pii: Pii[] = [{ kind: 'email', value: email() }, { kind: 'phone', value: phone() }, { kind: 'secret', value: key }]
    const text = `{"meta":{"error":"${pii.map((p) => `${pick(['see', 'for', 'x', '/customers/'])} ${pick(encodings)(p.value)}`).join(', ')}"}}`
    const out = sanitizeString(text, [key])
    for (const p of pii) {
      const leak = leaks(p, out)
      if (leak !== undefined && failures.length < 20) failures.push(`${text} → ${out}: ${leak}`)
    }
  }
  t.same(failures, [])
})

/** A ULID (Crockford base32, time first). */
const ulid = () => `0${chars('0123456789ABCDEFG', 1, 1)}${chars('0123456789ABCDEFGHJKMNPQRSTVWXYZ', 24, 24)}`

t.test('generated ids, timestamps and operation names pass unchanged, plain and URL-encoded', async (t) => {
  const changed: string[] = []
  const iso = () => new Date(Date.UTC(2020 + int(10), int(12), 1 + int(28), int(24), int(60), int(60), int(1000))).toISOString()
  const gens: Array<() => string> = [
    ulid,
    () => Buffer.from(Array.from({ length: 18 }, () => int(256))).toString('base64url'),
    () => String(int(10_000_000)),
    iso,
    () => iso().replace('T', ' ').slice(0, 19),
    () => iso().replace(/\.\d+Z$/, '+01:00'),
    () => pick(operations).label,
    () => pick(operations).name,
    () => `customerio.${pick(operations).api}.${pick(operations).label}`
  ]
  for (let i = 0; i < 5_000; i++) {
    const id = pick(gens)()
    for (const text of [id, `event ${id} for op ${pick(operations).label} status 503`, `/v1/unsubscribe/${encodeURIComponent(id)}?at=${encodeURIComponent(iso())}`]) {
      const out = sanitizeString(text, ['sk-live-abcdef', 'k'])
      if (out !== text && changed.length < 20) changed.push(`${text} → ${out}`)
    }
  }
  t.same(changed, [])
})
