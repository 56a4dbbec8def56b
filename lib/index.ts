import { readFileSync } from 'node:fs'
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { APIClient, PipelinesClient, TrackClient, RegionEU, RegionUS } from 'customerio-node'
import { Agent } from 'undici'
import { AttemptObserver } from './client/attempts.ts'
import { createClient, type CioClient } from './client/client.ts'
import { setupExposition } from './monitoring/exposition.ts'
import { createMetrics } from './monitoring/metrics.ts'
import { checkNodeVersion, resolveOptions, type CioObservabilityOptions, type ResolvedOptions } from './options.ts'
import { CioQueue } from './queue/queue.ts'
import { CioOutbox } from './queue/outbox/outbox.ts'
import type { QueueItem } from './queue/options.ts'
import type { QueueName } from './labels.ts'
import { sanitize } from './monitoring/sanitize.ts'
import { CioUnsupportedSetupError } from './errors.ts'
import { loadTracing, serverOf, tracingOn } from './monitoring/tracing.ts'
import { registerWebhookRoute } from './webhook/route.ts'
import { DeliveryTracker } from './webhook/delivery/tracker.ts'

const readVersion = (url: URL): string => (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version
const version = readVersion(new URL('../package.json', import.meta.url))
const sdkVersion = readVersion(new URL('../package.json', import.meta.resolve('customerio-node')))

declare module 'fastify' {
  interface FastifyInstance {
    /** customerio-node's TrackClient and APIClient methods, instrumented. */
    cio: CioClient & {
      /** Fire-and-forget calls, batched through Track or Data Pipelines (`queue.api`); present when either has credentials and the queue is not off. */
      readonly queue?: CioQueue
      /** A durable queue on Redis, over the same API as the queue; present when `outbox.connection` is set. */
      readonly outbox?: CioOutbox
    }
  }
}

/** Values that must never reach a log line, span or error message. */
function secretsOf (options: ResolvedOptions): string[] {
  const keys = options.webhook === false ? [] : options.webhook.signingKeys
  return [options.track?.apiKey, options.appApiKey, options.pipelines?.writeKey, ...keys].filter((s): s is string => s !== undefined)
}

function regionName (options: ResolvedOptions): string {
  if (options.region === RegionUS) return 'us'
  if (options.region === RegionEU) return 'eu'
  return 'custom'
}

const cioObservabilityPlugin: FastifyPluginAsync<CioObservabilityOptions> = async (fastify, opts) => {
  checkNodeVersion(process.versions.node)
  if (fastify.hasDecorator('cio')) {
    throw new CioUnsupportedSetupError('it is registered twice on this app; register it once, at the root, and use fastify.cio everywhere')
  }
  const options = resolveOptions(opts)
  const secrets = secretsOf(options)
  const log = fastify.log.child(
    { plugin: 'customerio' },
    { ...(options.logLevel === undefined ? {} : { level: options.logLevel }), serializers: { err: (err: unknown) => sanitize(err, secrets) } }
  )

  const client = await setupExposition(fastify, options.metrics)
  const metrics = createMetrics(client, { version, sdkVersion })
  const tracing = await loadTracing(version, secrets)
  const observer = new AttemptObserver(metrics, tracing)
  const delivery = options.delivery === false ? undefined : new DeliveryTracker(options.delivery, metrics, log)

  // The plugin owns the connection pool it gives the SDK (unless the app passed one), so that
  // closing the app can end a batch still in flight instead of leaving it to a timeout.
  const agent = options.client.dispatcher === undefined ? new Agent() : undefined
  const defaults = { ...options.client, dispatcher: options.client.dispatcher ?? agent, region: options.region }
  const { pipelines } = options
  const cio = createClient({
    sdk: {
      track: options.track === undefined ? undefined : new TrackClient(options.track.siteId, options.track.apiKey, defaults),
      app: options.appApiKey === undefined ? undefined : new APIClient(options.appApiKey, defaults),
      // By URL: the SDK checks a region with instanceof, which a Region from another copy of it fails.
      pipelines: pipelines === undefined ? undefined : new PipelinesClient(pipelines.writeKey, { ...options.client, dispatcher: defaults.dispatcher, url: options.region.pipelinesUrl, strictMode: pipelines.strictMode, defaultContext: pipelines.defaultContext })
    },
    servers: { track: serverOf(options.region.trackUrl), app: serverOf(options.region.apiUrl), pipelines: serverOf(options.region.pipelinesUrl ?? options.region.apiUrl) },
    metrics,
    observer,
    tracing,
    log,
    secrets,
    onDelivery: (deliveryId, channel) => { delivery?.sent(deliveryId, channel) }
  })
  const batchOf = (api: QueueName) => (operations: QueueItem[]) => api === 'pipelines' ? cio.pipelines.batch(operations as never) : cio.batch(operations as never)
  const queue = options.queue === false ? undefined : new CioQueue(options.queue, batchOf(options.queue.api), metrics, log)
  const outbox = options.outbox === false ? undefined : await CioOutbox.open(options.outbox, batchOf(options.outbox.api), metrics, log)
  fastify.decorate('cio', Object.freeze({ ...cio, queue, outbox }))
  let webhook: { close: () => Promise<void> } | undefined
  // One hook, in this order, each step bounded: the queue flushes first, while calls are still
  // observed and counted and before anything that can wait on Redis; then the outbox finishes
  // its batch in hand (everything else stays in Redis); then the inbox, whose last events still
  // reach delivery tracking, which stops sweeping next; then the pool ends whatever is still in
  // flight (the queue has handed such a batch to onDrop by then); observation stops last.
  fastify.addHook('onClose', async () => {
    await queue?.close()
    await outbox?.close()
    await webhook?.close()
    await delivery?.close()
    await agent?.destroy()
    observer.close()
    metrics.close()
  })

  if (options.webhook !== false) {
    webhook = await registerWebhookRoute(fastify, {
      options: options.webhook,
      metrics,
      tracing,
      log,
      secrets,
      onRecorded: (read) => { delivery?.event(read) }
    })
  }

  if (opts.webhook === undefined && options.webhook === false && (options.track !== undefined || options.appApiKey !== undefined || options.pipelines !== undefined)) {
    // Customer.io holds a reporting webhook's stream for an hour after a 404: say so loudly.
    log.warn('customer.io webhook route is off: no signing key. Set CUSTOMERIO_WEBHOOK_SIGNING_KEY (or webhook.signingKeys) to receive reporting webhooks, or webhook: false to silence this warning')
  }
  log.info({
    track: options.track !== undefined,
    app: options.appApiKey !== undefined,
    pipelines: options.pipelines !== undefined,
    region: regionName(options),
    metrics: options.metrics.endpoint,
    webhook: options.webhook === false ? false : options.webhook.path,
    inbox: options.webhook !== false && options.webhook.inbox !== undefined,
    queue: queue !== undefined,
    outbox: outbox !== undefined,
    delivery: delivery !== undefined,
    tracing: tracingOn(tracing)
  }, 'customer.io observability ready')
}

export const cioObservability = fp(cioObservabilityPlugin, { fastify: '5.x', name: 'fastify-customerio-observability' })
export default cioObservability

export {
  CioApiError, CioInvalidArgumentError, CioInvalidOptionsError, CioNotConfiguredError, CioWebhookSignatureMissingError, CioWebhookSignatureInvalidError,
  CioWebhookTimestampStaleError, CioWebhookMalformedError, CioWebhookTooLargeError, CioWebhookUnsupportedMediaTypeError,
  CioWebhookHandlerError, CioWebhookRetryLaterError, CioInvalidOperationError, CioUnsupportedSetupError, CioOutboxUnavailableError, CioOutboxFullError
} from './errors.ts'
export { cioEnvSchema } from './options.ts'
export type { CioObservabilityOptions, CioClientOptions, LogLevel } from './options.ts'
export type { CioMetricsOptions } from './monitoring/exposition.ts'
export type { CioWebhookOptions } from './webhook/options.ts'
export type { CioQueueOptions, BatchOperation, QueueItem, DropReason } from './queue/options.ts'
export type { CioQueue } from './queue/queue.ts'
export type { CioOutbox } from './queue/outbox/outbox.ts'
export type { CioOutboxOptions, OutboxDropReason } from './queue/outbox/options.ts'
export type { RedisConnection } from './redis/connection.ts'
export type { CioWebhookEvent, RecognisedWebhookEvent, UnrecognisedWebhookEvent, EventData, Identifiers, ObjectType, MetricOf } from './webhook/events.ts'
export type { CioWebhookInboxOptions } from './webhook/options.ts'
export type { DedupeStore, ClaimResult } from './webhook/dedupe.ts'
export type { DeliveryStore, DeliveryEvent, DeliveryRecorded } from './webhook/delivery/store.ts'
export type { CioDeliveryOptions } from './webhook/delivery/options.ts'
export { MemoryDeliveryStore, type MemoryDeliveryOptions } from './webhook/delivery/memory-store.ts'
export { RedisDeliveryStore, type RedisDeliveryClient, type RedisDeliveryOptions } from './webhook/delivery/redis-store.ts'
export type { Channel } from './labels.ts'
export { MemoryDedupeStore, type MemoryDedupeOptions } from './webhook/memory-dedupe.ts'
export { RedisDedupeStore } from './webhook/redis-dedupe.ts'
export { verifyCioWebhook, type VerifyCioWebhookInput } from './webhook/verify.ts'
export { cioRedactPaths } from './monitoring/redact.ts'
export type { Api, ErrorType } from './labels.ts'
export type { CioClient } from './client/client.ts'
export type { OperationName } from './client/operations.ts'
export type { RedisDedupeClient, RedisDedupeOptions } from './webhook/redis-dedupe.ts'
