import type { FastifyBaseLogger } from 'fastify'
import { CHANNELS, RECEIPT_CHANNELS, type Channel } from '../../labels.ts'
import type { MetricFactory } from '../../monitoring/metrics.ts'
import { systemClock, within, type Clock } from '../../timers.ts'
import type { ReadEvent } from '../events.ts'
import { MemoryDeliveryStore } from './memory-store.ts'
import type { DeliverySettings } from './options.ts'
import type { DeliveryEvent, DeliveryStore } from './store.ts'

/** Metrics that begin a delivery; the earliest known is its beginning. */
const BEGINNINGS: ReadonlySet<string> = new Set(['drafted', 'attempted', 'sent'])
/** Metrics that settle whether the message arrived. */
const OUTCOMES: ReadonlySet<string> = new Set(['delivered', 'bounced', 'failed', 'dropped', 'undeliverable'])
/** `metric` of the latency histogram: each one's first event is measured from the beginning. */
export const LATENCY_METRICS = ['sent', 'delivered', 'opened', 'clicked', 'converted', 'bounced', 'failed', 'dropped', 'undeliverable', 'spammed'] as const
const MEASURED: ReadonlySet<string> = new Set(LATENCY_METRICS)
/** How long close() waits for a sweep under way. */
const CLOSE_WAIT_MS = 1_000
/** 1 s to a day. */
const BUCKETS = [1, 2, 5, 10, 30, 60, 120, 300, 600, 1_800, 3_600, 7_200, 21_600, 43_200, 86_400]

/**
 * Joins sends and their webhook events by `delivery_id` in a {@link DeliveryStore}: how long
 * after its beginning each first event of a metric came (`cio_delivery_latency_seconds`), and
 * which deliveries reached no outcome within the window (`cio_delivery_unconfirmed_total`),
 * counted once across instances. A store that fails never fails a send or a webhook answer:
 * it is counted and logged.
 */
export class DeliveryTracker {
  readonly #settings: DeliverySettings
  readonly #store: DeliveryStore
  readonly #log: FastifyBaseLogger
  readonly #clock: Clock
  readonly #metrics
  readonly #sweepMs: number
  #timer: unknown
  #sweeping: Promise<void> = Promise.resolve()
  #failing = false

  constructor (settings: DeliverySettings, factory: MetricFactory, log: FastifyBaseLogger, clock: Clock = systemClock) {
    this.#settings = settings
    const evicted = factory.counter('cio_delivery_evicted_total', 'Deliveries the memory store forgot for room, before their time was up.')
    evicted.inc(0)
    const { store } = settings
    this.#store = 'record' in store ? store : new MemoryDeliveryStore({ size: store.size, onEvict: () => { evicted.inc() } })
    this.#log = log
    this.#clock = clock
    const latency = factory.histogram('cio_delivery_latency_seconds', 'Time from a delivery\'s beginning to the first event of each metric.', ['channel', 'metric'], BUCKETS)
    const started = factory.counter('cio_delivery_started_total', 'Deliveries whose beginning was seen (a send through fastify.cio, or drafted, attempted, sent).', ['channel'])
    const unconfirmed = factory.counter('cio_delivery_unconfirmed_total', 'Deliveries that reached no outcome within the confirmation window.', ['channel'])
    const storeErrors = factory.counter('cio_delivery_store_errors_total', 'Delivery store calls that failed.')
    for (const channel of CHANNELS) {
      started.inc({ channel }, 0)
      if (RECEIPT_CHANNELS.has(channel)) unconfirmed.inc({ channel }, 0)
    }
    storeErrors.inc(0)
    this.#metrics = { latency, started, unconfirmed, storeErrors }
    this.#sweepMs = Math.min(10_000, Math.max(250, settings.confirmWithinSeconds * 100))
    this.#arm()
  }

  /** A send through `fastify.cio` answered with this delivery id: the delivery began now. */
  sent (deliveryId: string, channel: Channel): void {
    this.#record({ deliveryId, channel, metric: '_send', at: this.#clock.now(), begins: true, outcome: false })
  }

  /** A webhook event was handled (once per event id). */
  event ({ event }: ReadEvent): void {
    if (event.object_type === '_other' || event.object_type === 'customer') return
    const deliveryId = event.data.delivery_id
    if (typeof deliveryId !== 'string' || deliveryId === '') return
    this.#record({ deliveryId, channel: event.object_type, metric: event.metric, at: event.timestamp * 1000, begins: BEGINNINGS.has(event.metric), outcome: OUTCOMES.has(event.metric) })
  }

  /** Stops sweeping; an event still being recorded finishes on its own. */
  async close (): Promise<void> {
    this.#clock.clearTimeout(this.#timer)
    this.#timer = undefined
    // A store that hangs does not hold the close: the sweep's outcome no longer matters.
    await within(this.#sweeping, CLOSE_WAIT_MS)
  }

  #record (what: Omit<DeliveryEvent, 'awaitsOutcome' | 'confirmWithinMs'>): void {
    const event = { ...what, awaitsOutcome: RECEIPT_CHANNELS.has(what.channel), confirmWithinMs: this.#settings.confirmWithinSeconds * 1000 }
    Promise.resolve().then(() => this.#store.record(event)).then((recorded) => {
      if (recorded.started) this.#metrics.started.inc({ channel: event.channel })
      if (recorded.first && recorded.beganAt !== undefined && MEASURED.has(event.metric)) {
        this.#metrics.latency.observe({ channel: event.channel, metric: event.metric }, Math.max(0, event.at - recorded.beganAt) / 1000)
      }
      this.#failing = false
    }, (err: unknown) => { this.#failed(err) })
  }

  #arm (): void {
    const timer = this.#clock.setTimeout(() => {
      this.#sweeping = this.#sweep().finally(() => { if (this.#timer === timer) this.#arm() })
    }, this.#sweepMs)
    ;(timer as { unref?: () => void }).unref?.()
    this.#timer = timer
  }

  async #sweep (): Promise<void> {
    try {
      for (const channel of await this.#store.expire(this.#clock.now())) this.#metrics.unconfirmed.inc({ channel })
      this.#failing = false
    } catch (err) {
      this.#failed(err)
    }
  }

  /** Counted each time; logged once until the store works again. */
  #failed (err: unknown): void {
    this.#metrics.storeErrors.inc()
    if (this.#failing) return
    this.#failing = true
    this.#log.error({ err }, 'customer.io delivery store failed; delivery tracking misses events until it is back')
  }
}
