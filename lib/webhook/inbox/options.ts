/*
 * The inbox's options, in a file of their own that names neither ioredis nor BullMQ: the
 * plugin's types then compile in apps that install neither.
 */

/** What the inbox needs of an event: its id, which names its job. */
export interface InboxEvent { readonly event_id: string }

/** What the inbox tells about a job (BullMQ's `Job`, passed as it is, has these and more). */
export interface InboxJob {
  /** The job id: the event's `event_id`, encoded by `inboxJobId`. */
  readonly id?: string
  /** When the job was stored (ms since the epoch): when the route received the event. */
  readonly timestamp: number
  /** Attempts that ended so far, successful or not. */
  readonly attemptsMade: number
  /** When its last attempt started and, once it is completed or failed for good, when that was (ms). */
  readonly processedOn?: number
  readonly finishedOn?: number
}

/**
 * An ioredis instance the app made. The inbox never sends a command on it nor closes it: it
 * opens connections of its own with `duplicate()` (same host, auth, TLS, db), each with the
 * options its role needs, and closes those.
 */
export interface InboxRedisTemplate {
  duplicate: (override: { enableOfflineQueue?: boolean, maxRetriesPerRequest?: number | null, commandTimeout?: number, disconnectTimeout?: number }) => { disconnect: () => void }
}

/**
 * Where the inbox's Redis is: a URL (`redis://…`, `rediss://…`), ioredis options
 * (`RedisOptions`, typed loosely so that these types need no ioredis) or an ioredis instance.
 */
export type InboxConnection = string | InboxRedisTemplate | object

/** Where BullMQ's errors go: pino, `fastify.log` or `console` fit. */
export interface InboxLog {
  error: (details: { err: Error }, message: string) => void
}

/** What the producer side and the worker side of an inbox both take. */
export interface InboxBaseOptions {
  connection: InboxConnection
  /** BullMQ queue name: every instance sharing the inbox uses the same one. Default `'customerio-webhooks'`. */
  queueName?: string
  /** Default `console`. */
  log?: InboxLog
  /**
   * How long closing may wait for active jobs and for Redis; past it the connections are cut,
   * so a hung Redis never holds a shutdown. Default 5 000.
   */
  closeTimeoutMs?: number
}

export const DEFAULT_QUEUE_NAME = 'customerio-webhooks'

export interface InboxProducerOptions extends InboxBaseOptions {
  /** Attempts per event, the first included. Default 5. */
  attempts?: number
  /** The first retry's delay, doubled for each later one (1, 2, 4, 8 s by default). Default 1 000. */
  backoffMs?: number
  /** How long one Redis command of `add` or `counts` may take before it fails, as while Redis hangs. Default 3 000. */
  commandTimeoutMs?: number
}

export interface InboxWorkerOptions<E extends InboxEvent = InboxEvent> extends InboxBaseOptions {
  /** Handles one event; a throw or a rejection fails this attempt, and the job is retried while attempts remain. */
  process: (event: E, job: InboxJob) => void | Promise<void>
  /** Jobs this worker runs at once. Default 1. */
  concurrency?: number
  /** Called once per job that completed (the job is in the completed set by then). A throw is logged. */
  onCompleted?: (event: E, job: InboxJob) => void
  /** Called once per job that failed for good: its last attempt failed (it stays in the failed set). A throw is logged. */
  onFailed?: (event: E, err: Error, job: InboxJob) => void
  /**
   * How long a job stays this worker's without a renewal (it renews at half that). A worker that
   * died loses its jobs after this long; another worker's stalled check then runs them. Default 30 000.
   */
  lockDurationMs?: number
  /**
   * How often this worker looks for jobs whose worker died. The workers of a queue share one
   * throttle for that check, so give them all the same value. Default 30 000.
   */
  stalledIntervalMs?: number
}

/**
 * `worker: false` for instances that only receive webhooks, when the workers run elsewhere
 * (`InboxWorker.start`); otherwise the inbox also runs a worker, with its options.
 */
export type InboxOptions<E extends InboxEvent = InboxEvent> = InboxProducerOptions &
  ({ worker: false } | ({ worker?: true } & InboxWorkerOptions<E>))

export function positiveInteger (value: number, name: string, min = 1): number {
  if (!Number.isInteger(value) || value < min) throw new RangeError(`inbox ${name} must be an integer ≥ ${min}`)
  return value
}
