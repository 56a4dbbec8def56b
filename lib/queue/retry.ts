import { classify } from '../client/classify.ts'

/** Statuses with which Customer.io refuses a batch for its content, and a batch the SDK refused: sending it again cannot help. */
const REFUSED = new Set(['400', '413', '422', 'invalid_argument'])

/** Whether a failed batch send is worth sending again (timeouts, network, 408, 429, 5xx, 401/403, …). */
export function isTransient (err: unknown): boolean {
  return !REFUSED.has(classify(err))
}

/** `Retry-After` of the Customer.io answer behind `err` (the SDK's error, or its `cause`), in ms. */
export function retryAfterMs (err: unknown, now: number): number | undefined {
  for (let e = err as { cause?: unknown, response?: { headers?: Record<string, unknown> } } | undefined; e !== undefined && e !== null; e = e.cause as typeof e) {
    const raw = e.response?.headers?.['retry-after']
    if (typeof raw !== 'string') continue
    const seconds = Number(raw)
    const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(raw) - now
    return Number.isNaN(ms) ? undefined : Math.max(0, ms)
  }
  return undefined
}

export interface Backoff {
  readonly retryDelayMs: number
  readonly maxRetryDelayMs: number
}

/**
 * Delay before the `failures`-th re-send: exponential from `retryDelayMs`, capped at
 * `maxRetryDelayMs`, with full jitter (uniform in [0, cap]) so instances that failed
 * together do not retry together; never sooner than `Retry-After`, which is honoured up
 * to `maxRetryDelayMs`.
 */
export function retryDelay ({ retryDelayMs, maxRetryDelayMs }: Backoff, failures: number, retryAfter: number | undefined, random = Math.random): number {
  const cap = Math.min(maxRetryDelayMs, retryDelayMs * 2 ** Math.min(failures - 1, 30))
  return Math.max(Math.floor(random() * cap), Math.min(retryAfter ?? 0, maxRetryDelayMs))
}
