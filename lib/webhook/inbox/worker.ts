import { once } from 'node:events'
import type { Job } from 'bullmq'
import { DEFAULT_QUEUE_NAME, positiveInteger, type InboxEvent, type InboxWorkerOptions } from './options.ts'
import { InboxResources } from './redis.ts'

/**
 * Runs the inbox's jobs: `process(event)` for each, with the attempts and backoff the producer
 * stored with it. `WebhookInbox` starts one unless `worker: false`; an app that runs its workers
 * in a separate process starts them there with {@link InboxWorker.start}.
 */
export class InboxWorker {
  readonly #resources: InboxResources

  private constructor (resources: InboxResources) {
    this.#resources = resources
  }

  static async start<E extends InboxEvent = InboxEvent> (options: InboxWorkerOptions<E>): Promise<InboxWorker> {
    return await InboxWorker.prepare(options)()
  }

  /**
   * Checks `options` and returns what starts the worker, so that `WebhookInbox` refuses bad
   * options before it opens anything.
   */
  static prepare<E extends InboxEvent = InboxEvent> (options: InboxWorkerOptions<E>): () => Promise<InboxWorker> {
    const { process: handle, onCompleted, onFailed, concurrency = 1, lockDurationMs = 30_000, stalledIntervalMs = 30_000 } = options
    positiveInteger(concurrency, 'concurrency')
    positiveInteger(lockDurationMs, 'lockDurationMs')
    positiveInteger(stalledIntervalMs, 'stalledIntervalMs')
    if (options.closeTimeoutMs !== undefined) positiveInteger(options.closeTimeoutMs, 'closeTimeoutMs', 0)
    return async () => {
      // Loaded only now: an app that never opens an inbox needs no BullMQ.
      const { Worker } = await import('bullmq')
      const resources = new InboxResources(options.connection, options.log ?? console, { closeTimeoutMs: options.closeTimeoutMs })
      try {
        const connection = await resources.connect('worker')
        const worker = new Worker<E>(options.queueName ?? DEFAULT_QUEUE_NAME, async (job) => { await handle(job.data, job) }, {
          connection, concurrency, lockDuration: lockDurationMs, stalledInterval: stalledIntervalMs
        })
        // The active jobs may finish first, unless Redis is gone or goes while they do: they could
        // never report back then, and are left to the stalled check of the next worker. A Redis
        // that hangs instead is cut off at the close bound (InboxResources.close).
        resources.onClose(async () => {
          if (connection.status === 'ready') await Promise.race([worker.pause(), once(connection, 'close'), resources.cut])
          await worker.close(true)
        })
        worker.on('error', resources.report)
        if (onCompleted !== undefined) worker.on('completed', (job: Job<E>) => onCompleted(job.data, job))
        if (onFailed !== undefined) {
          // 'failed' follows every failed attempt; only the last one sets finishedOn. The job is
          // there: BullMQ leaves it out only for a job that the failure removed, and failed jobs are kept.
          worker.on('failed', (job: Job<E> | undefined, err: Error) => {
            if (job!.finishedOn !== undefined) onFailed(job!.data, err, job!)
          })
        }
        await worker.waitUntilReady()
        return new InboxWorker(resources)
      } catch (err) {
        await resources.close()
        throw err
      }
    }
  }

  /** Lets the active jobs finish (unless Redis is down), then closes the worker and its connections, within `closeTimeoutMs`. */
  close (): Promise<void> {
    return this.#resources.close()
  }
}
