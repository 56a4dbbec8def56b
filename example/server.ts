/**
 * Example app: `npm start` (HOST, PORT, TRAFFIC_INTERVAL_MS from the environment). Without
 * CUSTOMERIO_* credentials it starts the embedded Customer.io simulator, points the plugin at
 * it and makes light background traffic so /metrics has live data. With credentials it talks
 * to Customer.io and makes no traffic. `npm run send-webhook` sends it one signed webhook.
 */
import Fastify, { LogController } from 'fastify'
import fastifyEnv from '@fastify/env'
import closeWithGrace from 'close-with-grace'
import { SendEmailRequest } from 'customerio-node'
import cioObservability, { cioEnvSchema, cioRedactPaths } from '../lib/index.ts'
import { createCioSimulator, webhookEvent, type CioSimulator } from '../lib/testing/index.ts'
import { DEMO_SIGNING_KEY, signingKeyFrom } from './demo-key.ts'

interface Config {
  HOST: string
  PORT: number
  TRAFFIC_INTERVAL_MS: number
  CUSTOMERIO_SITE_ID?: string
  CUSTOMERIO_TRACK_API_KEY?: string
  CUSTOMERIO_APP_API_KEY?: string
  CUSTOMERIO_REGION?: 'us' | 'eu'
  CUSTOMERIO_LOG_LEVEL?: string
  CUSTOMERIO_WEBHOOK_SIGNING_KEY?: string
}

// No per-request lines: the background traffic would flood the output.
const app = Fastify({ logger: { level: 'info', redact: [...cioRedactPaths] }, logController: new LogController({ disableRequestLogging: true }) })

await app.register(fastifyEnv, {
  confKey: 'config',
  schema: {
    type: 'object',
    properties: {
      ...cioEnvSchema.properties,
      HOST: { type: 'string', default: '127.0.0.1' },
      PORT: { type: 'integer', default: 3000 },
      TRAFFIC_INTERVAL_MS: { type: 'integer', minimum: 0, default: 500 }
    }
  }
})
const config = (app as unknown as { config: Config }).config

const embedded = config.CUSTOMERIO_SITE_ID === undefined && config.CUSTOMERIO_APP_API_KEY === undefined
let simulator: CioSimulator | undefined
// Webhooks are verified with CUSTOMERIO_WEBHOOK_SIGNING_KEY or, with the simulator, the published demo key.
const demoKey = config.CUSTOMERIO_WEBHOOK_SIGNING_KEY === undefined
if (embedded) {
  simulator = await createCioSimulator()
  // A little realism: some calls fail or are slow, so the error and latency panels move.
  simulator.fault({ operation: 'track', status: 503, ratio: 0.05, times: Infinity })
  simulator.fault({ api: 'app', latencyMs: 120, ratio: 0.2, times: Infinity })
  app.addHook('onClose', () => simulator?.close())
}

await app.register(cioObservability, (parent) => simulator === undefined
  ? { env: (parent as unknown as { config: Record<string, string> }).config }
  : {
      env: { CUSTOMERIO_WEBHOOK_SIGNING_KEY: config.CUSTOMERIO_WEBHOOK_SIGNING_KEY ?? DEMO_SIGNING_KEY },
      siteId: simulator.siteId,
      trackApiKey: simulator.trackApiKey,
      appApiKey: simulator.appApiKey,
      region: simulator.region,
      client: { retry: { minTimeoutMs: 20, maxTimeoutMs: 200 } },
      webhook: { onEvent: (event) => app.log.debug({ object_type: event.object_type, metric: event.metric }, 'webhook event') }
    })

app.post<{ Body: { id: string, plan?: string } }>('/signup', {
  schema: { body: { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1 }, plan: { type: 'string' } } } }
}, async (request) => {
  await request.server.cio.identify(request.body.id, { plan: request.body.plan ?? 'free', created_at: Math.floor(Date.now() / 1000) })
  await request.server.cio.track(request.body.id, { name: 'signed_up' })
  return { ok: true }
})

app.post<{ Params: { id: string } }>('/orders/:id/receipt', async (request) => {
  const result = await request.server.cio.sendEmail(new SendEmailRequest({
    transactional_message_id: 'receipt',
    identifiers: { id: `customer-of-${request.params.id}` },
    to: 'customer@example.com',
    message_data: { order: request.params.id }
  }))
  return { delivery_id: result.delivery_id }
})

// Fire-and-forget: the request never waits on Customer.io; the queue batches page views.
app.post<{ Body: { id: string, path: string } }>('/pageviews', {
  schema: { body: { type: 'object', required: ['id', 'path'], properties: { id: { type: 'string', minLength: 1 }, path: { type: 'string', minLength: 1 } } } }
}, async (request, reply) => {
  const accepted = request.server.cio.queue?.trackPageView(request.body.id, request.body.path) ?? false
  return reply.code(accepted ? 202 : 503).send({ accepted })
})

app.get('/health', async () => ({ ok: true }))
app.addHook('onClose', async () => clearInterval(traffic))

let traffic: NodeJS.Timeout | undefined
const address = await app.listen({ host: config.HOST, port: config.PORT })

/** The email funnel of the demo: mostly delivered and opened, some bounces, rare complaints. */
const FUNNEL = ['sent', 'sent', 'delivered', 'delivered', 'opened', 'clicked', 'bounced', 'spammed'] as const

if (simulator !== undefined && config.TRAFFIC_INTERVAL_MS > 0) {
  const sim = simulator
  let n = 0
  traffic = setInterval(() => {
    n++
    const id = `demo-${n % 50}`
    const calls = [
      app.inject({ method: 'POST', url: '/signup', payload: { id, plan: n % 3 === 0 ? 'pro' : 'free' } }),
      n % 4 === 0 ? app.inject({ method: 'POST', url: `/orders/${n}/receipt` }) : undefined,
      app.inject({ method: 'POST', url: '/pageviews', payload: { id, path: `/docs/${n % 7}` } }),
      sim.sendWebhook(`${address}/webhooks/customerio`, webhookEvent(n % 5 === 0 ? 'push' : 'email', FUNNEL[n % FUNNEL.length]!, { transactional_message_id: 1 }), signingKeyFrom(config))
    ]
    Promise.all(calls).catch((err: unknown) => app.log.error({ err }, 'background traffic failed'))
  }, config.TRAFFIC_INTERVAL_MS)
  traffic.unref()
}
const lines = [
  `example listening on ${address}`,
  `  metrics:  ${address}/metrics`,
  `  signup:   curl -XPOST ${address}/signup -H 'content-type: application/json' -d '{"id":"42"}'`,
  `  receipt:  curl -XPOST ${address}/orders/1/receipt`,
  `  pageview: curl -XPOST ${address}/pageviews -H 'content-type: application/json' -d '{"id":"42","path":"/pricing"}'`,
  `  webhook:  ${address}/webhooks/customerio (Customer.io reporting webhooks, signed with ${demoKey ? `the demo key "${DEMO_SIGNING_KEY}"` : 'CUSTOMERIO_WEBHOOK_SIGNING_KEY'})`,
  `  send one: ${demoKey ? '' : '(with the same CUSTOMERIO_WEBHOOK_SIGNING_KEY) '}npm run send-webhook -- ${address}`,
  simulator === undefined ? '  Customer.io: live API' : `  Customer.io: embedded simulator at ${simulator.url} (background traffic every ${config.TRAFFIC_INTERVAL_MS} ms)`
]
console.log(lines.join('\n'))

// SIGTERM, SIGINT or a crash: close (flushing the queue), exit 0, or 1 after an error or 15 s.
closeWithGrace({ delay: 15_000 }, async ({ err, signal }) => {
  if (err !== undefined) app.log.error({ err }, 'closing after an error')
  else app.log.info({ signal }, 'shutting down')
  await app.close() // flushes fastify.cio.queue, within queue.shutdownTimeoutMs (10 s)
  app.log.info('closed')
})
