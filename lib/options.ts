import envSchema from 'env-schema'
import { Region, RegionEU, RegionUS } from 'customerio-node'
import type { RequestDefaults, RetryOptions } from 'customerio-node'
import type { FastifyRequest } from 'fastify'
import { CioInvalidOptionsError } from './errors.ts'
import { MemoryDedupeStore, noDedupe, type DedupeStore } from './webhook/dedupe.ts'
import type { CioWebhookEvent } from './webhook/events.ts'
import type { QueueSettings } from './queue.ts'

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

/** Forwarded to customerio-node's `TrackClient` / `APIClient`. */
export interface CioClientOptions {
  /** Per-attempt timeout in milliseconds (SDK default 10 000). */
  timeout?: number
  retry?: Partial<RetryOptions>
  /** An undici `Dispatcher` (Agent, ProxyAgent, …). */
  dispatcher?: RequestDefaults['dispatcher']
}

export interface CioMetricsOptions {
  /** Route that serves the scrape (Prometheus text or OpenMetrics by `Accept`). Default `/metrics`. */
  endpoint?: string
  /** Whether a fastify-metrics registered by this plugin collects Node.js process metrics. Default `true`. */
  defaultMetrics?: boolean
}

export interface CioWebhookOptions {
  /** Route path. Default `/webhooks/customerio`. */
  path?: string
  /** The reporting webhook's signing key; several during a rotation. Default `CUSTOMERIO_WEBHOOK_SIGNING_KEY` (comma-separated). */
  signingKeys?: string | readonly string[]
  /** Refuse requests whose `X-CIO-Timestamp` is further than this from now. Default: no age limit (Customer.io retries for 7 days). */
  toleranceSeconds?: number
  /** Largest accepted body in bytes. Default 1 MiB. */
  bodyLimit?: number
  /** Remember this many event ids in memory, or use a shared store, or `false`. Default `{ size: 100_000 }`. */
  dedupe?: false | { size: number } | DedupeStore
  /** Called once per verified, new event; a throw answers 500 so Customer.io retries. */
  onEvent?: (event: CioWebhookEvent, request: FastifyRequest) => void | Promise<void>
}

export interface CioQueueOptions {
  /** Operations held at most; further ones are dropped (`overflow`). Default 10 000. */
  maxSize?: number
  /** Operations per Track v2 batch request (also capped at 500 KB). Default 100. */
  batchSize?: number
  /** Longest wait before a partial batch is sent, and the pause after a failed one. Default 1 000. */
  flushIntervalMs?: number
  /** Sends of one batch (each with the SDK's own retries) before it is dropped (`exhausted`). Default 3. */
  maxAttempts?: number
  /** How long closing the app may spend flushing. Default 10 000. */
  shutdownTimeoutMs?: number
  /** Receives every dropped operation with the reason, e.g. to keep it elsewhere. */
  onDrop?: QueueSettings['onDrop']
}

export interface CioObservabilityOptions {
  siteId?: string
  trackApiKey?: string
  appApiKey?: string
  /** `'us'`, `'eu'` or a customerio-node `Region` (how tests point the SDK at the simulator). */
  region?: 'us' | 'eu' | Region
  client?: CioClientOptions
  metrics?: false | CioMetricsOptions
  webhook?: false | CioWebhookOptions
  /** Default: on when Track credentials are set. */
  queue?: false | CioQueueOptions
  logLevel?: LogLevel
  /** Where `CUSTOMERIO_*` variables are read from when an option is not given. Default `process.env`. */
  env?: Readonly<Record<string, string | undefined>>
}

/** The JSON schema of the `CUSTOMERIO_*` variables, for the plugin and for an app's own `@fastify/env`. */
export const cioEnvSchema = Object.freeze({
  type: 'object',
  properties: Object.freeze({
    CUSTOMERIO_SITE_ID: Object.freeze({ type: 'string', minLength: 1 }),
    CUSTOMERIO_TRACK_API_KEY: Object.freeze({ type: 'string', minLength: 1 }),
    CUSTOMERIO_APP_API_KEY: Object.freeze({ type: 'string', minLength: 1 }),
    CUSTOMERIO_REGION: Object.freeze({ type: 'string', enum: Object.freeze(['us', 'eu']) }),
    CUSTOMERIO_WEBHOOK_SIGNING_KEY: Object.freeze({ type: 'string', minLength: 1 }),
    CUSTOMERIO_LOG_LEVEL: Object.freeze({ type: 'string', enum: LOG_LEVELS })
  })
} as const)

type EnvName = keyof typeof cioEnvSchema.properties
type CioEnv = Partial<Record<EnvName, string>>

export interface ResolvedOptions {
  readonly track?: { readonly siteId: string, readonly apiKey: string }
  readonly appApiKey?: string
  readonly region: Region
  readonly client: Readonly<CioClientOptions>
  readonly metrics: Readonly<{
    /** `false` when `metrics: false`: the registry is still filled, the app exposes it. */
    endpoint: string | false
    defaultMetrics: boolean
    /** Whether the caller set `metrics`, which conflicts with an already registered fastify-metrics. */
    explicit: boolean
  }>
  readonly webhook: false | Readonly<{
    path: string
    keys: readonly string[]
    toleranceSeconds: number | undefined
    bodyLimit: number
    dedupe: DedupeStore
    onEvent: CioWebhookOptions['onEvent']
  }>
  readonly queue: false | QueueSettings
  readonly logLevel?: LogLevel
}

function invalid (name: string, why: string): never {
  throw new CioInvalidOptionsError(name, why)
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Rejects keys the plugin does not know, so a typo fails loudly instead of being ignored. */
function knownKeys (value: Record<string, unknown>, path: string, allowed: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) invalid(path ? `${path}.${key}` : key, 'is not a known option')
  }
}

function optionalString (value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string' || value.length === 0) invalid(name, 'must be a non-empty string')
  return value
}

export function integer (value: unknown, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isInteger(value) || (value as number) < min || (value as number) > max) {
    invalid(name, `must be an integer from ${min} to ${max}`)
  }
  return value as number
}

function readEnv (source: unknown): CioEnv {
  if (!isObject(source)) invalid('env', 'must be an object of environment variables')
  const data: Record<string, unknown> = {}
  for (const name of Object.keys(cioEnvSchema.properties)) {
    if (source[name] !== undefined) data[name] = source[name]
  }
  try {
    // env-schema sets additionalProperties on the schema it is given: hand it a copy.
    return envSchema<CioEnv>({ schema: { ...cioEnvSchema }, data, env: false, dotenv: false })
  } catch (err) {
    // Ajv names the variable (`env/CUSTOMERIO_REGION must be …`) and never echoes its value.
    const { errors, message } = err as Error & { errors: Array<{ instancePath: string }> }
    invalid(errors[0]!.instancePath.slice(1), message)
  }
}

function resolveRegion (value: unknown, fromEnv: string | undefined): Region {
  if (value === undefined) return fromEnv === 'eu' ? RegionEU : RegionUS
  if (value === 'us') return RegionUS
  if (value === 'eu') return RegionEU
  if (value instanceof Region) return value
  invalid('region', "must be 'us', 'eu' or a customerio-node Region")
}

function resolveClient (value: unknown): Readonly<CioClientOptions> {
  if (value === undefined) return Object.freeze({})
  if (!isObject(value)) invalid('client', 'must be an object')
  knownKeys(value, 'client', ['timeout', 'retry', 'dispatcher'])
  const client: CioClientOptions = {}
  if (value.timeout !== undefined) client.timeout = integer(value.timeout, 'client.timeout', 1, 600_000)
  if (value.retry !== undefined) {
    if (!isObject(value.retry)) invalid('client.retry', 'must be an object')
    knownKeys(value.retry, 'client.retry', ['maxRetries', 'minTimeoutMs', 'maxTimeoutMs', 'retryStatusCodes', 'respectRetryAfter', 'retryAfterMaxSeconds', 'maxTotalBackoffMs'])
    client.retry = { ...value.retry }
  }
  if (value.dispatcher !== undefined) {
    if (!isObject(value.dispatcher) || typeof value.dispatcher.dispatch !== 'function') {
      invalid('client.dispatcher', 'must be an undici Dispatcher')
    }
    client.dispatcher = value.dispatcher as unknown as CioClientOptions['dispatcher']
  }
  return Object.freeze(client)
}

function resolveMetrics (value: unknown): ResolvedOptions['metrics'] {
  if (value === false) return Object.freeze({ endpoint: false, defaultMetrics: true, explicit: true })
  if (value === undefined) return Object.freeze({ endpoint: '/metrics', defaultMetrics: true, explicit: false })
  if (!isObject(value)) invalid('metrics', 'must be false or an object')
  knownKeys(value, 'metrics', ['endpoint', 'defaultMetrics'])
  const endpoint = optionalString(value.endpoint, 'metrics.endpoint') ?? '/metrics'
  if (!endpoint.startsWith('/')) invalid('metrics.endpoint', "must start with '/'")
  if (value.defaultMetrics !== undefined && typeof value.defaultMetrics !== 'boolean') {
    invalid('metrics.defaultMetrics', 'must be a boolean')
  }
  return Object.freeze({ endpoint, defaultMetrics: value.defaultMetrics !== false, explicit: true })
}

function resolveDedupe (value: unknown): DedupeStore {
  if (value === false) return noDedupe
  if (value === undefined) return new MemoryDedupeStore(100_000)
  if (!isObject(value)) invalid('webhook.dedupe', 'must be false, { size } or a store with has() and add()')
  if (typeof value.has === 'function' && typeof value.add === 'function') return value as unknown as DedupeStore
  knownKeys(value, 'webhook.dedupe', ['size'])
  return new MemoryDedupeStore(integer(value.size, 'webhook.dedupe.size', 1, 10_000_000))
}

function resolveKeys (value: unknown, fromEnv: string | undefined): readonly string[] {
  if (value === undefined) {
    if (fromEnv === undefined) invalid('webhook.signingKeys', 'is required (or CUSTOMERIO_WEBHOOK_SIGNING_KEY) unless webhook is false')
    const keys = fromEnv.split(',').map((key) => key.trim())
    if (keys.some((key) => key === '')) invalid('CUSTOMERIO_WEBHOOK_SIGNING_KEY', 'must be a comma-separated list of non-empty keys')
    return Object.freeze(keys)
  }
  const keys = typeof value === 'string' ? [value] : value
  if (!Array.isArray(keys) || keys.length === 0 || keys.some((key) => typeof key !== 'string' || key.length === 0)) {
    invalid('webhook.signingKeys', 'must be a non-empty string or a non-empty array of them')
  }
  return Object.freeze([...keys as string[]])
}

function resolveWebhook (value: unknown, fromEnv: string | undefined): ResolvedOptions['webhook'] {
  if (value === false) return false
  const webhook = value ?? {}
  if (!isObject(webhook)) invalid('webhook', 'must be false or an object')
  knownKeys(webhook, 'webhook', ['path', 'signingKeys', 'toleranceSeconds', 'bodyLimit', 'dedupe', 'onEvent'])
  const path = optionalString(webhook.path, 'webhook.path') ?? '/webhooks/customerio'
  if (!path.startsWith('/')) invalid('webhook.path', "must start with '/'")
  if (webhook.onEvent !== undefined && typeof webhook.onEvent !== 'function') invalid('webhook.onEvent', 'must be a function')
  return Object.freeze({
    path,
    keys: resolveKeys(webhook.signingKeys, fromEnv),
    toleranceSeconds: webhook.toleranceSeconds === undefined ? undefined : integer(webhook.toleranceSeconds, 'webhook.toleranceSeconds', 1),
    bodyLimit: webhook.bodyLimit === undefined ? 1024 * 1024 : integer(webhook.bodyLimit, 'webhook.bodyLimit', 1, 100 * 1024 * 1024),
    dedupe: resolveDedupe(webhook.dedupe),
    onEvent: webhook.onEvent as CioWebhookOptions['onEvent']
  })
}

function resolveQueue (value: unknown, hasTrack: boolean): ResolvedOptions['queue'] {
  if (value === false || (value === undefined && !hasTrack)) return false
  const queue = value ?? {}
  if (!isObject(queue)) invalid('queue', 'must be false or an object')
  if (!hasTrack) invalid('queue', 'needs Track credentials: siteId and trackApiKey (CUSTOMERIO_SITE_ID, CUSTOMERIO_TRACK_API_KEY)')
  knownKeys(queue, 'queue', ['maxSize', 'batchSize', 'flushIntervalMs', 'maxAttempts', 'shutdownTimeoutMs', 'onDrop'])
  const setting = (name: string, fallback: number, min: number, max: number) =>
    queue[name] === undefined ? fallback : integer(queue[name], `queue.${name}`, min, max)
  if (queue.onDrop !== undefined && typeof queue.onDrop !== 'function') invalid('queue.onDrop', 'must be a function')
  return Object.freeze({
    maxSize: setting('maxSize', 10_000, 1, 10_000_000),
    batchSize: setting('batchSize', 100, 1, 10_000),
    maxBatchBytes: 500_000,
    flushIntervalMs: setting('flushIntervalMs', 1_000, 1, 3_600_000),
    maxAttempts: setting('maxAttempts', 3, 1, 1_000_000),
    shutdownTimeoutMs: setting('shutdownTimeoutMs', 10_000, 0, 600_000),
    onDrop: queue.onDrop as QueueSettings['onDrop']
  })
}

/** Options first, then `CUSTOMERIO_*` variables; throws `FST_CIO_INVALID_OPTIONS` naming what is wrong. */
export function resolveOptions (opts: unknown): ResolvedOptions {
  if (!isObject(opts)) invalid('options', 'must be an object')
  knownKeys(opts, '', ['siteId', 'trackApiKey', 'appApiKey', 'region', 'client', 'metrics', 'webhook', 'queue', 'logLevel', 'env'])
  const env = readEnv(opts.env ?? process.env)

  const siteId = optionalString(opts.siteId, 'siteId') ?? env.CUSTOMERIO_SITE_ID
  const trackApiKey = optionalString(opts.trackApiKey, 'trackApiKey') ?? env.CUSTOMERIO_TRACK_API_KEY
  if ((siteId === undefined) !== (trackApiKey === undefined)) {
    invalid(siteId === undefined ? 'siteId' : 'trackApiKey',
      'siteId and trackApiKey (CUSTOMERIO_SITE_ID, CUSTOMERIO_TRACK_API_KEY) must be set together')
  }
  const logLevel = opts.logLevel ?? env.CUSTOMERIO_LOG_LEVEL
  if (logLevel !== undefined && !(LOG_LEVELS as readonly unknown[]).includes(logLevel)) {
    invalid('logLevel', `must be one of ${LOG_LEVELS.join(', ')}`)
  }

  return Object.freeze({
    track: siteId === undefined ? undefined : Object.freeze({ siteId, apiKey: trackApiKey as string }),
    appApiKey: optionalString(opts.appApiKey, 'appApiKey') ?? env.CUSTOMERIO_APP_API_KEY,
    region: resolveRegion(opts.region, env.CUSTOMERIO_REGION),
    client: resolveClient(opts.client),
    metrics: resolveMetrics(opts.metrics),
    webhook: resolveWebhook(opts.webhook, env.CUSTOMERIO_WEBHOOK_SIGNING_KEY),
    queue: resolveQueue(opts.queue, siteId !== undefined),
    logLevel: logLevel as LogLevel | undefined
  })
}
