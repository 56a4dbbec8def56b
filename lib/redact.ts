/**
 * Paths for the app's own pino `redact` option (`Fastify({ logger: { redact: cioRedactPaths } })`).
 * pino compiles paths when the logger is built and a child's `redact` would replace the app's,
 * so the plugin cannot add these itself; it sanitises what it logs instead ({@link sanitize}).
 */
export const cioRedactPaths: readonly string[] = Object.freeze([
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-cio-signature"]',
  'headers.authorization',
  '*.email', '*.email_address', '*.phone', '*.recipient', '*.recipients', '*.to', '*.ip_address',
  '*.password', '*.token', '*.api_key', '*.apiKey', '*.trackApiKey', '*.appApiKey', '*.signingKeys',
  'data.identifiers', 'data.content', 'data.subject'
])

export const REDACTED = '[Redacted]'
const MAX_DEPTH = 8
const MAX_ENTRIES = 100
const MAX_STRING = 2_000

/** Keys whose values are personal data, message content or secrets, at any depth. */
const SENSITIVE_KEY = /e-?mail|phone|mobile|msisdn|recipient|ip_?addr|password|passw|secret|token|auth|cookie|api_?key|signing|signature|credential|identifiers|^(content|body|subject|to|from|cc|bcc|headers|device_id|address|name|first_name|last_name|message_data|data)$/i

// Starts only where a token starts (the lookbehind), so a long run without '@' is scanned once, not once per character.
const EMAIL = /(?<![^\s@"'<>(),;:[\]\\])[^\s@"'<>(),;:[\]\\]+@[^\s@"'<>(),;:[\]\\]+\.[A-Za-z]{2,}/g
// Eight or more digits with phone punctuation; never a digit run inside a longer token (ids, ULIDs).
const PHONE = /(?<![\w+])\+?\d(?:[\s().-]{0,2}\d){7,16}(?!\w)/g
const CREDENTIAL = /\b(Bearer|Basic)\s+[\w.~+/=-]+/gi

/** Masks email addresses, phone numbers, credentials and the plugin's known secrets inside a string. */
export function sanitizeString (value: string, secrets: readonly string[] = []): string {
  let out = value.length > MAX_STRING ? `${value.slice(0, MAX_STRING)}…` : value
  for (const secret of secrets) out = out.replaceAll(secret, REDACTED)
  out = out.replace(CREDENTIAL, `$1 ${REDACTED}`).replace(PHONE, '[phone]')
  // Without an '@' there is no address; skipping the scan matters for long stacks and paths.
  return out.includes('@') ? out.replace(EMAIL, '[email]') : out
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
      out[key] = SENSITIVE_KEY.test(key) ? REDACTED : walk((v as Record<string, unknown>)[key], depth + 1)
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
    if (typeof err.code === 'string' || typeof err.code === 'number') out.code = err.code
    if (typeof err.statusCode === 'number') out.statusCode = err.statusCode
    if (err.cause !== undefined) out.cause = walk(err.cause, depth + 1)
    return out
  }
  return walk(value, 0)
}
