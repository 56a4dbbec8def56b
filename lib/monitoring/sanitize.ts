/** Masks personal data and secrets in what the plugin logs, traces and rejects with, at any depth and in any common encoding. */
export const REDACTED = '[Redacted]'
const MAX_DEPTH = 8
const MAX_ENTRIES = 100
const MAX_STRING = 2_000
/**
 * How far past MAX_STRING a string is still scanned, so a value cut by the truncation is
 * recognised whole and masked rather than left as a fragment: longer than the longest
 * address (254 characters) even percent-encoded, and than a key in any encoding handled here.
 */
const SCAN_MARGIN = 1_000
/** Secrets shorter than this are masked only by key name: as substrings they would mangle ordinary words. */
const MIN_SECRET = 8
/** Rounds of decoding (`%2540` → `%40` → `@`); each round is also scanned. */
const MAX_DECODE_ROUNDS = 4

/** Keys whose values are personal data, message content or secrets, at any depth. */
const SENSITIVE_KEY = /e-?mail|phone|mobile|msisdn|recipient|ip_?addr|password|passw|secret|token|auth|cookie|api_?key|signing|signature|credential|identifiers|^(content|body|subject|to|from|cc|bcc|headers|device_id|address|name|first_name|last_name|message_data|data)$/i

// The local part starts only where a token starts (the lookbehind), so a long run without '@' is
// scanned once, not once per character. The domain stops at URL structure ('/', '?', '#', '&', '=')
// so `node_modules/@scope/pkg/index.js` is no address; it ends in a TLD, or is a fragment that a
// truncation cut off (`jane@exam…`, V8's `"jane.doe@e"...`).
const EMAIL = /(?<![^\s@"'<>(),;:[\]\\])[^\s@"'<>(),;:[\]\\]+@(?:[^\s@"'<>(),;:[\]\\/?#&=]+\.[A-Za-z]{2,}|[^\s@"'<>(),;:[\]\\/?#&=]*(?="?(?:\.\.\.|…)))/g
// Eight or more digits with phone punctuation ('+' too: form encoding's space; Unicode dashes and
// spaces, as typeset pages have them); never a digit run inside a longer token (ids, ULIDs), never
// a date (`2026-01-31 12:00`), and never cut short where digits go on (`1234567 2026-01-31T…` is
// an id and a timestamp, not a phone).
const PHONE = /(?<![\w+])(?!\d{4}([-./])\d\d\1\d\d(?!\d))\+?\d(?:[\s().+\-\u2010-\u2015\u2212]{0,2}\d){7,16}(?!\w|[-./:]\d)/g
const CREDENTIAL = /\b(?:Bearer|Basic)\s+([\w.~+/=-]+)/gi
const BASE64_CHAR = /[\w+/=-]/
/** A string without these has nothing to decode. */
const ESCAPES = /[%\\&]/
const ESCAPE_START = /[%\\&]/g

/** Named HTML entities an error page may use for characters that matter to the patterns above. */
const ENTITIES: ReadonlyMap<string, string> = new Map([
  ['commat', '@'], ['period', '.'], ['plus', '+'], ['hyphen', '-'], ['dash', '-'], ['lpar', '('], ['rpar', ')'],
  ['amp', '&'], ['lt', '<'], ['gt', '>'], ['quot', '"'], ['apos', "'"], ['nbsp', '\u00a0'], ['sol', '/'],
  ['num', '#'], ['percnt', '%'], ['colon', ':'], ['semi', ';'], ['equals', '='], ['lowbar', '_'], ['bsol', '\\'],
  ['newline', '\n'], ['tab', '\t']
])
const JSON_ESCAPES: Readonly<Record<string, string>> = { n: '\n', r: '\r', t: '\t', b: '\b', f: '\f', v: '\v', '"': '"', "'": "'", '\\': '\\', '/': '/' }
/** Stands in for a decoded character beyond Latin-1 or a stray byte: a token character, neither a delimiter nor `\w`. */
const OTHER_CODE = 0xb7
const ENTITY = /^&(?:#(?:(\d{1,7})|[xX]([\da-fA-F]{1,6}));?|([A-Za-z]{2,10});)/

/**
 * `text` decoded one level, with where its characters came from: escape k became the character
 * at `at[k]` of `text` and was `start[k]`–`end[k]` of the input; the rest was copied as it was.
 */
interface Decoded { readonly text: string, readonly at: number[], readonly start: number[], readonly end: number[] }

/** Where character `x` of a decoded level (or its end, `x === text.length`) starts in that level's input. */
function inputOffset ({ at, start, end }: Decoded, x: number): number {
  // The last escape at or before x, by bisection.
  let lo = 0
  let hi = at.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (at[mid]! <= x) lo = mid + 1
    else hi = mid
  }
  const k = lo - 1
  if (k < 0) return x
  return at[k] === x ? start[k]! : end[k]! + (x - at[k]! - 1)
}

function hexDigit (c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  const lower = c | 0x20
  return lower >= 97 && lower <= 102 ? lower - 87 : -1
}

/** The value of the `digits` hex digits at `s[at]`, or -1. */
function hexAt (s: string, at: number, digits: number): number {
  let n = 0
  for (let i = at; i < at + digits; i++) {
    // Past the end charCodeAt is NaN, which is no digit either.
    const d = hexDigit(s.charCodeAt(i))
    if (d < 0) return -1
    n = n * 16 + d
  }
  return n
}

/**
 * What a decoded character is to the patterns above, kept within Latin-1 so that decoding a
 * one-byte string gives a one-byte string (a two-byte one makes every regex several times slower):
 * Unicode spaces become ' ', Unicode dashes '-', anything else beyond Latin-1 {@link OTHER}.
 */
function canonical (code: number): number {
  if (code < 0x100) return code
  if ((code >= 0x2010 && code <= 0x2015) || code === 0x2212) return 0x2d
  // fromCharCode keeps 16 bits: an astral code point must not pass for the space it truncates to.
  return code <= 0xffff && /\s/.test(String.fromCharCode(code)) ? 0x20 : OTHER_CODE
}

/** The escape at `s[i]` (percent, backslash or HTML entity) as [decoded character code, length], or undefined. */
function escapeAt (s: string, i: number): [number, number] | undefined {
  const c = s[i]
  if (c === '%') {
    const byte = hexAt(s, i + 1, 2)
    if (byte >= 0) return byte < 0x80 ? [byte, 3] : utf8At(s, i, byte)
    const unit = s[i + 1] === 'u' ? hexAt(s, i + 2, 4) : -1
    return unit >= 0 ? [unit, 6] : undefined
  }
  if (c === '\\') {
    const next = s[i + 1]
    if (next === 'u' || next === 'x') {
      const digits = next === 'u' ? 4 : 2
      const unit = hexAt(s, i + 2, digits)
      return unit >= 0 ? [unit, 2 + digits] : undefined
    }
    const char = next === undefined ? undefined : JSON_ESCAPES[next]
    return char === undefined ? undefined : [char.charCodeAt(0), 2]
  }
  // An entity: `&#64;`, `&#x40;` (the ';' is optional for numeric ones, as browsers allow) or `&commat;`.
  const entity = ENTITY.exec(s.slice(i, i + 12))
  if (entity === null) return undefined
  const [whole, dec, hex, name] = entity
  if (name !== undefined) {
    const char = ENTITIES.get(name.toLowerCase())
    return char === undefined ? undefined : [char.charCodeAt(0), whole.length]
  }
  return [dec !== undefined ? Number(dec) : Number.parseInt(hex!, 16), whole.length]
}

/** A percent-encoded UTF-8 sequence whose lead byte is `lead`, as one character (`%E2%80%91` is U+2011, a hyphen). */
function utf8At (s: string, i: number, lead: number): [number, number] {
  const continuations = lead >= 0xc2 && lead <= 0xdf ? 1 : lead >= 0xe0 && lead <= 0xef ? 2 : lead >= 0xf0 && lead <= 0xf4 ? 3 : 0
  let code = lead & (0x3f >> continuations)
  for (let k = 1; k <= continuations; k++) {
    const byte = s[i + 3 * k] === '%' ? hexAt(s, i + 3 * k + 1, 2) : -1
    // Not a continuation byte: the lead byte alone stands for something.
    if (byte < 0x80 || byte > 0xbf) return [OTHER_CODE, 3]
    code = (code << 6) | (byte & 0x3f)
  }
  return [continuations === 0 ? OTHER_CODE : code, 3 * (continuations + 1)]
}

/** One level of percent, JSON/JS and HTML-entity decoding, or undefined when there is nothing to decode. */
function decodeOnce (s: string): Decoded | undefined {
  const at: number[] = []
  const start: number[] = []
  const end: number[] = []
  let text = ''
  let flushed = 0
  ESCAPE_START.lastIndex = 0
  for (let m = ESCAPE_START.exec(s); m !== null; m = ESCAPE_START.exec(s)) {
    const i = m.index
    const escape = escapeAt(s, i)
    if (escape === undefined) continue
    text += s.slice(flushed, i)
    at.push(text.length)
    start.push(i)
    end.push(i + escape[1])
    text += String.fromCharCode(canonical(escape[0]))
    flushed = ESCAPE_START.lastIndex = i + escape[1]
  }
  if (at.length === 0) return undefined
  return { text: text + s.slice(flushed), at, start, end }
}

/** A span of the input to replace by `label`. */
interface Mask { start: number, end: number, label: string }

/** What to look for, derived once per secret: the secret itself and the fixed parts of its base64 forms. */
interface SecretNeedles { readonly plain: string, readonly base64: readonly string[] }
const needleCache = new Map<string, SecretNeedles>()

/**
 * The base64 characters that depend on `secret` alone whatever precedes it (`Basic base64(site:key)`
 * puts the key at any of three alignments), in the standard and the URL-safe alphabet.
 */
function base64Cores (secret: string): string[] {
  const bytes = Buffer.from(secret)
  const cores = new Set<string>()
  for (let pad = 0; pad < 3; pad++) {
    const encoded = Buffer.concat([Buffer.alloc(pad), bytes]).toString('base64')
    // Character j holds bits [6j, 6j + 6); keep those entirely inside the secret's bits.
    const first = Math.ceil((8 * pad) / 6)
    const last = Math.floor((8 * (pad + bytes.length)) / 6)
    const core = encoded.slice(first, last)
    cores.add(core)
    cores.add(core.replaceAll('+', '-').replaceAll('/', '_'))
  }
  return [...cores]
}

function needlesOf (secret: string): SecretNeedles {
  let needles = needleCache.get(secret)
  if (needles === undefined) {
    if (needleCache.size >= 256) needleCache.clear()
    needles = { plain: secret, base64: base64Cores(secret) }
    needleCache.set(secret, needles)
  }
  return needles
}

/** Collects the masks for one decoding level of the input; `map` turns its offsets into the input's. */
function scan (text: string, secrets: readonly string[], map: (at: number) => number, masks: Mask[]): void {
  const add = (start: number, end: number, label: string) => masks.push({ start: map(start), end: map(end), label })
  for (const secret of secrets) {
    if (secret.length < MIN_SECRET) continue
    const { plain, base64 } = needlesOf(secret)
    for (let at = text.indexOf(plain); at >= 0; at = text.indexOf(plain, at + plain.length)) add(at, at + plain.length, REDACTED)
    for (const core of base64) {
      for (let at = text.indexOf(core); at >= 0; at = text.indexOf(core, at + core.length)) {
        // The whole base64 token goes: its edges hold bits of the secret too.
        let start = at
        let end = at + core.length
        while (start > 0 && BASE64_CHAR.test(text[start - 1]!)) start--
        // Not into the hex digits of a percent escape just before the token (`Basic%20…`).
        if (start + 2 <= at && text[start - 1] === '%') start += 2
        while (end < text.length && BASE64_CHAR.test(text[end]!)) end++
        add(start, end, REDACTED)
      }
    }
  }
  // exec loops, not matchAll: that clones the regex on every call.
  let m: RegExpExecArray | null
  CREDENTIAL.lastIndex = 0
  while ((m = CREDENTIAL.exec(text)) !== null) add(CREDENTIAL.lastIndex - m[1]!.length, CREDENTIAL.lastIndex, REDACTED)
  PHONE.lastIndex = 0
  while ((m = PHONE.exec(text)) !== null) add(m.index, PHONE.lastIndex, '[phone]')
  // Without an '@' there is no address; skipping the scan matters for long stacks and paths.
  if (!text.includes('@')) return
  EMAIL.lastIndex = 0
  while ((m = EMAIL.exec(text)) !== null) add(m.index, EMAIL.lastIndex, '[email]')
}

/** `input` up to `limit` with `masks` applied; a mask that starts before `limit` is applied whole. */
function render (input: string, masks: Mask[], limit: number): string {
  masks.sort((a, b) => a.start - b.start || b.end - a.end)
  let out = ''
  let at = 0
  for (const mask of masks) {
    if (mask.start >= limit) break
    // Overlapping masks (a phone inside an address, a key inside a credential) merge into the first.
    if (mask.end <= at) continue
    if (mask.start >= at) out += input.slice(at, mask.start) + mask.label
    at = mask.end
  }
  return at < limit ? out + input.slice(at, limit) : out
}

/**
 * Masks email addresses, phone numbers, credentials and the plugin's known secrets (8 characters
 * or more) inside a string, also where they are percent-encoded, JSON/JS-escaped or HTML entities,
 * at any depth of nesting. Strings over 2 000 characters are cut, and end in '…'.
 */
export function sanitizeString (value: string, secrets: readonly string[] = []): string {
  const cut = value.length > MAX_STRING
  const input = cut ? value.slice(0, MAX_STRING + SCAN_MARGIN) : value
  const masks: Mask[] = []
  scan(input, secrets, (at) => at, masks)
  // Each decoding round is scanned too: an escape can hide a value, and decoding can join one.
  if (ESCAPES.test(input)) {
    let map = (at: number) => at
    let level: Decoded | undefined = decodeOnce(input)
    for (let round = 0; level !== undefined && round < MAX_DECODE_ROUNDS; round++) {
      // Offsets into this level, mapped down through every level below to the input's.
      const below = map
      const here: Decoded = level
      map = (at) => below(inputOffset(here, at))
      scan(here.text, secrets, map, masks)
      level = ESCAPES.test(here.text) ? decodeOnce(here.text) : undefined
    }
  }
  const limit = cut ? MAX_STRING : input.length
  const out = masks.length === 0 ? input.slice(0, limit) : render(input, masks, limit)
  return cut ? `${out}…` : out
}

/**
 * A copy of `value` safe to log or put on a span: sensitive keys masked at any depth,
 * strings scrubbed, errors reduced to type/message/code/status, cycles and depth bounded.
 */
export function sanitize (value: unknown, secrets: readonly string[] = []): unknown {
  const seen = new WeakSet<object>()
  const walk = (v: unknown, depth: number): unknown => {
    if (typeof v === 'string') return sanitizeString(v, secrets)
    if (typeof v !== 'object' || v === null) return typeof v === 'function' || typeof v === 'symbol' ? undefined : v
    if (seen.has(v)) return '[Circular]'
    if (depth >= MAX_DEPTH) return '[Truncated]'
    seen.add(v)
    if (v instanceof Error) return walkError(v, depth)
    if (Array.isArray(v)) return v.slice(0, MAX_ENTRIES).map((item) => walk(item, depth + 1))
    const out: Record<string, unknown> = {}
    for (const key of Object.keys(v).slice(0, MAX_ENTRIES)) {
      // A key can be data too (a map keyed by address).
      out[sanitizeString(key, secrets)] = SENSITIVE_KEY.test(key) ? REDACTED : walk((v as Record<string, unknown>)[key], depth + 1)
    }
    return out
  }
  const walkError = (err: Error & { code?: unknown, statusCode?: unknown, cause?: unknown }, depth: number) => {
    const message = sanitizeString(err.message, secrets)
    const out: Record<string, unknown> = { type: err.name, message }
    if (err.stack !== undefined) {
      // The frames are code locations; only the head repeats the message, so only it is scanned.
      const head = `${err.name}: ${err.message}`
      out.stack = err.stack.startsWith(head) ? `${err.name}: ${message}${err.stack.slice(head.length)}` : sanitizeString(err.stack, secrets)
    }
    if (typeof err.code === 'string') out.code = sanitizeString(err.code, secrets)
    if (typeof err.code === 'number') out.code = err.code
    if (typeof err.statusCode === 'number') out.statusCode = err.statusCode
    if (err.cause !== undefined) out.cause = walk(err.cause, depth + 1)
    return out
  }
  return walk(value, 0)
}
