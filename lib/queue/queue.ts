import type { FastifyBaseLogger } from 'fastify'
import { CioInvalidOperationError } from '../errors.ts'
import { withEventId } from '../client/event-id.ts'
import type { MetricFactory } from '../monitoring/metrics.ts'
import { sanitize } from '../monitoring/sanitize.ts'
import { systemClock, type Clock } from '../timers.ts'
import { createQueueMetrics, type QueueMetrics } from './metrics.ts'
import type { BatchOperation, DropReason, QueueSettings } from './options.ts'
import { isTransient, retryAfterMs, retryDelay } from './retry.ts'

/** Customer.io refuses a Track v2 operation over 32 KB (customerio-facts §3.3). */
const MAX_OPERATION_BYTES = 32 * 1024
/** `{"batch":[` … `]}` around the operations, and the commas between them. */
const ENVELOPE_BYTES = 12

/** A queued operation, its size, and when it was queued (a partial batch goes once its oldest has waited the flush interval). */
interface Entry { readonly op: BatchOperation, readonly bytes: number, readonly at: number }

/** A batch being sent; `handedOver` once close() gave it to onDrop at the deadline, so its late outcome is ignored. */
interface Batch { readonly entries: Entry[], handedOver: boolean }

/** Track v2 actions that record an event, and so carry an idempotency `id`. */
const EVENT_ACTIONS = new Set(['event', 'page', 'screen'])

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
 *
 * Liveness invariant: while the queue holds operations and has not expired, exactly one of
 * these holds: a batch is in flight, or the timer is armed. `#reconcile()` is the only place
 * that decides the next wake-up, and every change of state ends in it. A timer may fire early
 * or late, so when it fires the queue checks the time again and re-arms if it is too soon.
 */
export class CioQueue {
  readonly #settings: QueueSettings
  readonly #send: Send
  readonly #metrics: QueueMetrics
  readonly #log: FastifyBaseLogger
  readonly #clock: Clock
  readonly #random: () => number
  #entries: Entry[] = []
  #head = 0
  /** A failed batch, re-sent before anything newer so order is kept across an outage. */
  #retry: Entry[] | undefined
  /** Consecutive failed sends, for the backoff; 0 after a success. */
  #failures = 0
  /** When the next send may start (the backoff after a failure). */
  #notBefore = 0
  #inFlight: Batch | undefined
  #timer: unknown
  /** When the armed timer is meant to fire. */
  #timerDue = 0
  /** flush() calls waiting: partial batches go at once, and the timer holds the process open. */
  #flushing = 0
  /** Resolved once nothing is left to send, or at the close deadline. */
  #idle: Array<() => void> = []
  #closed = false
  /** Set when close() reached its deadline: everything still here was handed to onDrop. */
  #expired = false
  readonly #dropLog = new Map<DropReason, { at: number, unlogged: number }>()

  constructor (settings: QueueSettings, send: Send, metrics: MetricFactory, log: FastifyBaseLogger, clock: Clock = systemClock, random = Math.random) {
    this.#settings = settings
    this.#send = send
    this.#metrics = createQueueMetrics(metrics, 'track', settings.maxSize, () => this.depth)
    this.#log = log
    this.#clock = clock
    this.#random = random
  }

  /** Operations waiting to be sent (a batch being sent is not counted). */
  get depth (): number {
    return this.#entries.length - this.#head + (this.#retry?.length ?? 0)
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

  /**
   * Queues any Track v2 batch operation. Throws `FST_CIO_INVALID_OPERATION` for one that is
   * not. An event (`event`, `page`, `screen`) gets a ULID `id` unless it has one, so a
   * re-sent batch never records it twice.
   */
  enqueue (operation: BatchOperation): boolean {
    if (typeof operation !== 'object' || operation === null || typeof operation.type !== 'string' || typeof operation.action !== 'string') {
      throw new CioInvalidOperationError('an operation needs string "type" and "action"')
    }
    const op = EVENT_ACTIONS.has(operation.action) ? withEventId(operation) : operation
    let bytes: number
    try {
      bytes = Buffer.byteLength(JSON.stringify(op))
    } catch {
      throw new CioInvalidOperationError('the operation cannot be serialised to JSON')
    }
    if (bytes > MAX_OPERATION_BYTES) return this.#drop([op], 'too_large')
    if (this.#closed) return this.#drop([op], 'shutdown')
    if (this.depth >= this.#settings.maxSize) return this.#drop([op], 'overflow')
    this.#entries.push({ op, bytes, at: this.#clock.now() })
    this.#reconcile()
    return true
  }

  /**
   * Sends everything queued now, waiting out the backoff after a failure; resolves when
   * each operation was sent or dropped (during an outage, when it is over).
   */
  async flush (): Promise<void> {
    if (this.#drained()) return
    this.#flushing++
    try {
      await new Promise<void>((resolve) => {
        this.#idle.push(resolve)
        this.#reconcile()
      })
    } finally {
      this.#flushing--
    }
  }

  /**
   * Flushes within `shutdownTimeoutMs`. At the deadline everything not yet sent, the batch
   * in flight included, is handed to `onDrop(…, 'shutdown')` and counted, so what was
   * accepted is, when this resolves, either sent or handed over.
   */
  async close (): Promise<void> {
    this.#closed = true
    let deadline: unknown
    const expired = new Promise<true>((resolve) => { deadline = this.#clock.setTimeout(() => resolve(true), this.#settings.shutdownTimeoutMs) })
    if (await Promise.race([this.flush().then(() => false), expired])) this.#expire()
    this.#clock.clearTimeout(deadline)
  }

  #drained (): boolean {
    return this.#expired || (this.depth === 0 && this.#inFlight === undefined)
  }

  /** When the next batch may start: after any backoff, and a partial batch once its oldest operation has waited the flush interval. */
  #dueAt (now: number): number {
    const ready = this.#retry !== undefined || this.#flushing > 0 || this.#closed || this.depth >= this.#settings.batchSize
    return Math.max(this.#notBefore, ready ? now : this.#entries[this.#head].at + this.#settings.flushIntervalMs)
  }

  /** Decides the next wake-up (see the invariant above); called at the end of every change of state. */
  #reconcile (): void {
    if (this.#drained()) {
      this.#disarm()
      for (const resolve of this.#idle.splice(0)) resolve()
      return
    }
    if (this.#inFlight !== undefined) return
    const due = this.#dueAt(this.#clock.now())
    if (this.#timer === undefined || due < this.#timerDue) {
      this.#disarm()
      this.#timerDue = due
      this.#timer = this.#clock.setTimeout(() => this.#wake(), Math.max(0, due - this.#clock.now()))
    }
    // An idle timer never holds the process open; one that a flush() or close() waits on does.
    const handle = this.#timer as { ref?: () => void, unref?: () => void }
    if (this.#flushing > 0) handle.ref?.()
    else handle.unref?.()
  }

  #disarm (): void {
    this.#clock.clearTimeout(this.#timer)
    this.#timer = undefined
  }

  /** The timer fired: start the next batch if it is due (a timer may fire early), else arm again. */
  #wake (): void {
    this.#timer = undefined
    if (this.#inFlight === undefined && !this.#drained() && this.#clock.now() >= this.#dueAt(this.#clock.now())) this.#start()
    this.#reconcile()
  }

  /** Takes the next batch off the front: at most `count` operations and `bytes` bytes. */
  #take (count: number, bytes: number): Entry[] {
    const taken: Entry[] = this.#retry ?? []
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

  #start (): void {
    const batch: Batch = { entries: this.#take(this.#settings.batchSize, this.#settings.maxBatchBytes), handedOver: false }
    this.#inFlight = batch
    // Never rejects: a failed send is retried or dropped inside #sendBatch.
    this.#sendBatch(batch).then(() => {
      this.#inFlight = undefined
      this.#reconcile()
    })
  }

  /** At the close deadline: everything left, the batch in flight first, is handed to onDrop. */
  #expire (): void {
    this.#expired = true
    const batch = this.#inFlight
    if (batch !== undefined) batch.handedOver = true
    const left = [...(batch?.entries ?? []), ...this.#take(Infinity, Infinity)]
    if (left.length > 0) this.#drop(left.map((e) => e.op), 'shutdown')
    this.#reconcile()
  }

  async #sendBatch (batch: Batch): Promise<void> {
    const { entries } = batch
    const operations = entries.map((e) => e.op)
    let result: unknown
    try {
      result = await this.#send(operations)
    } catch (err) {
      if (batch.handedOver) return
      if (!isTransient(err)) {
        this.#log.error({ err, operations: operations.length }, 'customer.io refused a queued batch')
        this.#drop(operations, 'rejected')
        return
      }
      // Back to the front, so order is kept across an outage of any length.
      this.#failures++
      this.#retry = entries
      this.#notBefore = this.#clock.now() + retryDelay(this.#settings, this.#failures, retryAfterMs(err, this.#clock.now()), this.#random)
      this.#metrics.retried()
      this.#log.warn({ err, operations: operations.length, failures: this.#failures }, 'customer.io queue batch failed; it will be sent again')
      return
    }
    if (batch.handedOver) return
    this.#failures = 0
    const errors = (result as { errors?: Array<{ batch_index?: unknown, reason?: unknown }> } | undefined)?.errors
    const rejected = new Set<number>()
    if (Array.isArray(errors)) {
      for (const error of errors) if (Number.isInteger(error.batch_index)) rejected.add(error.batch_index as number)
    }
    if (rejected.size > 0) {
      this.#log.warn({ rejected: rejected.size, errors: sanitize(errors) }, 'customer.io rejected queued operations')
      this.#drop(operations.filter((_, i) => rejected.has(i)), 'rejected')
    }
    this.#metrics.sent(operations.length - rejected.size)
  }

  #drop (operations: BatchOperation[], reason: DropReason): false {
    this.#metrics.dropped(reason, operations.length)
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
    const now = this.#clock.now()
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
