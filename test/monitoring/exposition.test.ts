import t from 'tap'
import { spawnSync } from 'node:child_process'
import Fastify from 'fastify'
import fastifyMetricsModule from 'fastify-metrics'
import promClient from '@prometheus-io/client'
import cioObservability from '../../lib/index.ts'
import { buildApp, metric, registryMetric, rejection, scrape, simOptions, startSimulator } from '../helpers.ts'

const fastifyMetrics = fastifyMetricsModule.default

t.test('known series exist at zero from the start, with versions in cio_info', async (t) => {
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim))
  t.equal(await metric(app, 'cio_api_requests_total', { api: 'track', operation: 'track_anonymous' }), 0)
  t.equal(await metric(app, 'cio_api_requests_total', { api: 'app', operation: 'send_email' }), 0)
  t.equal(await metric(app, 'cio_api_attempts_total', { api: 'app', status_code: '429' }), 0)
  t.equal(await metric(app, 'cio_api_in_flight', { api: 'track' }), 0)
  const info = [...await scrape(app)].find(([k]) => k.startsWith('cio_info{'))!
  t.match(info[0], /^cio_info\{version="\d+\.\d+\.\d+",sdk_version="5\.\d+\.\d+"\}$/)
  t.equal(info[1], 1)
  const res = await app.inject('/metrics')
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
})

t.test('OpenMetrics is served to scrapers that ask for it, without renaming the text format', async (t) => {
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim))
  await app.cio.identify('person-1', {})
  const om = await app.inject({ url: '/metrics', headers: { accept: 'application/openmetrics-text; version=1.0.0,text/plain;q=0.5' } })
  t.match(om.headers['content-type'], /^application\/openmetrics-text/)
  t.match(om.body, /# TYPE cio_api_requests counter\n/)
  t.match(om.body, /\ncio_api_requests_total\{api="track",operation="identify"\} 1\n/)
  t.ok(om.body.endsWith('# EOF\n'))
  const text = await app.inject('/metrics')
  t.match(text.body, /# TYPE cio_api_requests_total counter\n/, 'the Prometheus text keeps the _total family name')
  t.match(text.body, /\ncio_api_requests_total\{api="track",operation="identify"\} 1\n/)
})

t.test('two apps in one process keep separate registries', async (t) => {
  const sim = await startSimulator(t)
  const one = await buildApp(t, simOptions(sim, { metrics: {} }))
  const two = await buildApp(t, simOptions(sim, { metrics: {} }))
  await one.app.cio.identify('person-1', {})
  t.equal(await metric(one.app, 'cio_api_requests_total', { api: 'track', operation: 'identify' }), 1)
  t.equal(await metric(two.app, 'cio_api_requests_total', { api: 'track', operation: 'identify' }), 0)
  t.match((await one.app.inject('/metrics')).body, /process_cpu_user_seconds_total/, 'default process metrics are on by default')
  t.not(one.app.metrics.client.register, promClient.register, 'not the global registry')
})

t.test('an app\'s own fastify-metrics is reused, never registered twice', async (t) => {
  const sim = await startSimulator(t)
  const registry = new promClient.Registry()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyMetrics, { endpoint: '/prom', defaultMetrics: { enabled: false }, routeMetrics: { enabled: false }, promClient: { ...promClient, register: registry } as never })
  await app.register(cioObservability, { ...simOptions(sim), metrics: undefined })
  await app.ready()
  await app.cio.identify('person-1', {})
  t.equal(await metric(app, 'cio_api_requests_total', { api: 'track', operation: 'identify' }, '/prom'), 1, 'one scrape holds everything')
  t.equal((await app.inject('/metrics')).statusCode, 404, 'no second metrics route')
  t.ok(registry.getSingleMetric('cio_api_requests_total'))
  await app.close()
  t.equal(registry.getSingleMetric('cio_api_requests_total'), undefined, 'onClose removes what the plugin created')

  const conflicting = Fastify()
  await conflicting.register(fastifyMetrics, { endpoint: null, defaultMetrics: { enabled: false }, routeMetrics: { enabled: false }, promClient: { ...promClient, register: new promClient.Registry() } as never })
  conflicting.register(cioObservability, simOptions(sim, { metrics: { endpoint: '/m' } }))
  t.match(await rejection(conflicting.ready()), { code: 'FST_CIO_INVALID_OPTIONS', message: /"metrics"/ })
  await conflicting.close()
})

t.test('metrics: false serves no route but still fills fastify.metrics', async (t) => {
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim, { metrics: false }))
  t.equal((await app.inject('/metrics')).statusCode, 404)
  await app.cio.identify('person-1', {})
  t.equal(await registryMetric(app.metrics.client.register, 'cio_api_requests_total', { api: 'track', operation: 'identify' }), 1)
})

t.test('a second plugin instance on a shared registry reuses the metrics', async (t) => {
  const sim = await startSimulator(t)
  const registry = new promClient.Registry()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyMetrics, { endpoint: null, defaultMetrics: { enabled: false }, routeMetrics: { enabled: false }, promClient: { ...promClient, register: registry } as never })
  await app.register(async (child) => { await child.register(cioObservability, simOptions(sim, { metrics: undefined })) })
  await app.register(async (child) => {
    await child.register(cioObservability, simOptions(sim, { metrics: undefined, webhook: false }))
    child.get('/x', async (request) => request.server.cio.identify('person-1', {}))
  })
  await app.ready()
  await app.inject('/x')
  t.equal(await registryMetric(registry, 'cio_api_requests_total', { api: 'track', operation: 'identify' }), 1)
})

const promtool = spawnSync('promtool', ['--version']).status === 0
t.test('the exposition passes promtool check metrics', { skip: promtool ? false : 'promtool is not installed (.ci/run installs it)' }, async (t) => {
  const sim = await startSimulator(t)
  // The client library's own nodejs_* defaults fail this lint upstream; the plugin's series must not.
  const { app } = await buildApp(t, simOptions(sim, { metrics: { defaultMetrics: false } }), {}, (app) => app.get('/hello', async () => 'hi'))
  await app.inject('/hello')
  await app.cio.identify('person-1', {})
  sim.fault({ operation: 'track', status: 503 })
  await app.cio.track('person-1', { name: 'x' }).catch(() => {})
  const body = (await app.inject('/metrics')).body
  const lint = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' })
  t.equal(lint.status, 0, lint.stdout + lint.stderr)
  t.equal(await metric(app, 'cio_api_errors_total', { api: 'track', operation: 'track', error_type: '503' }), 1)
  t.equal(await metric(app, 'http_request_duration_seconds_count', { method: 'GET', route: '/hello', status_code: '200' }), 1)
})
