import type { FastifyRequest } from 'fastify'
import { boolean, callback, custom, defaultsOf, integer, invalid, isObject, path, resolveSection, string, type Rules, type Settings } from '../validation.ts'
import { isRedisConnection, REDIS_CONNECTION_EXPECTED, type RedisConnection } from '../redis/connection.ts'
import { CLAIM_RESULTS, type DedupeStore } from './dedupe.ts'
import type { CioWebhookEvent } from './events.ts'
import { MemoryDedupeStore } from './memory-dedupe.ts'

/** A Redis URL, ioredis options or an ioredis instance. */
export type InboxConnection = RedisConnection

/** Inbox mode: events are stored in BullMQ on Redis and handled by a worker, not in the request. */
export interface CioWebhookInboxOptions {
  /** A Redis URL, ioredis options, or an ioredis instance (which stays the app's to close). */
  connection: InboxConnection
  /** BullMQ queue name, the same at every instance. Default `customerio-webhooks`. */
  queueName?: string
  /** Run a worker in this app. `false` for instances that only receive (the workers run elsewhere). Default `true`. */
  worker?: boolean
  /** Jobs the worker runs at once. Default 1. */
  concurrency?: number
  /** Attempts per event, the first included; what exhausts them stays in the failed set. Default 5. */
  attempts?: number
  /** The first retry's delay, doubled for each later one. Default 1 000. */
  backoffMs?: number
  /** How long a job stays a worker's without renewal; a dead worker's job is taken over after this. Default 30 000. */
  lockDurationMs?: number
  /** How often workers look for jobs whose worker died. Default 30 000. */
  stalledIntervalMs?: number
  /** How long closing the app may wait for the worker's active jobs and for Redis; past it the inbox's connections are cut. Default 5 000. */
  closeTimeoutMs?: number
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
  /** Answer by then (below Customer.io's 4 s): 503 if `onEvent` has not settled, which it may still do. Default 3 000. */
  answerWithinMs?: number
  /** Remember this many event ids in memory, or use a shared store (e.g. `RedisDedupeStore`), or `false`. Default `{ size: 100_000 }`. */
  dedupe?: false | { size: number } | DedupeStore
  /** Store events in BullMQ and answer at once; a worker runs `onEvent`. Default: off. */
  inbox?: CioWebhookInboxOptions
  /**
   * Called once per verified event (unrecognised ones included, as `object_type: '_other'`).
   * A throw answers 503, so Customer.io sends the event again. In inbox mode it runs in the
   * worker, with retries, and `request` is undefined.
   */
  onEvent?: (event: CioWebhookEvent, request: FastifyRequest | undefined) => void | Promise<void>
}

const DEDUPE_SIZE = 100_000

function checkKeys (value: unknown, name: string): readonly string[] {
  const keys = typeof value === 'string' ? [value] : value
  if (!Array.isArray(keys) || keys.length === 0 || keys.some((key) => typeof key !== 'string' || key.length === 0)) {
    invalid(name, 'must be a non-empty string or a non-empty array of them')
  }
  return Object.freeze([...keys as string[]])
}

const isStore = (value: Record<string, unknown>): boolean =>
  typeof value.claim === 'function' && typeof value.confirm === 'function' && typeof value.release === 'function'

/** Every copy of an event is handed on: no id is remembered, nothing waits. */
const nothing = (): void => {}
const NO_DEDUPE: DedupeStore = Object.freeze({ claim: () => CLAIM_RESULTS[0], confirm: nothing, release: nothing })

function checkDedupe (value: unknown, name: string): DedupeStore {
  if (value === false) return NO_DEDUPE
  if (!isObject(value)) invalid(name, 'must be false, { size } or a store with claim(), confirm() and release()')
  if (isStore(value)) return value as unknown as DedupeStore
  return new MemoryDedupeStore({ size: resolveSection(name, value, { size: integer(DEDUPE_SIZE, 1, 10_000_000) }).size })
}

const INBOX_RULES = {
  connection: custom<InboxConnection | undefined>(undefined, (value, name) => {
    if (!isRedisConnection(value)) invalid(name, REDIS_CONNECTION_EXPECTED)
    return value
  }),
  // A rule of its own rather than string(), whose default is undefined: the queue always has a name.
  queueName: custom('customerio-webhooks', (value, name) => string().check(value, name)!),
  worker: boolean(true),
  concurrency: integer(1, 1, 1_000),
  attempts: integer(5, 1, 1_000),
  backoffMs: integer(1_000, 0, 3_600_000),
  lockDurationMs: integer(30_000, 100, 3_600_000),
  stalledIntervalMs: integer(30_000, 100, 3_600_000),
  closeTimeoutMs: integer(5_000, 0, 600_000)
} satisfies Rules<CioWebhookInboxOptions>

export type InboxSettings = Settings<typeof INBOX_RULES> & { readonly connection: InboxConnection }

const RULES = {
  path: path('/webhooks/customerio'),
  signingKeys: custom<readonly string[] | undefined>(undefined, checkKeys),
  toleranceSeconds: integer(undefined, 1),
  bodyLimit: integer(1024 * 1024, 1, 100 * 1024 * 1024),
  answerWithinMs: integer(3_000, 1, 3_999),
  // A store is made per registration: the default is built in resolveWebhookOptions, not shared.
  dedupe: custom<DedupeStore | undefined>(undefined, checkDedupe),
  inbox: custom<InboxSettings | undefined>(undefined, (value, name) => {
    const inbox = resolveSection(name, value, INBOX_RULES, 'must be an object')
    if (inbox.connection === undefined) invalid(`${name}.connection`, 'is required')
    return inbox as InboxSettings
  }),
  onEvent: callback<NonNullable<CioWebhookOptions['onEvent']>>()
} satisfies Rules<CioWebhookOptions>

export const WEBHOOK_DEFAULTS = Object.freeze({ ...defaultsOf(RULES), dedupe: { size: DEDUPE_SIZE } })
export const INBOX_DEFAULTS = defaultsOf(INBOX_RULES)

export type WebhookSettings = Settings<typeof RULES> & { readonly signingKeys: readonly string[], readonly dedupe: DedupeStore }

/**
 * `false` when off: `webhook: false`, or no option and no `CUSTOMERIO_WEBHOOK_SIGNING_KEY`
 * (an app that only wants client metrics). The keys come from the option or the variable.
 */
export function resolveWebhookOptions (value: unknown, keysFromEnv: string | undefined): false | WebhookSettings {
  if (value === false || (value === undefined && keysFromEnv === undefined)) return false
  const settings = resolveSection('webhook', value, RULES)
  return Object.freeze({
    ...settings,
    signingKeys: settings.signingKeys ?? envKeys(keysFromEnv),
    dedupe: settings.dedupe ?? new MemoryDedupeStore({ size: DEDUPE_SIZE })
  })
}

function envKeys (fromEnv: string | undefined): readonly string[] {
  if (fromEnv === undefined) invalid('webhook.signingKeys', 'is required (or CUSTOMERIO_WEBHOOK_SIGNING_KEY) when webhook is set')
  const keys = fromEnv.split(',').map((key) => key.trim())
  if (keys.some((key) => key === '')) invalid('CUSTOMERIO_WEBHOOK_SIGNING_KEY', 'must be a comma-separated list of non-empty keys')
  return Object.freeze(keys)
}
