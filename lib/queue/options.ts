import { callback, defaultsOf, integer, invalid, resolveSection, type Rules, type Settings } from '../validation.ts'

/** One Track v2 batch operation (`{ type, action, identifiers, … }`). */
export type BatchOperation = Record<string, unknown> & { type: string, action: string }

export const DROP_REASONS = ['overflow', 'too_large', 'rejected', 'shutdown'] as const
export type DropReason = (typeof DROP_REASONS)[number]

export interface CioQueueOptions {
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
  onDrop?: (operations: BatchOperation[], reason: DropReason) => void
}

const RULES = {
  maxSize: integer(10_000, 1, 10_000_000),
  batchSize: integer(100, 1, 10_000),
  maxBatchBytes: integer(500_000, 1_024, 500_000),
  flushIntervalMs: integer(1_000, 1, 3_600_000),
  retryDelayMs: integer(500, 1, 3_600_000),
  maxRetryDelayMs: integer(30_000, 1, 3_600_000),
  shutdownTimeoutMs: integer(10_000, 0, 600_000),
  onDrop: callback<NonNullable<CioQueueOptions['onDrop']>>()
} satisfies Rules<CioQueueOptions>

export type QueueSettings = Settings<typeof RULES>
export const QUEUE_DEFAULTS: QueueSettings = defaultsOf(RULES)

export function resolveQueueOptions (value: unknown): QueueSettings {
  const settings = resolveSection('queue', value, RULES)
  if (settings.maxRetryDelayMs < settings.retryDelayMs) invalid('queue.maxRetryDelayMs', 'must not be less than queue.retryDelayMs')
  return settings
}
