import t from 'tap'
import { buildApp, simOptions, startSimulator } from '../helpers.ts'

t.test('HEAD /metrics answers like GET, with the same content type, without rendering the registry', async (t) => {
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim))
  const register = app.metrics.client.register
  let renders = 0
  // Both renderings (Prometheus text and OpenMetrics) start by listing the registry's metrics.
  const { getMetricsAsArray } = register
  register.getMetricsAsArray = () => { renders++; return Reflect.apply(getMetricsAsArray, register, []) }

  const get = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(renders, 1, 'a GET renders once')
  const head = await app.inject({ method: 'HEAD', url: '/metrics' })
  t.equal(head.statusCode, 200)
  t.equal(head.headers['content-type'], get.headers['content-type'])
  t.match(head.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  t.equal(head.body, '', 'no body')

  const accept = 'application/openmetrics-text; version=1.0.0,text/plain;q=0.5'
  const omGet = await app.inject({ method: 'GET', url: '/metrics', headers: { accept } })
  t.equal(renders, 2)
  const omHead = await app.inject({ method: 'HEAD', url: '/metrics', headers: { accept } })
  t.equal(omHead.statusCode, 200)
  t.equal(omHead.headers['content-type'], omGet.headers['content-type'], 'OpenMetrics negotiated for HEAD too')
  t.match(omHead.headers['content-type'], /^application\/openmetrics-text/)

  t.equal(renders, 2, 'neither HEAD rendered the registry')
})

t.test('HEAD follows metrics.endpoint, and there is no HEAD route without the GET one', async (t) => {
  const sim = await startSimulator(t)
  const moved = await buildApp(t, simOptions(sim, { metrics: { endpoint: '/internal/scrape', defaultMetrics: false } }))
  t.equal((await moved.app.inject({ method: 'HEAD', url: '/internal/scrape' })).statusCode, 200)
  t.equal((await moved.app.inject({ method: 'HEAD', url: '/metrics' })).statusCode, 404)
  const off = await buildApp(t, simOptions(sim, { metrics: false }))
  t.equal((await off.app.inject({ method: 'HEAD', url: '/metrics' })).statusCode, 404)
})
