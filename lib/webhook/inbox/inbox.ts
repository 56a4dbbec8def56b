import { randomUUID } from 'node:crypto'
import type { Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import { DEFAULT_QUEUE_NAME, positiveInteger, type InboxEvent, type InboxOptions } from './options.ts'
import { InboxResources } from './redis.ts'
import { InboxWorker } from './worker.ts'

/** `'added'`: this call stored the event. `'duplicate'`: its job already existed (queued, running, completed or failed). */
export type InboxAddResult = 'added' | 'duplicate'

export interface InboxCounts { waiting: number, active: number, delayed: number, failed: number }

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
 * The inbox of inbox mode: the route stores each verified event here and answers 200 at once;
 * a worker runs `process(event)` later, with retries and backoff, so Customer.io never waits on
 * the app's own dependencies. Every copy of an event, at any instance, lands on one BullMQ job.
 *
 * Open it with {@link WebhookInbox.open}: BullMQ is loaded, and Redis reached, only then.
 */
export class WebhookInbox<E extends InboxEvent = InboxEvent> {
  readonly #queue: Queue<InboxEvent>
  readonly #producer: Redis
  readonly #resources: InboxResources

  private constructor (queue: Queue<InboxEvent>, producer: Redis, resources: InboxResources) {
    this.#queue = queue
    this.#producer = producer
    this.#resources = resources
  }

  /** Resolves once Redis answered: while Redis is unreachable it waits (the app's start-up then times out). */
  static async open<E extends InboxEvent = InboxEvent> (options: InboxOptions<E>): Promise<WebhookInbox<E>> {
    const { attempts = 5, backoffMs = 1_000, closeTimeoutMs, commandTimeoutMs } = options
    positiveInteger(attempts, 'attempts')
    positiveInteger(backoffMs, 'backoffMs', 0)
    if (closeTimeoutMs !== undefined) positiveInteger(closeTimeoutMs, 'closeTimeoutMs', 0)
    if (commandTimeoutMs !== undefined) positiveInteger(commandTimeoutMs, 'commandTimeoutMs')
    const startWorker = options.worker === false ? undefined : InboxWorker.prepare(options)
    const { Queue } = await import('bullmq')
    const resources = new InboxResources(options.connection, options.log ?? console, { closeTimeoutMs, commandTimeoutMs })
    try {
      const producer = await resources.connect('producer')
      const queue = new Queue<InboxEvent>(options.queueName ?? DEFAULT_QUEUE_NAME, {
        connection: producer,
        defaultJobOptions: {
          attempts,
          backoff: { type: 'exponential', delay: backoffMs },
          removeOnComplete: { age: KEEP_COMPLETED_SECONDS },
          removeOnFail: false
        }
      })
      resources.onClose(() => queue.close())
      queue.on('error', resources.report)
      await queue.waitUntilReady()
      if (startWorker !== undefined) {
        const worker = await startWorker()
        resources.onClose(() => worker.close())
      }
      return new WebhookInbox(queue, producer, resources)
    } catch (err) {
      await resources.close()
      throw err
    }
  }

  /**
   * Stores `event` as the job named by its id. Rejects at once while Redis is unreachable;
   * the route then answers 503 so that Customer.io sends the event again.
   */
  async add (event: E): Promise<InboxAddResult> {
    const jobId = inboxJobId(event.event_id)
    // BullMQ answers a duplicate exactly like a new job. The job's name is never used otherwise,
    // so each call names its job with a nonce: the name stored is the nonce of the call that
    // created the job, which is exact however many instances add the same event at once.
    const nonce = randomUUID()
    await this.#queue.add(nonce, event, { jobId })
    return await this.#producer.hget(this.#queue.toKey(jobId), 'name') === nonce ? 'added' : 'duplicate'
  }

  /** Jobs per state, for the `cio_webhook_inbox_jobs{state}` gauge. */
  async counts (): Promise<InboxCounts> {
    const { waiting, active, delayed, failed } = await this.#queue.getJobCounts('waiting', 'active', 'delayed', 'failed')
    return { waiting, active, delayed, failed }
  }

  /** Closes the worker first (its active jobs finish, unless Redis is down), then the queue, then the connections, within `closeTimeoutMs`. */
  close (): Promise<void> {
    return this.#resources.close()
  }
}
