/**
 * Paths for the app's own pino `redact` option (`Fastify({ logger: { redact: cioRedactPaths } })`).
 * pino compiles paths when the logger is built and a child's `redact` would replace the app's,
 * so the plugin cannot add these itself; it sanitises what it logs instead (monitoring/sanitize.ts).
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
