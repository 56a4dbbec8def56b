import type { QueueName } from '../labels.ts'
import type { MetricFactory } from '../monitoring/metrics.ts'
import { DROP_REASONS, type DropReason } from './options.ts'

/** What the queue counts, with its `queue` label already applied. */
export interface QueueMetrics {
  sent: (count: number) => void
  retried: () => void
  dropped: (reason: DropReason, count: number) => void
}

/**
 * The queue's metrics, created only when the queue is; every series exists from the start, and
 * the depth is read at scrape time, not on every enqueue.
 */
export function createQueueMetrics ({ counter, gauge }: MetricFactory, queue: QueueName, capacity: number, depth: () => number): QueueMetrics {
  gauge('cio_queue_depth', 'Operations waiting in the queue.', ['queue'], (g) => g.set({ queue }, depth()))
  gauge('cio_queue_capacity', 'Operations the queue can hold.', ['queue']).set({ queue }, capacity)
  const sent = counter('cio_queue_sent_total', 'Queued operations accepted by Customer.io.', ['queue'])
  const retries = counter('cio_queue_retries_total', 'Queued batches sent again after a transient failure.', ['queue'])
  const dropped = counter('cio_queue_dropped_total', 'Queued operations given up, by reason.', ['queue', 'reason'])
  sent.inc({ queue }, 0)
  retries.inc({ queue }, 0)
  for (const reason of DROP_REASONS) dropped.inc({ queue, reason }, 0)
  return {
    sent: (count) => { sent.inc({ queue }, count) },
    retried: () => { retries.inc({ queue }) },
    dropped: (reason, count) => { dropped.inc({ queue, reason }, count) }
  }
}
