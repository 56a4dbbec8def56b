import t from 'tap'
import * as entry from '../lib/index.ts'
import * as testing from '../lib/testing/index.ts'

t.test('the package entry', async (t) => {
  t.equal(entry.default, entry.cioObservability, 'default and named export are the plugin')
  const meta = (entry.default as unknown as Record<symbol, { name: string, fastify: string }>)[Symbol.for('plugin-meta')]!
  t.same({ name: meta.name, fastify: meta.fastify }, { name: 'fastify-customerio-observability', fastify: '5.x' })
  t.equal((entry.default as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')], true, 'decorators reach the app')
  for (const name of ['CioInvalidOptionsError', 'CioNotConfiguredError', 'CioInvalidOperationError', 'CioWebhookSignatureMissingError',
    'CioWebhookSignatureInvalidError', 'CioWebhookTimestampStaleError', 'CioWebhookMalformedError', 'CioWebhookTooLargeError',
    'CioWebhookUnsupportedMediaTypeError', 'CioWebhookHandlerError', 'CioWebhookRetryLaterError', 'CioInvalidArgumentError',
    'CioOutboxUnavailableError', 'CioOutboxFullError'] as const) {
    const err = new (entry[name] as new (...a: string[]) => Error & { code: string })('x', 'y')
    t.match(err.code, /^FST_CIO_/, name)
  }
  t.ok(Array.isArray(entry.cioRedactPaths) && Object.isFrozen(entry.cioRedactPaths))
  t.equal(entry.cioEnvSchema.type, 'object')
  t.equal(typeof entry.verifyCioWebhook, 'function')
  for (const name of ['MemoryDedupeStore', 'RedisDedupeStore', 'MemoryDeliveryStore', 'RedisDeliveryStore', 'CioApiError'] as const) t.equal(typeof entry[name], 'function', name)
  t.same(Object.keys(entry).sort(), [
    'CioApiError', 'CioInvalidArgumentError', 'CioInvalidOperationError', 'CioInvalidOptionsError', 'CioNotConfiguredError',
    'CioOutboxFullError', 'CioOutboxUnavailableError', 'CioWebhookHandlerError', 'CioWebhookMalformedError', 'CioWebhookRetryLaterError', 'CioWebhookSignatureInvalidError',
    'CioUnsupportedSetupError', 'CioWebhookSignatureMissingError', 'CioWebhookTimestampStaleError', 'CioWebhookTooLargeError', 'CioWebhookUnsupportedMediaTypeError',
    'MemoryDedupeStore', 'RedisDedupeStore', 'MemoryDeliveryStore', 'RedisDeliveryStore', 'cioEnvSchema', 'cioObservability', 'cioRedactPaths', 'default', 'verifyCioWebhook'
  ].sort(), 'the public runtime surface, and nothing else: each name is a semver promise')
})

t.test('the testing entry', async (t) => {
  t.same(Object.keys(testing).sort(), ['CioSimulator', 'createCioSimulator', 'eventId', 'signWebhook', 'unrecognisedWebhookEvent', 'webhookEvent'])
  t.match(testing.eventId(), /^[0-9A-HJKMNP-TV-Z]{26}$/, 'a ULID-shaped id')
})
