import type { Counter, Gauge } from '@prometheus-io/client'
import type { MetricFactory } from '../monitoring/metrics.ts'
import { DROP_REASONS } from './options.ts'

export interface QueueMetrics {
  readonly capacity: Gauge<'queue'>
  readonly sent: Counter<'queue'>
  readonly retries: Counter<'queue'>
  readonly dropped: Counter<'queue' | 'reason'>
}

/** The queue's metrics, created only when the queue is; the depth is read at scrape time, not on every enqueue. */
export function createQueueMetrics ({ counter, gauge }: MetricFactory, depth: () => number): QueueMetrics {
  gauge('cio_queue_depth', 'Operations waiting in the queue.', ['queue'], (g) => g.set({ queue: 'track' }, depth()))
  const metrics: QueueMetrics = {
    capacity: gauge('cio_queue_capacity', 'Operations the queue can hold.', ['queue']),
    sent: counter('cio_queue_sent_total', 'Queued operations accepted by Customer.io.', ['queue']),
    retries: counter('cio_queue_retries_total', 'Queued batches sent again after a transient failure.', ['queue']),
    dropped: counter('cio_queue_dropped_total', 'Queued operations given up, by reason.', ['queue', 'reason'])
  }
  metrics.sent.inc({ queue: 'track' }, 0)
  metrics.retries.inc({ queue: 'track' }, 0)
  for (const reason of DROP_REASONS) metrics.dropped.inc({ queue: 'track', reason }, 0)
  return metrics
}
