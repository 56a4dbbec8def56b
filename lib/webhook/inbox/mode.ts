import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import type { FastifyBaseLogger } from 'fastify'
import { eventHandler, type DirectDeps } from '../direct.ts'
import type { CioWebhookEvent, EventLabels, ReadEvent } from '../events.ts'
import type { InboxSettings } from '../options.ts'
import { InboxResources } from './redis.ts'

/** What a job holds: the event, its labels, and when the route received it. */
interface InboxEntry {
  readonly event_id: string
  readonly event: CioWebhookEvent
  readonly labels: EventLabels
  readonly receivedAt: number
}

export interface InboxMode {
  /** `'added'`: this call stored the event. `'duplicate'`: its job already existed (queued, running, completed or failed). */
  add: (read: ReadEvent, receivedAt: number) => Promise<'added' | 'duplicate'>
  /** Jobs per state, for the `cio_webhook_inbox_jobs{state}` gauge. */
  counts: () => Promise<{ waiting: number, active: number, delayed: number, failed: number }>
  /** Closes the worker first (its active jobs finish, unless Redis is down), then the queue, then the connections, within `closeTimeoutMs`. */
  close: () => Promise<void>
}

type InboxDeps = Pick<DirectDeps, 'onEvent' | 'record' | 'handlerFailed' | 'tracing' | 'secrets'> & {
  readonly log: FastifyBaseLogger
  /** The route's answer budget: no Redis command of the route's may take longer. */
  readonly commandTimeoutMs: number
}

/**
 * Completed jobs are kept this long, so that a copy of the event arriving late still finds its
 * job: Customer.io retries an event for 7 days, and a day more covers clock differences.
 */
const KEEP_COMPLETED_SECONDS = 8 * 24 * 60 * 60

/**
 * The job id of an event: its `event_id`, which BullMQ mostly takes as it is. BullMQ refuses
 * ':' in a custom id, takes an integer-looking id for one of its own counter and an empty one for
 * none, so ':' and '%' are percent-encoded (which keeps distinct ids distinct) and an id BullMQ
 * would read as a number or as empty gets a trailing '%', which no encoded id ends with.
 */
export function inboxJobId (eventId: string): string {
  const escaped = eventId.replace(/[%:]/g, encodeURIComponent)
  return escaped === '' || String(parseInt(escaped, 10)) === escaped ? `${escaped}%` : escaped
}

/**
 * Inbox mode: the route stores each event as a BullMQ job and answers at once; a worker (in
 * this app unless `worker: false`) runs `onEvent` with retries and backoff, and the event is
 * counted once, when its job completes. Every copy of an event, at any instance, lands on one
 * job. Resolves once Redis answered: while Redis is unreachable it waits (the app's start-up
 * then times out).
 */
export async function openInbox (settings: InboxSettings, deps: InboxDeps): Promise<InboxMode> {
  // Loaded only now: an app that never opens an inbox needs no BullMQ.
  const { Queue, Worker } = await import('bullmq')
  type ConnectionOptions = ConstructorParameters<typeof Queue>[1] extends infer O ? O extends { connection?: infer C } ? C : never : never
  const resources = new InboxResources(settings, deps.log, deps.commandTimeoutMs)
  try {
    const producer = await resources.connect('producer')
    const queue = new Queue<InboxEntry, unknown, string>(settings.queueName, {
      // Typed as BullMQ's own ioredis: BullMQ 5 declares the major it depends on, and the app's may be the other.
      connection: producer as unknown as ConnectionOptions,
      defaultJobOptions: {
        attempts: settings.attempts,
        backoff: { type: 'exponential', delay: settings.backoffMs },
        removeOnComplete: { age: KEEP_COMPLETED_SECONDS },
        removeOnFail: false
      }
    })
    resources.onClose(() => queue.close())
    resources.onCut(() => queue.disconnect())
    queue.on('error', resources.report)
    await queue.waitUntilReady()

    if (settings.worker) {
      const handle = eventHandler(deps)
      const connection = await resources.connect('worker')
      // No request in the worker: the event may be handled long after it was received.
      const worker = new Worker<InboxEntry>(settings.queueName, ({ data }) => handle({ event: data.event, labels: data.labels, eventId: data.event_id }, undefined), {
        connection: connection as unknown as ConnectionOptions, concurrency: settings.concurrency, lockDuration: settings.lockDurationMs, stalledInterval: settings.stalledIntervalMs
      })
      // The active jobs may finish first, unless Redis is gone or goes while they do: they could
      // never report back then, and are left to the stalled check of the next worker. A Redis
      // that hangs instead is cut off at the close bound (InboxResources.close).
      resources.onClose(async () => {
        if (connection.status === 'ready') await Promise.race([worker.pause(), once(connection, 'close'), resources.cut])
        await worker.close(true)
      })
      // At the cut the worker is closed by force (BullMQ 6's lock renewal timer stops only then) and its
      // own connections are ended.
      resources.onCut(() => Promise.all([worker.close(true), worker.disconnect()]))
      worker.on('error', resources.report)
      worker.on('completed', ({ data }) => { deps.record({ event: data.event, labels: data.labels, eventId: data.event_id }, data.receivedAt) })
      await worker.waitUntilReady()
    }

    return {
      add: async ({ event, labels, eventId }, receivedAt) => {
        // An event without a usable id cannot be told from its copies: it gets a job of its own.
        const entry: InboxEntry = { event_id: eventId ?? randomUUID(), event, labels, receivedAt }
        const jobId = inboxJobId(entry.event_id)
        // BullMQ answers a duplicate exactly like a new job. The job's name is never used otherwise,
        // so each call names its job with a nonce: the name stored is the nonce of the call that
        // created the job, which is exact however many instances add the same event at once.
        const nonce = randomUUID()
        await queue.add(nonce, entry, { jobId })
        return await producer.hget(queue.toKey(jobId), 'name') === nonce ? 'added' : 'duplicate'
      },
      counts: async () => {
        const { waiting, active, delayed, failed } = await queue.getJobCounts('waiting', 'active', 'delayed', 'failed')
        return { waiting, active, delayed, failed }
      },
      close: () => resources.close()
    }
  } catch (err) {
    await resources.close()
    throw err
  }
}
