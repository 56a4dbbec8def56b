import type { MetricFactory } from '../../monitoring/metrics.ts'
import { OUTBOX_DROP_REASONS, type OutboxDropReason } from './options.ts'

export interface OutboxMetrics {
  sent: (count: number) => void
  retried: () => void
  claimed: (count: number) => void
  dropped: (reason: OutboxDropReason, count: number) => void
  storeError: () => void
}

/**
 * The outbox's metrics; every series exists from the start. Depth and age are read from Redis
 * at scrape time, once per scrape for both, within the outbox's command bound: a Redis that
 * hangs or is gone leaves the last values (and counts a store error), never a stalled scrape.
 */
export function createOutboxMetrics ({ counter, gauge }: MetricFactory, stats: () => Promise<{ depth: number, oldestAgeSeconds: number }>): OutboxMetrics {
  const storeErrors = counter('cio_outbox_store_errors_total', 'Outbox Redis commands that failed or timed out (adds, reads, acknowledgements, scrape-time reads).')
  let reading: Promise<{ depth: number, oldestAgeSeconds: number } | undefined> | undefined
  const read = () => {
    reading ??= stats().catch(() => { storeErrors.inc(); return undefined }).finally(() => { reading = undefined })
    return reading
  }
  gauge('cio_outbox_depth', 'Operations in the outbox not yet acknowledged as sent.', [], async (g) => {
    const now = await read()
    if (now !== undefined) g.set(now.depth)
  }).set(0)
  gauge('cio_outbox_oldest_age_seconds', 'How long the oldest operation in the outbox has waited.', [], async (g) => {
    const now = await read()
    if (now !== undefined) g.set(now.oldestAgeSeconds)
  }).set(0)
  const sent = counter('cio_outbox_sent_total', 'Outbox operations accepted by Customer.io.')
  const retries = counter('cio_outbox_retries_total', 'Outbox batches sent again after a transient failure.')
  const claimed = counter('cio_outbox_claimed_total', 'Outbox operations taken over from a sender that stopped.')
  const dropped = counter('cio_outbox_dropped_total', 'Outbox operations given up, by reason.', ['reason'])
  for (const metric of [sent, retries, claimed, storeErrors]) metric.inc(0)
  for (const reason of OUTBOX_DROP_REASONS) dropped.inc({ reason }, 0)
  return {
    sent: (count) => { sent.inc(count) },
    retried: () => { retries.inc() },
    claimed: (count) => { claimed.inc(count) },
    dropped: (reason, count) => { dropped.inc({ reason }, count) },
    storeError: () => { storeErrors.inc() }
  }
}
