import type { FastifyBaseLogger } from 'fastify'
import { CioInvalidOperationError } from '../errors.ts'
import { sanitize } from '../redact.ts'
import type { MetricFactory } from '../metrics.ts'
import { createQueueMetrics, type QueueMetrics } from './metrics.ts'
import type { BatchOperation, DropReason, QueueSettings } from './options.ts'

/** Customer.io refuses a Track v2 operation over 32 KB (customerio-facts §3.3). */
const MAX_OPERATION_BYTES = 32 * 1024
/** `{"batch":[` … `]}` around the operations, and the commas between them. */
const ENVELOPE_BYTES = 12

interface Entry { readonly op: BatchOperation, readonly bytes: number }
interface Batch { readonly entries: Entry[], attempts: number }

type Send = (operations: BatchOperation[]) => Promise<unknown>
type Id = string | number

function requireId (id: unknown, what: string): void {
  if ((typeof id !== 'string' && typeof id !== 'number') || id === '') throw new CioInvalidOperationError(`${what} needs ${what === 'trackAnonymous' ? 'an anonymous' : 'a customer'} id`)
}

function person (id: Id, action: string, extra: Record<string, unknown> = {}): BatchOperation {
  requireId(id, action)
  return { type: 'person', identifiers: { id }, action, ...extra }
}

function named (value: unknown, action: string): { name: string, data?: Record<string, unknown>, timestamp?: number } {
  const event = value as { name?: unknown } | undefined
  if (typeof event?.name !== 'string' || event.name === '') throw new CioInvalidOperationError(`${action} needs data.name`)
  return value as { name: string }
}

/**
 * Fire-and-forget Track calls: `fastify.cio.queue`. Operations wait in a bounded FIFO and go
 * out through the SDK's `batch()` (so through the instrumented `fastify.cio`), one batch at
 * a time so order is kept. Enqueueing never awaits the network: it answers `true` when the
 * operation was accepted and `false` when it was dropped; every drop is counted, logged and
 * handed to `onDrop`.
 */
export class CioQueue {
  readonly #settings: QueueSettings
  readonly #send: Send
  readonly #metrics: QueueMetrics
  readonly #log: FastifyBaseLogger
  #entries: Entry[] = []
  #head = 0
  #retry: Batch | undefined
  #sending: Promise<void> | undefined
  #timer: NodeJS.Timeout | undefined
  #closed = false
  /** Set when close() gave up waiting: a batch that fails after that is dropped, not retried. */
  #expired = false
  readonly #dropLog = new Map<DropReason, { at: number, unlogged: number }>()

  constructor (settings: QueueSettings, send: Send, metrics: MetricFactory, log: FastifyBaseLogger) {
    this.#settings = settings
    this.#send = send
    this.#metrics = createQueueMetrics(metrics, () => this.depth)
    this.#log = log
    this.#metrics.capacity.set({ queue: 'track' }, settings.maxSize)
  }

  /** Operations waiting to be sent (a batch being sent is not counted). */
  get depth (): number {
    return this.#entries.length - this.#head + (this.#retry?.entries.length ?? 0)
  }

  identify (id: Id, attributes: Record<string, unknown> = {}): boolean {
    return this.enqueue(person(id, 'identify', { attributes }))
  }

  track (id: Id, event: { name: string, data?: Record<string, unknown>, timestamp?: number }): boolean {
    const { name, data, timestamp } = named(event, 'track')
    return this.enqueue(person(id, 'event', { name, attributes: data ?? {}, ...(timestamp === undefined ? {} : { timestamp }) }))
  }

  trackAnonymous (anonymousId: Id, event: { name: string, data?: Record<string, unknown>, timestamp?: number }): boolean {
    const { name, data, timestamp } = named(event, 'trackAnonymous')
    requireId(anonymousId, 'trackAnonymous')
    return this.enqueue({ type: 'person', action: 'event', anonymous_id: anonymousId, name, attributes: data ?? {}, ...(timestamp === undefined ? {} : { timestamp }) })
  }

  trackPageView (id: Id, path: string): boolean {
    if (typeof path !== 'string' || path === '') throw new CioInvalidOperationError('trackPageView needs a path')
    return this.enqueue(person(id, 'page', { name: path }))
  }

  destroy (id: Id): boolean { return this.enqueue(person(id, 'delete')) }
  suppress (id: Id): boolean { return this.enqueue(person(id, 'suppress')) }
  unsuppress (id: Id): boolean { return this.enqueue(person(id, 'unsuppress')) }

  addDevice (id: Id, deviceId: string, platform: string, data: Record<string, unknown> = {}): boolean {
    if (typeof deviceId !== 'string' || deviceId === '') throw new CioInvalidOperationError('addDevice needs a device id')
    if (typeof platform !== 'string' || platform === '') throw new CioInvalidOperationError('addDevice needs a platform')
    return this.enqueue(person(id, 'add_device', { device: { token: deviceId, platform, attributes: data } }))
  }

  deleteDevice (id: Id, deviceId: string): boolean {
    if (typeof deviceId !== 'string' || deviceId === '') throw new CioInvalidOperationError('deleteDevice needs a device id')
    return this.enqueue(person(id, 'delete_device', { device: { token: deviceId } }))
  }

  /** Queues any Track v2 batch operation. Throws `FST_CIO_INVALID_OPERATION` for one that is not. */
  enqueue (op: BatchOperation): boolean {
    if (typeof op !== 'object' || op === null || typeof op.type !== 'string' || typeof op.action !== 'string') {
      throw new CioInvalidOperationError('an operation needs string "type" and "action"')
    }
    let bytes: number
    try {
      bytes = Buffer.byteLength(JSON.stringify(op))
    } catch {
      throw new CioInvalidOperationError('the operation cannot be serialised to JSON')
    }
    if (bytes > MAX_OPERATION_BYTES) return this.#drop([op], 'too_large')
    if (this.#closed) return this.#drop([op], 'shutdown')
    if (this.depth >= this.#settings.maxSize) return this.#drop([op], 'overflow')
    this.#entries.push({ op, bytes })
    if (this.depth >= this.#settings.batchSize) this.#schedule(0)
    else if (this.#timer === undefined) this.#schedule(this.#settings.flushIntervalMs)
    return true
  }

  /** Sends everything queued now; resolves when each operation was sent or dropped. */
  async flush (): Promise<void> {
    while (this.depth > 0 || this.#sending !== undefined) await this.#pump()
  }

  /** Flushes within `shutdownTimeoutMs`; what is left is dropped with reason `shutdown`. */
  async close (): Promise<void> {
    this.#closed = true
    clearTimeout(this.#timer)
    this.#timer = undefined
    let timeout: NodeJS.Timeout | undefined
    const deadline = new Promise<'timeout'>((resolve) => { timeout = setTimeout(resolve, this.#settings.shutdownTimeoutMs, 'timeout') })
    const outcome = await Promise.race([this.flush().then(() => 'flushed' as const), deadline])
    clearTimeout(timeout)
    if (outcome === 'timeout') {
      this.#expired = true
      const left = this.#take(Infinity, Infinity)
      if (left.length > 0) this.#drop(left.map((e) => e.op), 'shutdown')
    }
  }

  #schedule (delay: number): void {
    if (this.#closed) return
    clearTimeout(this.#timer)
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      // Never rejects: a failed send is handled (retried or dropped) inside #sendBatch.
      this.#pump()
    }, delay)
    this.#timer.unref()
  }

  /** Takes the next batch off the front: at most `count` operations and `bytes` bytes. */
  #take (count: number, bytes: number): Entry[] {
    const taken: Entry[] = this.#retry?.entries ?? []
    this.#retry = undefined
    let size = taken.reduce((sum, e) => sum + e.bytes + 1, ENVELOPE_BYTES)
    while (this.#head < this.#entries.length && taken.length < count) {
      const next = this.#entries[this.#head]
      if (taken.length > 0 && size + next.bytes + 1 > bytes) break
      taken.push(next)
      size += next.bytes + 1
      this.#head++
    }
    // Compact now and then, so taking from the front stays O(1) amortised.
    if (this.#head > 1024 && this.#head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head)
      this.#head = 0
    }
    return taken
  }

  /** Sends one batch if none is in flight; otherwise waits for the one that is. */
  async #pump (): Promise<void> {
    if (this.#sending !== undefined) return this.#sending
    const attempts = this.#retry?.attempts ?? 0
    const entries = this.#take(this.#settings.batchSize, this.#settings.maxBatchBytes)
    if (entries.length === 0) return
    this.#sending = this.#sendBatch({ entries, attempts }).finally(() => { this.#sending = undefined })
    await this.#sending
    // After a failure wait a flush interval; a full batch goes now; a partial one waits.
    if (this.depth > 0) this.#schedule(this.#retry === undefined && this.depth >= this.#settings.batchSize ? 0 : this.#settings.flushIntervalMs)
  }

  async #sendBatch (batch: Batch): Promise<void> {
    const operations = batch.entries.map((e) => e.op)
    let result: unknown
    try {
      result = await this.#send(operations)
    } catch (err) {
      batch.attempts++
      if (this.#expired || batch.attempts >= this.#settings.maxAttempts) {
        this.#log.error({ err, operations: operations.length, attempts: batch.attempts }, 'customer.io queue batch failed for good')
        this.#drop(operations, this.#expired ? 'shutdown' : 'exhausted')
      } else {
        // Back to the front, so order is kept across an outage.
        this.#retry = batch
      }
      return
    }
    const errors = (result as { errors?: Array<{ batch_index?: unknown, reason?: unknown }> } | undefined)?.errors
    const rejected = new Set<number>()
    if (Array.isArray(errors)) {
      for (const error of errors) if (Number.isInteger(error.batch_index)) rejected.add(error.batch_index as number)
    }
    if (rejected.size > 0) {
      this.#log.warn({ rejected: rejected.size, errors: sanitize(errors) }, 'customer.io rejected queued operations')
      this.#drop(operations.filter((_, i) => rejected.has(i)), 'rejected')
    }
    this.#metrics.sent.inc({ queue: 'track' }, operations.length - rejected.size)
  }

  #drop (operations: BatchOperation[], reason: DropReason): false {
    this.#metrics.dropped.inc({ queue: 'track', reason }, operations.length)
    this.#logDrop(reason, operations.length)
    try {
      this.#settings.onDrop?.(operations, reason)
    } catch (err) {
      this.#log.error({ err }, 'customer.io queue onDrop failed')
    }
    return false
  }

  /**
   * One warning per reason per second at most, with the count since the last one: a burst
   * that overflows the queue must not become a burst of log lines.
   */
  #logDrop (reason: DropReason, count: number): void {
    const now = Date.now()
    const state = this.#dropLog.get(reason) ?? { at: -Infinity, unlogged: 0 }
    state.unlogged += count
    if (now - state.at >= 1000) {
      this.#log.warn({ reason, operations: state.unlogged }, 'customer.io queue dropped operations')
      state.at = now
      state.unlogged = 0
    }
    this.#dropLog.set(reason, state)
  }
}
