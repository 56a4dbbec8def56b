import t from 'tap'
import Fastify from 'fastify'
import { Region, RegionEU, RegionUS } from 'customerio-node'
import cioObservability, { cioEnvSchema, type CioObservabilityOptions } from '../lib/index.ts'
import { resolveOptions } from '../lib/options.ts'
import { startSimulator } from './helpers.ts'

const SECRET = 'sk-do-not-print-7f3a'

async function readyError (options: unknown): Promise<any> {
  const app = Fastify()
  app.register(cioObservability, options as CioObservabilityOptions)
  const err = await app.ready().then(() => undefined, (e: unknown) => e)
  await app.close()
  return err
}

t.test('bad options fail ready() with FST_CIO_INVALID_OPTIONS naming the option, never its value', async (t) => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['site id without key', { siteId: SECRET, env: {} }, /"trackApiKey".*set together/],
    ['key without site id', { trackApiKey: SECRET, env: {} }, /"siteId"/],
    ['env half pair', { env: { CUSTOMERIO_TRACK_API_KEY: SECRET } }, /"siteId"/],
    ['empty key', { siteId: 'x', trackApiKey: '', env: {} }, /"trackApiKey".*non-empty/],
    ['non-string app key', { appApiKey: 42, env: {} }, /"appApiKey"/],
    ['unknown option', { siteID: SECRET, env: {} }, /"siteID".*not a known option/],
    ['region', { region: 'ap', env: {} }, /"region"/],
    ['env region', { env: { CUSTOMERIO_REGION: 'mars' } }, /"CUSTOMERIO_REGION"/],
    ['env empty value', { env: { CUSTOMERIO_APP_API_KEY: '' } }, /"CUSTOMERIO_APP_API_KEY"/],
    ['env log level', { env: { CUSTOMERIO_LOG_LEVEL: 'loud' } }, /"CUSTOMERIO_LOG_LEVEL"/],
    ['log level', { logLevel: 'loud', env: {} }, /"logLevel"/],
    ['env not an object', { env: 'CUSTOMERIO_SITE_ID=1' }, /"env"/],
    ['client not an object', { client: 5, env: {} }, /"client"/],
    ['client unknown key', { client: { timeoutMs: 5 }, env: {} }, /"client.timeoutMs"/],
    ['client timeout', { client: { timeout: 0 }, env: {} }, /"client.timeout".*integer/],
    ['client timeout type', { client: { timeout: '5' }, env: {} }, /"client.timeout"/],
    ['client retry', { client: { retry: 3 }, env: {} }, /"client.retry"/],
    ['client retry key', { client: { retry: { retries: 3 } }, env: {} }, /"client.retry.retries"/],
    ['client dispatcher', { client: { dispatcher: {} }, env: {} }, /"client.dispatcher"/],
    ['metrics', { metrics: true, env: {} }, /"metrics"/],
    ['metrics key', { metrics: { path: '/m' }, env: {} }, /"metrics.path"/],
    ['metrics endpoint', { metrics: { endpoint: 'metrics' }, env: {} }, /"metrics.endpoint".*start with/],
    ['metrics defaultMetrics', { metrics: { defaultMetrics: 'yes' }, env: {} }, /"metrics.defaultMetrics"/],
    ['no signing key for an explicit webhook', { webhook: {}, env: {} }, /"webhook.signingKeys".*when webhook is set/],
    ['empty env key in list', { env: { CUSTOMERIO_WEBHOOK_SIGNING_KEY: `${SECRET},` } }, /"CUSTOMERIO_WEBHOOK_SIGNING_KEY"/],
    ['webhook type', { webhook: true, env: {} }, /"webhook"/],
    ['webhook key', { webhook: { signingKey: SECRET }, env: {} }, /"webhook.signingKey"/],
    ['webhook keys empty', { webhook: { signingKeys: [] }, env: {} }, /"webhook.signingKeys"/],
    ['webhook keys type', { webhook: { signingKeys: [SECRET, 3] }, env: {} }, /"webhook.signingKeys"/],
    ['webhook path', { webhook: { signingKeys: SECRET, path: 'hooks' }, env: {} }, /"webhook.path"/],
    ['webhook tolerance', { webhook: { signingKeys: SECRET, toleranceSeconds: 0 }, env: {} }, /"webhook.toleranceSeconds"/],
    ['webhook body limit', { webhook: { signingKeys: SECRET, bodyLimit: -1 }, env: {} }, /"webhook.bodyLimit"/],
    ['webhook onEvent', { webhook: { signingKeys: SECRET, onEvent: 'log' }, env: {} }, /"webhook.onEvent"/],
    ['webhook dedupe', { webhook: { signingKeys: SECRET, dedupe: 5 }, env: {} }, /"webhook.dedupe"/],
    ['webhook dedupe key', { webhook: { signingKeys: SECRET, dedupe: { max: 5 } }, env: {} }, /"webhook.dedupe.max"/],
    ['webhook dedupe size', { webhook: { signingKeys: SECRET, dedupe: { size: 0 } }, env: {} }, /"webhook.dedupe.size"/]
  ]
  for (const [name, options, message] of cases) {
    const err = await readyError(options)
    t.equal(err?.code, 'FST_CIO_INVALID_OPTIONS', name)
    t.match(err?.message, message, name)
    t.notMatch(err?.message, SECRET, `${name}: no secret in the message`)
  }
  t.equal((await readyError({ webhook: false, env: {} }))?.code, undefined, 'an unconfigured client without a webhook is a valid setup')
})

t.test('zero-config: no options and no environment register an instrumented client, metrics and no webhook route', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cioObservability, { env: {} })
  await app.ready()
  await t.rejects(app.cio.identify('p1', {}), { code: 'FST_CIO_NOT_CONFIGURED' })
  const metrics = await app.inject('/metrics')
  t.equal(metrics.statusCode, 200)
  t.match(metrics.body, /cio_api_errors_total\{api="track",operation="identify",error_type="not_configured"\} 1/)
  t.equal((await app.inject({ method: 'POST', url: '/webhooks/customerio', payload: {} })).statusCode, 404, 'no webhook route')
  t.equal(app.cio.queue, undefined)
  t.equal(resolveOptions({ env: {} }).webhook, false)
  t.not(resolveOptions({ env: { CUSTOMERIO_WEBHOOK_SIGNING_KEY: 'k' } }).webhook, false, 'a key in the environment turns the route on')
  t.not(resolveOptions({ env: {}, webhook: { signingKeys: 'k' } }).webhook, false, 'so does one in the options')
})

t.test('a Region from another copy of customerio-node is accepted', async (t) => {
  const region = { trackUrl: 'http://127.0.0.1:1/api/v1', apiUrl: 'http://127.0.0.1:1/v1', pipelinesUrl: 'http://127.0.0.1:1/cdp/v1' }
  const resolved = resolveOptions({ env: {}, region }).region
  t.ok(resolved instanceof Region, 'made a Region of this copy, which the SDK\'s clients take')
  t.match(resolved, region)
  const { pipelinesUrl: _, ...withoutPipelines } = region
  t.equal(resolveOptions({ env: {}, region: withoutPipelines as never }).region.pipelinesUrl, undefined, 'a region from before Data Pipelines')
})

t.test('a Region without pipelinesUrl serves Track and App; with a write key it is refused', async (t) => {
  const sim = await startSimulator(t)
  // A Region made before Pipelines existed: two arguments.
  const region = new Region(sim.region.trackUrl, sim.region.apiUrl, undefined as never)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cioObservability, { region, siteId: sim.siteId, trackApiKey: sim.trackApiKey, env: {}, metrics: { defaultMetrics: false } })
  await app.cio.identify('p1', {})
  t.equal(sim.requestsFor('identify').length, 1)
  t.throws(() => resolveOptions({ env: {}, region, pipelinesWriteKey: 'k' }), { code: 'FST_CIO_INVALID_OPTIONS', message: /"region".*pipelinesUrl/ })
})

t.test('options must be an object', async (t) => {
  t.throws(() => resolveOptions('siteId=1'), { code: 'FST_CIO_INVALID_OPTIONS', message: /"options"/ })
})

t.test('explicit options win over the environment; the environment fills the rest', async (t) => {
  const env = { CUSTOMERIO_SITE_ID: 'env-site', CUSTOMERIO_TRACK_API_KEY: 'env-key', CUSTOMERIO_APP_API_KEY: 'env-app', CUSTOMERIO_REGION: 'eu', CUSTOMERIO_LOG_LEVEL: 'error' }
  const fromEnv = resolveOptions({ env: { ...env, CUSTOMERIO_WEBHOOK_SIGNING_KEY: 'k1, k2' } })
  t.same(fromEnv.webhook !== false && fromEnv.webhook.signingKeys, ['k1', 'k2'], 'comma-separated keys, trimmed')
  t.same(fromEnv.track, { siteId: 'env-site', apiKey: 'env-key' })
  t.equal(fromEnv.appApiKey, 'env-app')
  t.equal(fromEnv.region, RegionEU)
  t.equal(fromEnv.logLevel, 'error')
  const explicit = resolveOptions({ env, webhook: false, siteId: 'opt-site', trackApiKey: 'opt-key', region: 'us', logLevel: 'info' })
  t.same(explicit.track, { siteId: 'opt-site', apiKey: 'opt-key' })
  t.equal(explicit.region, RegionUS)
  t.equal(explicit.logLevel, 'info')
  t.equal(resolveOptions({ env: {}, webhook: false, region: 'eu' }).region, RegionEU)
  t.equal(resolveOptions({ env: {}, webhook: false }).region, RegionUS)
  t.equal(resolveOptions({ env: {}, webhook: false }).track, undefined)
})

t.test('process.env is the default source', async (t) => {
  const saved = process.env.CUSTOMERIO_APP_API_KEY
  process.env.CUSTOMERIO_APP_API_KEY = 'from-process'
  t.teardown(() => { if (saved === undefined) delete process.env.CUSTOMERIO_APP_API_KEY; else process.env.CUSTOMERIO_APP_API_KEY = saved })
  t.equal(resolveOptions({ webhook: false }).appApiKey, 'from-process')
})

t.test('caller options are never mutated', async (t) => {
  const options = Object.freeze({
    env: Object.freeze({}),
    webhook: Object.freeze({ signingKeys: Object.freeze(['a', 'b']) }),
    client: Object.freeze({ timeout: 500, retry: Object.freeze({ maxRetries: 1 }) }),
    metrics: Object.freeze({ endpoint: '/m' })
  })
  const resolved = resolveOptions(options)
  t.equal(resolved.client.timeout, 500)
  t.not(resolved.client.retry, options.client.retry, 'retry is copied')
  t.same(resolved.metrics, { endpoint: '/m', defaultMetrics: true, explicit: true })
  t.ok(Object.isFrozen(resolved))
  t.same(resolved.webhook !== false && resolved.webhook.signingKeys, ['a', 'b'])
})

t.test('cioEnvSchema works with env-schema / @fastify/env', async (t) => {
  const { default: envSchema } = await import('env-schema')
  const config = envSchema({ schema: { ...cioEnvSchema }, data: { CUSTOMERIO_REGION: 'eu' }, env: false })
  t.equal((config as Record<string, string>).CUSTOMERIO_REGION, 'eu')
  t.ok(Object.isFrozen(cioEnvSchema.properties))
  t.same(Object.keys(cioEnvSchema.properties).sort(), [
    'CUSTOMERIO_APP_API_KEY', 'CUSTOMERIO_LOG_LEVEL', 'CUSTOMERIO_PIPELINES_WRITE_KEY', 'CUSTOMERIO_REGION', 'CUSTOMERIO_SITE_ID', 'CUSTOMERIO_TRACK_API_KEY', 'CUSTOMERIO_WEBHOOK_SIGNING_KEY'
  ])
})

t.test('client options reach the SDK: timeout, retry and dispatcher', async (t) => {
  const dispatcher = { dispatch: () => true }
  const resolved = resolveOptions({ env: {}, webhook: false, client: { timeout: 50, retry: { maxRetries: 0 }, dispatcher } })
  t.equal(resolved.client.dispatcher, dispatcher)
  t.same(resolved.client.retry, { maxRetries: 0 })
})
