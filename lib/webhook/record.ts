import type { Counter } from '@prometheus-io/client'
import { emailTypeOf, type ReadEvent } from './events.ts'
import type { WebhookMetrics } from './metrics.ts'

/**
 * Counts one handled event, once: received by type and metric, its lag, the time of the
 * last one, and the email funnel (sent by origin, bounced, spam complaints).
 */
export function recorder (metrics: WebhookMetrics, emailSent: Counter<'source' | 'type'>): (read: ReadEvent, receivedAt: number) => void {
  return ({ event, labels }, receivedAt) => {
    metrics.received.inc({ object_type: labels.objectType, metric: labels.metric })
    if (event.timestamp !== undefined) metrics.lag.observe({ object_type: labels.objectType }, Math.max(0, receivedAt / 1000 - event.timestamp))
    metrics.lastReceived.set(receivedAt / 1000)
    if (event.object_type !== 'email') return
    if (event.metric === 'sent') emailSent.inc({ source: 'webhook', type: emailTypeOf(event.data) })
    else if (event.metric === 'bounced') metrics.bounced.inc()
    else if (event.metric === 'spammed') metrics.complained.inc()
  }
}
