import type { QueueName } from '../../labels.ts'
import { isRedisConnection, REDIS_CONNECTION_EXPECTED, type RedisConnection } from '../../redis/connection.ts'
import { boolean, callback, custom, defaultsOf, integer, invalid, resolveSection, string, type Rules, type Settings } from '../../validation.ts'
import { checkBackoff, resolveApi, SENDING_RULES, type CioQueueOptions, type QueueItem } from '../options.ts'

/**
 * Why the outbox gave operations up: Customer.io refused their content, or a stream entry held
 * no operation (something else wrote to the stream). Nothing else is ever given up.
 */
export const OUTBOX_DROP_REASONS = ['rejected', 'unreadable'] as const
export type OutboxDropReason = (typeof OUTBOX_DROP_REASONS)[number]

/** A durable queue on a Redis stream: `fastify.cio.outbox`. */
export interface CioOutboxOptions extends Pick<CioQueueOptions, 'api' | 'batchSize' | 'maxBatchBytes' | 'retryDelayMs' | 'maxRetryDelayMs' | 'shutdownTimeoutMs'> {
  /** A Redis URL, ioredis options, or an ioredis instance (duplicated for the outbox's own connections, never closed by it). */
  connection: RedisConnection
  /** The stream's key, the same at every instance. Default `customerio-outbox`. */
  stream?: string
  /** The consumer group the senders share. Default `customerio-senders`. */
  group?: string
  /** Run a sender in this app. `false` for instances that only add (senders run elsewhere). Default `true`. */
  sender?: boolean
  /** Entries the stream holds at most (not yet acknowledged); an add beyond it fails with `FST_CIO_OUTBOX_FULL`. Default 1 000 000. */
  maxLength?: number
  /**
   * How long a batch may go without news from its sender before another sender takes it over.
   * Senders renew their batches' claim while they work, so this only passes for a dead one. Default 30 000.
   */
  claimAfterMs?: number
  /** How long a Redis command may take; an add past it fails with `FST_CIO_OUTBOX_UNAVAILABLE`. Default 1 000. */
  commandTimeoutMs?: number
  /** How long an idle sender's read waits for new entries. Default 1 000. */
  blockMs?: number
  /** Receives operations Customer.io refused, e.g. to keep them elsewhere. */
  onDrop?: (operations: QueueItem[], reason: 'rejected') => void
}

const name = (fallback: string) => custom(fallback, (value, option) => string().check(value, option)!)

const RULES = {
  ...SENDING_RULES,
  connection: custom<RedisConnection | undefined>(undefined, (value, option) => {
    if (!isRedisConnection(value)) invalid(option, REDIS_CONNECTION_EXPECTED)
    return value
  }),
  stream: name('customerio-outbox'),
  group: name('customerio-senders'),
  sender: boolean(true),
  maxLength: integer(1_000_000, 1, 1_000_000_000),
  claimAfterMs: integer(30_000, 100, 3_600_000),
  commandTimeoutMs: integer(1_000, 1, 60_000),
  blockMs: integer(1_000, 1, 60_000),
  onDrop: callback<NonNullable<CioOutboxOptions['onDrop']>>()
} satisfies Rules<CioOutboxOptions>

export type OutboxSettings = Settings<typeof RULES> & { readonly api: QueueName, readonly connection: RedisConnection }
export const OUTBOX_DEFAULTS = defaultsOf(RULES)

/** The outbox's settings, or `false` when none is configured; `configured` says which APIs have credentials. */
export function resolveOutboxOptions (value: unknown, configured: Readonly<Record<QueueName, boolean>>): OutboxSettings | false {
  if (value === undefined || value === false) return false
  const settings = resolveSection('outbox', value, RULES, 'must be false or an object with a connection')
  if (settings.connection === undefined) invalid('outbox.connection', 'is required')
  checkBackoff('outbox', settings)
  return Object.freeze({ ...settings, connection: settings.connection, api: resolveApi('outbox', settings.api, configured) })
}
