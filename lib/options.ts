import envSchema from 'env-schema'
import { Region, RegionEU, RegionUS } from 'customerio-node'
import type { RetryOptions } from 'customerio-node'
import type { Dispatcher } from 'undici'
import { resolveMetricsOptions, type CioMetricsOptions, type MetricsSettings } from './monitoring/exposition.ts'
import type { Api } from './labels.ts'
import { resolveDeliveryOptions, type CioDeliveryOptions, type DeliverySettings } from './webhook/delivery/options.ts'
import { resolveOutboxOptions, type CioOutboxOptions, type OutboxSettings } from './queue/outbox/options.ts'
import { resolveQueueOptions, type CioQueueOptions, type QueueSettings } from './queue/options.ts'
import { CioUnsupportedSetupError } from './errors.ts'
import { boolean, custom, defaultsOf, defined, integer, invalid, isObject, resolveSection, string, type Rules } from './validation.ts'
import { resolveWebhookOptions, type CioWebhookOptions, type WebhookSettings } from './webhook/options.ts'

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

/** How each API's credentials are configured: said by every error about missing ones. */
export const CREDENTIALS: Readonly<Record<Api, string>> = Object.freeze({
  track: 'siteId and trackApiKey (CUSTOMERIO_SITE_ID, CUSTOMERIO_TRACK_API_KEY)',
  app: 'appApiKey (CUSTOMERIO_APP_API_KEY)',
  pipelines: 'pipelinesWriteKey (CUSTOMERIO_PIPELINES_WRITE_KEY)'
})

/** Forwarded to customerio-node's `TrackClient` / `APIClient`. */
export interface CioClientOptions {
  /** Per-attempt timeout in milliseconds (SDK default 10 000). */
  timeout?: number
  retry?: Partial<RetryOptions>
  /** An undici `Dispatcher` (Agent, ProxyAgent, …); stays the app's to close. Default: a pool the plugin owns. */
  dispatcher?: Dispatcher
}

/** What customerio-node's `PipelinesClient` itself offers. */
export interface CioPipelinesOptions {
  /** Send `X-Strict-Mode: 1`: Customer.io validates each payload and answers 400 instead of silently dropping a malformed one. Default `false`. */
  strictMode?: boolean
  /** Merged under every call's own `context` (for example `{ locale }`). */
  defaultContext?: Record<string, unknown>
}

export interface CioObservabilityOptions {
  siteId?: string
  trackApiKey?: string
  appApiKey?: string
  /** A Data Pipelines source write key: `fastify.cio.pipelines`. */
  pipelinesWriteKey?: string
  pipelines?: CioPipelinesOptions
  /** `'us'`, `'eu'` or a customerio-node `Region` (how tests point the SDK at the simulator). */
  region?: 'us' | 'eu' | Region
  client?: CioClientOptions
  metrics?: false | CioMetricsOptions
  webhook?: false | CioWebhookOptions
  /** Default: on when Track credentials or a Pipelines write key are set. */
  queue?: false | CioQueueOptions
  /** A durable queue on Redis: `fastify.cio.outbox`, present when a connection is given. Default off. */
  outbox?: false | CioOutboxOptions
  /** Delivery tracking from sends and reporting webhooks. Default: on whenever the webhook route is. */
  delivery?: false | CioDeliveryOptions
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
    CUSTOMERIO_PIPELINES_WRITE_KEY: Object.freeze({ type: 'string', minLength: 1 }),
    CUSTOMERIO_REGION: Object.freeze({ type: 'string', enum: Object.freeze(['us', 'eu']) }),
    CUSTOMERIO_WEBHOOK_SIGNING_KEY: Object.freeze({ type: 'string', minLength: 1 }),
    CUSTOMERIO_LOG_LEVEL: Object.freeze({ type: 'string', enum: LOG_LEVELS })
  })
} as const)

type CioEnv = Partial<Record<keyof typeof cioEnvSchema.properties, string>>

// env-schema sets additionalProperties on the schema it is given, and its shared Ajv keeps
// what it compiles per schema object: one private copy, compiled once per process.
const ENV_SCHEMA = { ...cioEnvSchema }

export interface ResolvedOptions {
  readonly track?: { readonly siteId: string, readonly apiKey: string }
  readonly appApiKey?: string
  readonly pipelines?: Readonly<CioPipelinesOptions> & { readonly writeKey: string }
  readonly region: Region
  readonly client: Readonly<CioClientOptions>
  readonly metrics: MetricsSettings
  readonly webhook: false | WebhookSettings
  readonly queue: false | QueueSettings
  readonly outbox: false | OutboxSettings
  readonly delivery: false | DeliverySettings
  readonly logLevel?: LogLevel
}

const pass = <T>() => custom<T | undefined>(undefined, (value) => value as T)

const CLIENT_RULES = {
  timeout: integer(undefined, 1, 600_000),
  // Checked by the SDK itself; known keys only, so a typo is not silently ignored.
  retry: custom<Partial<RetryOptions> | undefined>(undefined, (value, name) => defined(resolveSection(name, value, {
    maxRetries: pass(), minTimeoutMs: pass(), maxTimeoutMs: pass(), retryStatusCodes: pass(), respectRetryAfter: pass(), retryAfterMaxSeconds: pass(), maxTotalBackoffMs: pass()
  } satisfies Rules<RetryOptions>, 'must be an object'))),
  dispatcher: custom<CioClientOptions['dispatcher']>(undefined, (value, name) => {
    if (!isObject(value) || typeof value.dispatch !== 'function') invalid(name, 'must be an undici Dispatcher')
    return value as unknown as CioClientOptions['dispatcher']
  })
} satisfies Rules<CioClientOptions>

const PIPELINES_RULES = {
  strictMode: boolean(false),
  defaultContext: custom<Record<string, unknown> | undefined>(undefined, (value, name) => {
    if (!isObject(value)) invalid(name, 'must be an object')
    return value
  })
} satisfies Rules<CioPipelinesOptions>

const RULES = {
  siteId: string(),
  trackApiKey: string(),
  appApiKey: string(),
  pipelinesWriteKey: string(),
  pipelines: custom<Readonly<CioPipelinesOptions>>(defaultsOf(PIPELINES_RULES), (value, name) => resolveSection(name, value, PIPELINES_RULES, 'must be an object')),
  region: custom<Region | undefined>(undefined, (value, name) => {
    if (value === 'us') return RegionUS
    if (value === 'eu') return RegionEU
    if (value instanceof Region) return value
    // Duck-typed (a Region from another copy of customerio-node, or its URLs as plain data), and
    // made a Region of this copy: the SDK's clients refuse anything else.
    if (isObject(value) && typeof value.trackUrl === 'string' && typeof value.apiUrl === 'string') {
      return new Region(value.trackUrl, value.apiUrl, (typeof value.pipelinesUrl === 'string' ? value.pipelinesUrl : undefined) as string)
    }
    invalid(name, "must be 'us', 'eu' or a customerio-node Region")
  }),
  // Only what was given reaches the SDK, so its own defaults hold for the rest.
  client: custom<Readonly<CioClientOptions>>(Object.freeze({}), (value, name) => defined(resolveSection(name, value, CLIENT_RULES, 'must be an object'))),
  // Each feature resolves its own section.
  metrics: pass<CioObservabilityOptions['metrics']>(),
  webhook: pass<CioObservabilityOptions['webhook']>(),
  queue: pass<CioObservabilityOptions['queue']>(),
  outbox: pass<CioObservabilityOptions['outbox']>(),
  delivery: pass<CioObservabilityOptions['delivery']>(),
  logLevel: custom<LogLevel | undefined>(undefined, (value, name) => {
    if (!(LOG_LEVELS as readonly unknown[]).includes(value)) invalid(name, `must be one of ${LOG_LEVELS.join(', ')}`)
    return value as LogLevel
  }),
  env: custom<CioObservabilityOptions['env']>(undefined, (value, name) => {
    if (!isObject(value)) invalid(name, 'must be an object of environment variables')
    return value as CioObservabilityOptions['env']
  })
} satisfies Rules<CioObservabilityOptions>

function readEnv (source: Readonly<Record<string, unknown>>): CioEnv {
  const data: Record<string, unknown> = {}
  for (const name of Object.keys(cioEnvSchema.properties)) {
    if (source[name] !== undefined) data[name] = source[name]
  }
  try {
    return envSchema<CioEnv>({ schema: ENV_SCHEMA, data, env: false, dotenv: false })
  } catch (err) {
    // Ajv names the variable (`env/CUSTOMERIO_REGION must be …`) and never echoes its value.
    const { errors, message } = err as Error & { errors: Array<{ instancePath: string }> }
    invalid(errors[0].instancePath.slice(1), message)
  }
}

/** customerio-node 5 needs Node 22's fetch: on Node 20 every call would fail as `network`, so refuse at once. */
export function checkNodeVersion (version: string): void {
  if (Number(version.split('.')[0]) < 22) throw new CioUnsupportedSetupError(`it needs Node.js 22 or later, and this is Node.js ${version}`)
}

/** Options first, then `CUSTOMERIO_*` variables; throws `FST_CIO_INVALID_OPTIONS` naming what is wrong. */
export function resolveOptions (opts: unknown): ResolvedOptions {
  if (!isObject(opts)) invalid('options', 'must be an object')
  const given = resolveSection('', opts, RULES)
  const env = readEnv(given.env ?? process.env)
  const siteId = given.siteId ?? env.CUSTOMERIO_SITE_ID
  const trackApiKey = given.trackApiKey ?? env.CUSTOMERIO_TRACK_API_KEY
  if ((siteId === undefined) !== (trackApiKey === undefined)) {
    invalid(siteId === undefined ? 'siteId' : 'trackApiKey', `${CREDENTIALS.track} must be set together`)
  }
  const hasTrack = siteId !== undefined
  const writeKey = given.pipelinesWriteKey ?? env.CUSTOMERIO_PIPELINES_WRITE_KEY
  const region = given.region ?? (env.CUSTOMERIO_REGION === 'eu' ? RegionEU : RegionUS)
  if (writeKey !== undefined && typeof region.pipelinesUrl !== 'string') invalid('region', 'needs a pipelinesUrl for Data Pipelines')
  const queue = given.queue ?? (hasTrack || writeKey !== undefined ? {} : false)
  const webhook = resolveWebhookOptions(given.webhook, env.CUSTOMERIO_WEBHOOK_SIGNING_KEY)

  return Object.freeze({
    track: hasTrack ? Object.freeze({ siteId, apiKey: trackApiKey as string }) : undefined,
    appApiKey: given.appApiKey ?? env.CUSTOMERIO_APP_API_KEY,
    pipelines: writeKey === undefined ? undefined : Object.freeze({ ...given.pipelines, writeKey }),
    region,
    client: given.client,
    metrics: resolveMetricsOptions(given.metrics),
    webhook,
    delivery: resolveDeliveryOptions(given.delivery, webhook !== false),
    queue: queue === false ? false : resolveQueueOptions(queue, { track: hasTrack, pipelines: writeKey !== undefined }),
    outbox: resolveOutboxOptions(given.outbox, { track: hasTrack, pipelines: writeKey !== undefined }),
    logLevel: given.logLevel ?? env.CUSTOMERIO_LOG_LEVEL as LogLevel | undefined
  })
}
