/*
 * One app in a process of its own, for the close scenario: `node chaos/close-child.ts <json>`.
 * It listens, queues events, prints `{"ready":…}`; on SIGTERM it closes the app, closes its own
 * Redis client, prints `{"closed":…}` and does nothing more: the process must then exit by itself.
 */
import { createHook } from 'node:async_hooks'
import { Socket } from 'node:net'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { Region } from 'customerio-node'
import cioObservability, { RedisDedupeStore, type CioWebhookOptions } from '../lib/index.ts'
import { INBOX_CLOSE_BOUND_MS, type CloseChildConfig } from './close.ts'

const config = JSON.parse(process.argv[2]) as CloseChildConfig
const say = (message: object) => { process.stdout.write(JSON.stringify(message) + '\n') }

// Where each live timer was set, so that what keeps this process alive after close can be named.
Error.stackTraceLimit = 30
const timers = new Map<number, { timer: NodeJS.Timeout, origin: string }>()
const origin = () => {
  const frames = (new Error().stack ?? '').split('\n').slice(1).map((l) => l.trim())
  const caller = frames.find((l) => !l.includes('node:') && !l.includes('close-child.ts')) ?? frames.at(-1) ?? '?'
  return caller.replace(`${process.cwd()}/`, '').replace(/^at /, '')
}
createHook({
  init (id, type, _trigger, resource) { if (type === 'Timeout') timers.set(id, { timer: resource as NodeJS.Timeout, origin: origin() }) },
  destroy (id) { timers.delete(id) }
}).enable()

/** The ref'd timers and open sockets left: what would keep the event loop alive. */
function leftovers (): string[] {
  const ports = new Map([[new URL(config.simUrl).port, 'simulator'], [config.redisUrl === undefined ? '' : new URL(config.redisUrl).port, 'redis']])
  const handles = (process as unknown as { _getActiveHandles: () => unknown[] })._getActiveHandles()
  const sockets = handles.filter((h): h is Socket => h instanceof Socket && h.remotePort !== undefined)
    .map((s) => `socket to ${ports.get(String(s.remotePort)) ?? s.remotePort}`)
  const live = [...timers.values()].filter(({ timer }) => timer.hasRef())
    .map(({ timer, origin }) => `timer ${(timer as unknown as { _idleTimeout: number })._idleTimeout} ms from ${origin}`)
  return [...sockets, ...live]
}

const handedOver: number[] = []
let client: Redis | undefined
if (config.mode === 'redis') {
  // The app's own client: a short disconnectTimeout lets the process exit soon while Redis hangs.
  client = new Redis(config.redisUrl!, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 1000, disconnectTimeout: 100 })
  client.on('error', () => {})
}
const webhook: CioWebhookOptions = {
  signingKeys: config.webhookKey,
  ...(client === undefined ? {} : { dedupe: new RedisDedupeStore(client) }),
  ...(config.mode === 'inbox' ? { inbox: { connection: config.redisUrl!, queueName: 'chaos-close', closeTimeoutMs: INBOX_CLOSE_BOUND_MS } } : {})
}

const app = Fastify({ logger: false })
await app.register(cioObservability, {
  siteId: config.siteId,
  trackApiKey: config.trackApiKey,
  region: new Region(`${config.simUrl}/api/v1`, `${config.simUrl}/v1`, `${config.simUrl}/cdp/v1`),
  client: { timeout: 300, retry: { maxRetries: 1 } },
  metrics: { defaultMetrics: false },
  webhook,
  env: {},
  queue: {
    batchSize: 20,
    flushIntervalMs: 50,
    retryDelayMs: 50,
    maxRetryDelayMs: 400,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
    onDrop: (operations, reason) => {
      if (reason === 'shutdown') for (const op of operations) handedOver.push((op.attributes as { seq: number }).seq)
    }
  }
})
await app.listen({ port: 0, host: '127.0.0.1' })

process.once('SIGTERM', () => {
  const started = performance.now()
  app.close().then(() => {
    const took = performance.now() - started
    // The app's own client, closed at once: what is left after this is the plugin's.
    client?.disconnect()
    client?.stream?.destroy()
    say({ closed: true, ms: took, handedOver, resources: leftovers() })
  }, (err: unknown) => { say({ closed: false, error: String(err) }) })
})

const accepted: number[] = []
for (let seq = 0; seq < config.events; seq++) {
  if (app.cio.queue!.track(`c-${seq % 10}`, { name: 'chaos_close', data: { seq } })) accepted.push(seq)
}
say({ ready: true, accepted })
