import type { FastifyBaseLogger } from 'fastify'
import type { BatchItem } from 'customerio-node'
import { CioInvalidOperationError } from '../errors.ts'
import type { MetricFactory } from '../monitoring/metrics.ts'
import { sanitize } from '../monitoring/sanitize.ts'
import { systemClock, type Clock } from '../timers.ts'
import { DIALECTS, type Dialect, type QueueEvent } from './dialects.ts'
import { ENVELOPE_BYTES, refusalErrors, refusedIndexes } from './batch.ts'
import { createQueueMetrics, type QueueMetrics } from './metrics.ts'
import type { BatchOperation, DropReason, QueueItem, QueueSettings } from './options.ts'
import { isTransient, retryAfterMs, retryDelay } from './retry.ts'

/** A queued operation, its size, and when it was queued (a partial batch goes once its oldest has waited the flush interval). */
interface Entry { readonly op: QueueItem, readonly bytes: number, readonly at: number }

/** A batch being sent; `handedOver` once close() gave it to onDrop at the deadline, so its late outcome is ignored. */
interface Batch { readonly entries: Entry[], handedOver: boolean }

/** The SDK's Track or Pipelines `batch()`; a method type, so one typed for either API's operations fits. */
interface Sender { send (operations: QueueItem[]): Promise<unknown> }
type Send = Sender['send']
type Id = string | number

/**
 * Fire-and-forget calls: `fastify.cio.queue`. Operations (the `settings.api` dialect makes them)
 * wait in a bounded FIFO and go out through that API's `batch()` in the instrumented `fastify.cio`,
 * one batch at a time so order is kept. Enqueueing never awaits the network: it answers `true`
 * when the operation was accepted and `false` when it was dropped; every drop is counted, logged
 * and handed to `onDrop`.
 *
 * Liveness invariant: while the queue holds operations and has not expired, exactly one of
 * these holds: a batch is in flight, or the timer is armed. `#reconcile()` is the only place
 * that decides the next wake-up, and every change of state ends in it. A timer may fire early
 * or late, so when it fires the queue checks the time again and re-arms if it is too soon.
 */
export class CioQueue {
  readonly #settings: QueueSettings
  readonly #send: Send
  readonly #dialect: Dialect
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
    this.#dialect = DIALECTS[settings.api]
    this.#metrics = createQueueMetrics(metrics, settings.api, settings.maxSize, () => this.depth)
    this.#log = log
    this.#clock = clock
    this.#random = random
  }

  /** Operations waiting to be sent (a batch being sent is not counted). */
  get depth (): number {
    return this.#entries.length - this.#head + (this.#retry?.length ?? 0)
  }

  // Over Data Pipelines, destroy, suppress, unsuppress, addDevice and deleteDevice throw; over Track, group and alias.
  identify (id: Id, attributes: Record<string, unknown> = {}): boolean { return this.#enqueue(this.#dialect.identify(id, attributes)) }
  track (id: Id, event: QueueEvent): boolean { return this.#enqueue(this.#dialect.track(id, event)) }
  trackAnonymous (anonymousId: Id, event: QueueEvent): boolean { return this.#enqueue(this.#dialect.trackAnonymous(anonymousId, event)) }
  trackPageView (id: Id, path: string): boolean { return this.#enqueue(this.#dialect.trackPageView(id, path)) }
  destroy (id: Id): boolean { return this.#enqueue(this.#dialect.destroy(id)) }
  suppress (id: Id): boolean { return this.#enqueue(this.#dialect.suppress(id)) }
  unsuppress (id: Id): boolean { return this.#enqueue(this.#dialect.unsuppress(id)) }
  addDevice (id: Id, deviceId: string, platform: string, data: Record<string, unknown> = {}): boolean { return this.#enqueue(this.#dialect.addDevice(id, deviceId, platform, data)) }
  deleteDevice (id: Id, deviceId: string): boolean { return this.#enqueue(this.#dialect.deleteDevice(id, deviceId)) }
  group (id: Id, groupId: Id, traits?: Record<string, unknown>): boolean { return this.#enqueue(this.#dialect.group(id, groupId, traits)) }
  alias (id: Id, previousId: Id): boolean { return this.#enqueue(this.#dialect.alias(id, previousId)) }

  /**
   * Queues a Track v2 batch operation, or over Data Pipelines a batch item. Throws
   * `FST_CIO_INVALID_OPERATION` for one that is not. An event (a Track `event`, `page` or
   * `screen`; every Pipelines item) gets a ULID `id` / `messageId` unless it has one, so a
   * re-sent batch never records it twice.
   */
  enqueue (operation: BatchOperation | BatchItem): boolean { return this.#enqueue(operation) }

  #enqueue (operation: unknown): boolean {
    const op = this.#dialect.prepare(operation)
    let bytes: number
    try {
      bytes = Buffer.byteLength(JSON.stringify(op)) + this.#dialect.addedBytes
    } catch {
      throw new CioInvalidOperationError('the operation cannot be serialised to JSON')
    }
    if (bytes > this.#dialect.maxItemBytes) return this.#drop([op], 'too_large')
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
    const rejected = refusedIndexes(result)
    if (rejected.size > 0) {
      this.#log.warn({ rejected: rejected.size, errors: sanitize(refusalErrors(result)) }, 'customer.io rejected queued operations')
      this.#drop(operations.filter((_, i) => rejected.has(i)), 'rejected')
    }
    this.#metrics.sent(operations.length - rejected.size)
  }

  #drop (operations: QueueItem[], reason: DropReason): false {
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
