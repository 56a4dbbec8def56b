/**
 * A server for the webhook benchmarks, in its own process. Every mode has the same `/bare`
 * route (parse the JSON body, answer); the modes differ in what else the app registers:
 * - `plain`: nothing;
 * - `metrics`: fastify-metrics, registered by the app itself with the plugin's settings (route
 *   histogram, no summary), which is what an app that already times its routes pays;
 * - `signed`: the plugin with its webhook route, default settings (the memory dedupe and delivery
 *   stores), and `/floor`, a minimal signed route (verify the HMAC, parse the body, answer);
 *   with BENCH_DELIVERY=off, the same without delivery tracking;
 * - `inbox <redis-url>`: the plugin with the webhook route in inbox mode, receive-only
 *   (`worker: false`), so the process's CPU is the route's.
 * With BENCH_CPU_PROFILE=<file>, SIGUSR2 starts a CPU profile, written to that file on SIGTERM.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import Fastify from 'fastify'
import fastifyMetrics from 'fastify-metrics'
import cioObservability from '../lib/index.ts'

const [mode, key, redisUrl] = process.argv.slice(2)
const app = Fastify()
const plugin = { queue: false as const, metrics: { defaultMetrics: false }, env: {} }
if (mode === 'metrics') {
  await app.register(fastifyMetrics.default, { endpoint: '/metrics', defaultMetrics: { enabled: false }, routeMetrics: { enabled: { histogram: true, summary: false } } })
} else if (mode === 'signed') {
  await app.register(cioObservability, { ...plugin, webhook: { signingKeys: key! }, ...(process.env.BENCH_DELIVERY === 'off' ? { delivery: false as const } : {}) })
  // The floor as a route: the least a receiver of a signed event does (HMAC, compare, parse), in
  // the same app and under the same load, so the route's cost above it is its behaviours'.
  await app.register(async (child) => {
    child.removeAllContentTypeParsers()
    child.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => done(null, body))
    child.post('/floor', async (request, reply) => {
      const body = request.body as Buffer
      const given = Buffer.from(String(request.headers['x-cio-signature']), 'hex')
      const mac = createHmac('sha256', key!).update(`v0:${String(request.headers['x-cio-timestamp'])}:`).update(body).digest()
      if (given.length !== mac.length || !timingSafeEqual(given, mac)) return reply.code(401).send({ ok: false })
      return { ok: typeof JSON.parse(body.toString('utf8')) === 'object' }
    })
  })
} else if (mode === 'inbox') {
  await app.register(cioObservability, { ...plugin, webhook: { signingKeys: key!, inbox: { connection: redisUrl!, worker: false } } })
} else if (mode !== 'plain') {
  throw new Error(`unknown mode ${mode}`)
}
// Declared after the plugin, so fastify-metrics times it as it times the webhook route.
app.post('/bare', async (request) => ({ ok: typeof request.body === 'object' }))
const address = await app.listen({ host: '127.0.0.1', port: 0 })
const profileTo = process.env.BENCH_CPU_PROFILE
const session = profileTo === undefined ? undefined : new Session()
if (session !== undefined) {
  session.connect()
  process.once('SIGUSR2', () => { session.post('Profiler.enable').then(() => session.post('Profiler.start'), () => {}) })
}
process.once('SIGTERM', async () => {
  if (session !== undefined) writeFileSync(profileTo!, JSON.stringify((await session.post('Profiler.stop')).profile))
  process.exit(0)
})
process.stdout.write(`${address}\n`)
