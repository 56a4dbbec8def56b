import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { eventHandler, type DirectDeps } from '../direct.ts'
import type { CioWebhookEvent, EventLabels, ReadEvent } from '../events.ts'
import { WebhookInbox, type InboxAddResult } from './inbox.ts'
import type { InboxSettings } from '../options.ts'

/** What a job holds: the event, its labels, and when the route received it. */
interface InboxEntry {
  /** The job id: the event's id, so copies at any instance collapse into one job. */
  readonly event_id: string
  readonly event: CioWebhookEvent
  readonly labels: EventLabels
  readonly receivedAt: number
}

export interface InboxMode {
  add: (read: ReadEvent, receivedAt: number) => Promise<InboxAddResult>
  counts: WebhookInbox['counts']
  close: () => Promise<void>
}

type InboxDeps = Pick<DirectDeps, 'onEvent' | 'record' | 'handlerFailed' | 'tracing' | 'secrets'> & {
  readonly log: FastifyBaseLogger
  /** The route's answer budget: no Redis command of the route's may take longer. */
  readonly commandTimeoutMs: number
}

/**
 * Inbox mode: the route stores each event as a BullMQ job and answers at once; a worker (in
 * this app unless `worker: false`) runs `onEvent` with retries and backoff, and the event is
 * counted once, when its job completes.
 */
export async function openInbox (settings: InboxSettings, deps: InboxDeps): Promise<InboxMode> {
  const { record, log, commandTimeoutMs } = deps
  const { connection, queueName, attempts, backoffMs, worker, concurrency, lockDurationMs, stalledIntervalMs, closeTimeoutMs } = settings
  const handle = eventHandler(deps)
  // No request in the worker: the event may be handled long after it was received.
  const process = ({ event, labels, event_id: eventId }: InboxEntry) => handle({ event, labels, eventId }, undefined)
  const inbox = await WebhookInbox.open<InboxEntry>({
    connection,
    ...(queueName === undefined ? {} : { queueName }),
    attempts,
    backoffMs,
    closeTimeoutMs,
    commandTimeoutMs,
    log,
    ...(worker
      ? {
          process,
          concurrency,
          lockDurationMs,
          stalledIntervalMs,
          onCompleted: (entry: InboxEntry) => { record({ event: entry.event, labels: entry.labels, eventId: entry.event_id }, entry.receivedAt) }
        }
      : { worker: false as const })
  })
  return {
    // An event without a usable id cannot be told from its copies: it gets a job of its own.
    add: ({ event, labels, eventId }, receivedAt) => inbox.add({ event_id: eventId ?? randomUUID(), event, labels, receivedAt }),
    counts: () => inbox.counts(),
    close: () => inbox.close()
  }
}
