import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { hostname } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyBaseLogger } from 'fastify'
import type { BatchItem } from 'customerio-node'
import type { Redis } from 'ioredis'
import { CioInvalidOperationError, CioOutboxFullError, CioOutboxUnavailableError } from '../../errors.ts'
import type { MetricFactory } from '../../monitoring/metrics.ts'
import { sanitize } from '../../monitoring/sanitize.ts'
import { oncePerOutage, openRedis } from '../../redis/open.ts'
import { within } from '../../timers.ts'
import { ENVELOPE_BYTES, refusalErrors, refusedIndexes } from '../batch.ts'
import { DIALECTS, type Dialect, type QueueEvent } from '../dialects.ts'
import type { BatchOperation, QueueItem } from '../options.ts'
import { isTransient, retryAfterMs, retryDelay } from '../retry.ts'
import { createOutboxMetrics, type OutboxMetrics } from './metrics.ts'
import type { OutboxSettings } from './options.ts'

type Id = string | number
interface Sender { send (operations: QueueItem[]): Promise<unknown> }
type Send = Sender['send']

/** A stream entry: its id and the operation it holds. */
interface Entry { readonly id: string, readonly op: QueueItem | undefined, readonly bytes: number }

/**
 * Adds an entry unless the stream already holds `maxLength`: the check and the add are one
 * step, so instances adding at once never pass the bound together. Acknowledged entries are
 * deleted, so the stream's length is what is not yet sent.
 */
const ADD = `if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return false end
return redis.call('XADD', KEYS[1], '*', 'op', ARGV[2])`

/** How long start-up waits at most for the first connection to Redis. */
const CONNECT_WAIT_MS = 5_000
/** How long a sender cut off at close may take to notice. */
const AFTER_DISCONNECT_MS = 500

/** Store errors are logged once per outage, not once per retry. */
const STORE_RETRY_MS = { retryDelayMs: 100, maxRetryDelayMs: 5_000 }

/**
 * A durable queue: `fastify.cio.outbox`. Each add resolves once Redis has stored the operation
 * in a stream, and rejects with `FST_CIO_OUTBOX_*` when it could not, so the caller always
 * knows whether it is safe. Senders (every instance with `sender: true`) share the stream
 * through a consumer group: each reads a batch, sends it through the instrumented client, and
 * acknowledges (and deletes) it only once Customer.io accepted it. A sender renews the claim
 * on the batch it holds while it works; a batch whose sender died goes unrenewed and is taken
 * over by another sender after `claimAfterMs` (XAUTOCLAIM). Delivery is at least once; every
 * event carries its idempotency id, so Customer.io discards a second copy.
 */
export class CioOutbox {
  readonly #settings: OutboxSettings
  readonly #dialect: Dialect
  readonly #send: Send
  readonly #log: FastifyBaseLogger
  readonly #producer: Redis
  readonly #reader: Redis | undefined
  readonly #metrics: OutboxMetrics
  /** This sender's name in the group: unique per process, so a restart never inherits a dead sender's claims by name. */
  readonly #consumer = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`
  /** Aborted by close(): ends every wait of the sender. */
  readonly #stop = new AbortController()
  #loop: Promise<void> = Promise.resolve()
  /** Ids of the entries the sender holds now, renewed while it works. */
  #held = new Set<string>()
  #closed = false
  #lastClaimSweep = -Infinity
  #storeFailures = 0

  private constructor (settings: OutboxSettings, send: Send, factory: MetricFactory, log: FastifyBaseLogger, producer: Redis, reader: Redis | undefined) {
    this.#settings = settings
    this.#dialect = DIALECTS[settings.api]
    this.#send = send
    this.#log = log
    this.#producer = producer
    this.#reader = reader
    this.#metrics = createOutboxMetrics(factory, () => this.#stats())
  }

  /**
   * Opens the outbox's connections and, unless `sender: false`, starts its sender. Never waits
   * for Redis: while it is unreachable adds fail and the sender retries.
   */
  static async open (settings: OutboxSettings, send: Send, factory: MetricFactory, log: FastifyBaseLogger): Promise<CioOutbox> {
    const errors = oncePerOutage((err) => { log.error({ err }, 'customer.io outbox Redis connection error') })
    const connect = async (commandTimeout: number) => {
      // RESP2 on both ioredis majors, so stream replies have one shape; no offline queue and
      // no retry of a command in flight, so a caller hears at once that Redis is unreachable.
      const redis = await openRedis(settings.connection, { protocol: 2, enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout, disconnectTimeout: 500 } as object)
      redis.on('ready', errors.reset)
      redis.on('error', errors.report)
      return redis
    }
    const producer = await connect(settings.commandTimeoutMs)
    // A blocking read waits up to blockMs for Redis to have something, on a connection of its own.
    const reader = settings.sender ? await connect(settings.blockMs + settings.commandTimeoutMs) : undefined
    // The first adds need the connection up. A Redis still unreachable after the start-up bound is
    // the same as one lost later, and no reason to refuse to start: adds fail until it is back.
    await within(Promise.all([producer, reader].map(async (redis) => { if (redis !== undefined) await once(redis, 'ready').catch(() => {}) })), Math.max(settings.commandTimeoutMs, CONNECT_WAIT_MS))
    const outbox = new CioOutbox(settings, send, factory, log, producer, reader)
    if (reader !== undefined) outbox.#loop = outbox.#run(reader)
    return outbox
  }

  // The queue's methods, over the same API; each resolves once the operation is in Redis.
  async identify (id: Id, attributes: Record<string, unknown> = {}): Promise<void> { await this.#add(this.#dialect.identify(id, attributes)) }
  async track (id: Id, event: QueueEvent): Promise<void> { await this.#add(this.#dialect.track(id, event)) }
  async trackAnonymous (anonymousId: Id, event: QueueEvent): Promise<void> { await this.#add(this.#dialect.trackAnonymous(anonymousId, event)) }
  async trackPageView (id: Id, path: string): Promise<void> { await this.#add(this.#dialect.trackPageView(id, path)) }
  async destroy (id: Id): Promise<void> { await this.#add(this.#dialect.destroy(id)) }
  async suppress (id: Id): Promise<void> { await this.#add(this.#dialect.suppress(id)) }
  async unsuppress (id: Id): Promise<void> { await this.#add(this.#dialect.unsuppress(id)) }
  async addDevice (id: Id, deviceId: string, platform: string, data: Record<string, unknown> = {}): Promise<void> { await this.#add(this.#dialect.addDevice(id, deviceId, platform, data)) }
  async deleteDevice (id: Id, deviceId: string): Promise<void> { await this.#add(this.#dialect.deleteDevice(id, deviceId)) }
  async group (id: Id, groupId: Id, traits?: Record<string, unknown>): Promise<void> { await this.#add(this.#dialect.group(id, groupId, traits)) }
  async alias (id: Id, previousId: Id): Promise<void> { await this.#add(this.#dialect.alias(id, previousId)) }

  /**
   * Stores a Track v2 batch operation, or over Data Pipelines a batch item, as the queue's
   * `enqueue` takes it. An event gets its ULID `id` / `messageId` before it is stored, so
   * every re-send is discarded by Customer.io; pass your own to make your retries safe too.
   */
  async enqueue (operation: BatchOperation | BatchItem): Promise<void> { await this.#add(operation) }

  async #add (operation: unknown): Promise<void> {
    const op = this.#dialect.prepare(operation)
    let json: string
    try {
      json = JSON.stringify(op)
    } catch {
      throw new CioInvalidOperationError('the operation cannot be serialised to JSON')
    }
    if (Buffer.byteLength(json) + this.#dialect.addedBytes > this.#dialect.maxItemBytes) {
      throw new CioInvalidOperationError(`the operation is larger than ${this.#dialect.maxItemBytes} bytes`)
    }
    if (this.#closed) throw new CioOutboxUnavailableError('the app is closing')
    let id: unknown
    try {
      id = await this.#producer.eval(ADD, 1, this.#settings.stream, this.#settings.maxLength, json)
    } catch (err) {
      this.#metrics.storeError()
      // A command that timed out may still run once a hung Redis wakes: "not stored" is not
      // certain, which is why events carry their ids.
      // The cause keeps Redis's message only: an ioredis error also carries the command's arguments, the operation among them.
      throw new CioOutboxUnavailableError(storeFailure(err), { cause: new Error((err as Error).message) })
    }
    if (id === null) throw new CioOutboxFullError(this.#settings.maxLength)
  }

  /** Depth and the oldest entry's age, read at scrape time within the command bound. */
  async #stats (): Promise<{ depth: number, oldestAgeSeconds: number }> {
    const { stream } = this.#settings
    const [depth, first, time] = await Promise.all([this.#producer.xlen(stream), this.#producer.xrange(stream, '-', '+', 'COUNT', 1), this.#producer.time()])
    // Both times are Redis's own (an entry id starts with the ms it was added), so clocks never disagree.
    const nowMs = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000)
    const oldest = first.length === 0 ? nowMs : Number(first[0][0].split('-')[0])
    return { depth, oldestAgeSeconds: Math.max(0, nowMs - oldest) / 1000 }
  }

  /**
   * Stops taking work from Redis; the batch in hand may finish within `shutdownTimeoutMs`.
   * One that does not is handed back (its claim made old at once), so the next sender takes
   * it over without waiting `claimAfterMs`. Everything else stays in Redis: nothing is lost.
   */
  async close (): Promise<void> {
    this.#closed = true
    this.#stop.abort()
    await within(this.#loop, this.#settings.shutdownTimeoutMs)
    if (this.#held.size > 0) {
      this.#log.warn({ operations: this.#held.size }, 'customer.io outbox closed with entries in hand; they are left for the next sender')
      await this.#renew(0, this.#settings.claimAfterMs).catch(() => {})
    }
    this.#reader?.disconnect()
    this.#producer.disconnect()
    // A sender cut off by the disconnect ends at once: nothing of the outbox runs after close().
    await within(this.#loop, AFTER_DISCONNECT_MS)
  }

  /** The sender: takes batches until close(), backing off while Redis fails. */
  async #run (redis: Redis): Promise<void> {
    while (!this.#stop.signal.aborted) {
      try {
        const entries = await this.#next(redis)
        this.#storeFailures = 0
        if (entries.length > 0) await this.#deliver(redis, entries)
      } catch (err) {
        // No group: a new stream, or a Redis that restarted empty. Made here, so an error making it shows on the next read.
        if (isNoGroup(err)) {
          await this.#createGroup(redis).catch(() => {})
          continue
        }
        this.#storeFailed(err)
        await this.#pause(retryDelay(STORE_RETRY_MS, this.#storeFailures, undefined))
      }
    }
  }

  #storeFailed (err: unknown): void {
    this.#metrics.storeError()
    if (this.#storeFailures++ === 0) this.#log.error({ err }, 'customer.io outbox cannot reach Redis; the sender retries')
  }

  async #createGroup (redis: Redis): Promise<void> {
    // From the stream's start: entries added before any sender ran are sent too.
    await redis.xgroup('CREATE', this.#settings.stream, this.#settings.group, '0', 'MKSTREAM')
  }

  /** The next batch: first what dead senders left (looked for every claimAfterMs / 2), else new entries. */
  async #next (redis: Redis): Promise<Entry[]> {
    const { stream, group, batchSize, claimAfterMs, blockMs } = this.#settings
    if (Date.now() - this.#lastClaimSweep >= claimAfterMs / 2) {
      const [, claimed] = await redis.xautoclaim(stream, group, this.#consumer, claimAfterMs, '0-0', 'COUNT', batchSize) as [string, Array<[string, string[]]>]
      const entries = this.#entries(claimed)
      if (entries.length > 0) {
        this.#metrics.claimed(entries.length)
        this.#log.warn({ operations: entries.length }, 'customer.io outbox took over a batch from a sender that stopped')
        return entries
      }
      this.#lastClaimSweep = Date.now()
    }
    const read = await redis.xreadgroup('GROUP', group, this.#consumer, 'COUNT', batchSize, 'BLOCK', blockMs, 'STREAMS', stream, '>') as Array<[string, Array<[string, string[]]>]> | null
    return this.#entries(read?.[0]?.[1] ?? [])
  }

  /** Entries as read; one that holds no operation (not written by an outbox) has `op` undefined. */
  #entries (raw: Array<[string, string[]]>): Entry[] {
    return raw.map(([id, fields]) => {
      const op = fields[0] === 'op' ? parseObject(fields[1]!) : undefined
      return { id, op, bytes: op === undefined ? 0 : Buffer.byteLength(fields[1]!) + this.#dialect.addedBytes }
    })
  }

  /**
   * Sends the entries read, in batches within the size limits and in stream order. They stay
   * this sender's, renewed, until acknowledged; close() hands back those it did not get to.
   */
  async #deliver (redis: Redis, entries: Entry[]): Promise<void> {
    this.#held = new Set(entries.map((e) => e.id))
    const { claimAfterMs } = this.#settings
    // Renewed only while still this sender's: entries another sender took over lately are not taken back.
    const renewing = setInterval(() => { this.#renew(claimAfterMs / 4, 0).catch(() => {}) }, Math.max(1, Math.floor(claimAfterMs / 3)))
    renewing.unref()
    try {
      const unreadable = entries.filter((e) => e.op === undefined)
      if (unreadable.length > 0) {
        this.#log.error({ entries: unreadable.length }, 'customer.io outbox found entries that hold no operation; they are dropped')
        await this.#acknowledge(redis, unreadable)
        this.#metrics.dropped('unreadable', unreadable.length)
      }
      for (const batch of batches(entries.filter((e) => e.op !== undefined), this.#settings.maxBatchBytes)) {
        if (this.#stop.signal.aborted) return
        await this.#sendBatch(redis, batch)
      }
    } finally {
      clearInterval(renewing)
    }
  }

  /** Sends one batch until Customer.io accepts or refuses it, or close() comes first (the batch then stays in Redis). */
  async #sendBatch (redis: Redis, batch: Entry[]): Promise<void> {
    const operations = batch.map((e) => e.op!)
    for (let failures = 1; !this.#stop.signal.aborted; failures++) {
      let result: unknown
      try {
        result = await this.#send(operations)
      } catch (err) {
        if (!isTransient(err)) {
          this.#log.error({ err, operations: operations.length }, 'customer.io refused an outbox batch')
          return await this.#finish(redis, batch, new Set(batch.keys()))
        }
        this.#metrics.retried()
        this.#log.warn({ err, operations: operations.length, failures }, 'customer.io outbox batch failed; it will be sent again')
        await this.#pause(retryDelay(this.#settings, failures, retryAfterMs(err, Date.now())))
        continue
      }
      const refused = refusedIndexes(result)
      if (refused.size > 0) this.#log.warn({ rejected: refused.size, errors: sanitize(refusalErrors(result)) }, 'customer.io rejected outbox operations')
      return await this.#finish(redis, batch, refused)
    }
  }

  /** Acknowledges a batch Customer.io answered; `refused` ones are counted as dropped and handed to onDrop. */
  async #finish (redis: Redis, batch: Entry[], refused: ReadonlySet<number>): Promise<void> {
    await this.#acknowledge(redis, batch)
    this.#metrics.sent(batch.length - refused.size)
    if (refused.size === 0) return
    const dropped = batch.filter((_, i) => refused.has(i)).map((e) => e.op!)
    this.#metrics.dropped('rejected', dropped.length)
    try {
      this.#settings.onDrop?.(dropped, 'rejected')
    } catch (err) {
      this.#log.error({ err }, 'customer.io outbox onDrop failed')
    }
  }

  /**
   * Acknowledges and deletes entries, trying again while Redis fails, until close(). Entries
   * left unacknowledged are sent again by some sender, and Customer.io discards them by id.
   */
  async #acknowledge (redis: Redis, entries: Entry[]): Promise<void> {
    const { stream, group } = this.#settings
    const ids = entries.map((e) => e.id)
    for (let failures = 1; !this.#stop.signal.aborted; failures++) {
      try {
        // One transaction: an entry acknowledged but left in the stream would count as waiting for ever.
        await redis.multi().xack(stream, group, ...ids).xdel(stream, ...ids).exec()
        for (const id of ids) this.#held.delete(id)
        return
      } catch (err) {
        this.#storeFailed(err)
        await this.#pause(retryDelay(STORE_RETRY_MS, failures, undefined))
      }
    }
  }

  /**
   * Claims the held batch anew (those of its entries idle at least `minIdleMs`), with its idle
   * time set to `idleMs`: 0 renews it (this sender is alive); `claimAfterMs` hands it back, for
   * the next sender to take over at once.
   */
  async #renew (minIdleMs: number, idleMs: number): Promise<void> {
    const { stream, group } = this.#settings
    await this.#producer.xclaim(stream, group, this.#consumer, Math.floor(minIdleMs), ...this.#held, 'IDLE', idleMs, 'JUSTID')
  }

  /** Waits `ms`, or less if close() comes first. */
  async #pause (ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.#stop.signal, ref: false }).catch(() => {})
  }
}

/** Consecutive entries in batches of at most `maxBytes` on the wire. */
function * batches (entries: Entry[], maxBytes: number): Generator<Entry[]> {
  let batch: Entry[] = []
  let size = ENVELOPE_BYTES
  for (const entry of entries) {
    if (batch.length > 0 && size + entry.bytes + 1 > maxBytes) {
      yield batch
      batch = []
      size = ENVELOPE_BYTES
    }
    batch.push(entry)
    size += entry.bytes + 1
  }
  if (batch.length > 0) yield batch
}

/** What the caller is told: never the command, which holds the operation. */
const storeFailure = (err: unknown): string => (err as Error).message.includes('timed out') ? 'Redis did not answer in time' : 'Redis is unreachable or refused the command'

/** A JSON object, or undefined for anything else. */
function parseObject (json: string): QueueItem | undefined {
  try {
    const value: unknown = JSON.parse(json)
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as QueueItem : undefined
  } catch {
    return undefined
  }
}

const isNoGroup = (err: unknown): boolean => String((err as Error).message).startsWith('NOGROUP')
