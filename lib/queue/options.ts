import { QUEUES, type QueueName } from '../labels.ts'
import { callback, custom, defaultsOf, integer, invalid, resolveSection, type Rules, type Settings } from '../validation.ts'

/** One Track v2 batch operation (`{ type, action, identifiers, … }`). */
export type BatchOperation = Record<string, unknown> & { type: string, action: string }
/** What the queue holds: Track v2 operations, or Data Pipelines batch items (`{ type, userId, … }`). */
export type QueueItem = Record<string, unknown> & { type: string }

export const DROP_REASONS = ['overflow', 'too_large', 'rejected', 'shutdown'] as const
export type DropReason = (typeof DROP_REASONS)[number]

export interface CioQueueOptions {
  /**
   * The API the queue sends through: Track v2 `/batch`, or Data Pipelines `/batch`.
   * Default `'track'` when Track credentials are set, else `'pipelines'`.
   */
  api?: QueueName
  /** Operations held at most; further ones are dropped (`overflow`). Default 10 000. */
  maxSize?: number
  /** Operations per Track v2 batch request. Default 100. */
  batchSize?: number
  /** Bytes per batch request at most; Customer.io refuses more than 500 KB. Default 500 000. */
  maxBatchBytes?: number
  /** Longest wait before a partial batch is sent. Default 1 000. */
  flushIntervalMs?: number
  /**
   * Backoff before a failed batch is sent again: exponential from this, with full jitter.
   * A transient failure is retried for as long as the queue has room. Default 500.
   */
  retryDelayMs?: number
  /** Longest backoff, and the most of a `Retry-After` that is honoured. Default 30 000. */
  maxRetryDelayMs?: number
  /** How long closing the app may spend flushing. Default 10 000. */
  shutdownTimeoutMs?: number
  /** Receives every dropped operation with the reason, e.g. to keep it elsewhere. */
  onDrop?: (operations: QueueItem[], reason: DropReason) => void
}

/** The `api` rule of a section that sends through Track or Pipelines. */
export const apiRule = () => custom<QueueName | undefined>(undefined, (value, name) => {
  if (!(QUEUES as readonly unknown[]).includes(value)) invalid(name, `must be one of ${QUEUES.join(', ')}`)
  return value as QueueName
})

/** How batches are cut and retried, and how long closing may take: one set of rules for the queue and the outbox. */
export const SENDING_RULES = {
  api: apiRule(),
  batchSize: integer(100, 1, 10_000),
  maxBatchBytes: integer(500_000, 1_024, 500_000),
  retryDelayMs: integer(500, 1, 3_600_000),
  maxRetryDelayMs: integer(30_000, 1, 3_600_000),
  shutdownTimeoutMs: integer(10_000, 0, 600_000)
}

const RULES = {
  ...SENDING_RULES,
  maxSize: integer(10_000, 1, 10_000_000),
  flushIntervalMs: integer(1_000, 1, 3_600_000),
  onDrop: callback<NonNullable<CioQueueOptions['onDrop']>>()
} satisfies Rules<CioQueueOptions>

export type QueueSettings = Settings<typeof RULES> & { readonly api: QueueName }
export const QUEUE_DEFAULTS = defaultsOf(RULES)

/** The queue's settings; `configured` says which APIs have credentials, so `api` can default and be checked. */
export function resolveQueueOptions (value: unknown, configured: Readonly<Record<QueueName, boolean>>): QueueSettings {
  const settings = resolveSection('queue', value, RULES)
  checkBackoff('queue', settings)
  return Object.freeze({ ...settings, api: resolveApi('queue', settings.api, configured) })
}

export function checkBackoff (section: string, { retryDelayMs, maxRetryDelayMs }: { retryDelayMs: number, maxRetryDelayMs: number }): void {
  if (maxRetryDelayMs < retryDelayMs) invalid(`${section}.maxRetryDelayMs`, `must not be less than ${section}.retryDelayMs`)
}

/** The API a section sends through: the one asked for, else Track when it has credentials, else Pipelines; it must have credentials. */
export function resolveApi (section: string, api: QueueName | undefined, configured: Readonly<Record<QueueName, boolean>>): QueueName {
  const chosen = api ?? (configured.track ? 'track' : 'pipelines')
  if (!configured[chosen]) invalid(api === undefined ? section : `${section}.api`, `needs credentials for the ${chosen} API: ${CREDENTIALS_HINT[chosen]}`)
  return chosen
}

const CREDENTIALS_HINT: Readonly<Record<QueueName, string>> = {
  track: 'siteId and trackApiKey (CUSTOMERIO_SITE_ID, CUSTOMERIO_TRACK_API_KEY)',
  pipelines: 'pipelinesWriteKey (CUSTOMERIO_PIPELINES_WRITE_KEY)'
}
