/*
 * Scenarios 1 and 2: fastify.cio.queue and the direct fastify.cio calls against the simulator
 * while a seeded schedule of Customer.io faults cycles, with real timers and real HTTP.
 */
import Fastify from 'fastify'
import cioObservability, { CioApiError } from '../lib/index.ts'
import { createCioSimulator, type CioSimulator } from '../lib/testing/index.ts'
import {
  between, cioOptions, describeCounts, ms, row, SCHEDULE_RETRY_AFTER_MS, simFaultSchedule, sleep, Teardown, waitFor, within,
  type Row, type ScenarioContext
} from './shared.ts'

/** No delivery and no change of depth for this long after the faults were cleared: the queue is wedged. */
const WEDGE_MS = 10_000
/** However much progress, the queue must have delivered everything this long after the faults were cleared. */
const DRAIN_CAP_MS = 60_000

const CUSTOMERS = 20

/**
 * Reads the simulator's event history of one event name incrementally: how often each `seq`
 * was recorded, and how often a customer's events arrived out of their order of acceptance.
 */
class Recorded {
  readonly counts = new Map<number, number>()
  outOfOrder = 0
  readonly #sim: CioSimulator
  readonly #name: string
  readonly #owner: Map<number, string>
  readonly #last = new Map<string, number>()
  #scanned = 0

  constructor (sim: CioSimulator, name: string, owner: Map<number, string>) {
    this.#sim = sim
    this.#name = name
    this.#owner = owner
  }

  scan (): this {
    const events = this.#sim.events
    for (; this.#scanned < events.length; this.#scanned++) {
      const event = events[this.#scanned]
      if (event.name !== this.#name) continue
      const seq = event.data.seq as number
      this.counts.set(seq, (this.counts.get(seq) ?? 0) + 1)
      const customer = event.customerId ?? ''
      if (this.#owner.get(seq) !== customer) this.outOfOrder++
      if ((this.#last.get(customer) ?? -1) >= seq) this.outOfOrder++
      this.#last.set(customer, seq)
    }
    return this
  }

  delivered (seqs: Iterable<number>): number {
    let n = 0
    for (const seq of seqs) if (this.counts.has(seq)) n++
    return n
  }

  get doubled (): number {
    let n = 0
    for (const count of this.counts.values()) if (count > 1) n++
    return n
  }
}

export async function queueScenario ({ phaseMs, seed, rng }: ScenarioContext): Promise<Row> {
  const result = row('queue')
  const t = new Teardown()
  try {
    const sim = await createCioSimulator({ seed })
    t.teardown(() => sim.close())
    const drops = new Map<string, number>()
    const app = Fastify({ logger: false })
    t.teardown(() => app.close())
    await app.register(cioObservability, cioOptions(sim, {
      client: { timeout: 300, retry: { maxRetries: 1 } },
      queue: {
        batchSize: 20,
        flushIntervalMs: 50,
        retryDelayMs: 50,
        maxRetryDelayMs: 400,
        shutdownTimeoutMs: 2000,
        onDrop: (operations, reason) => { drops.set(reason, (drops.get(reason) ?? 0) + operations.length) }
      }
    }))
    await app.ready()
    const queue = app.cio.queue!

    // seq → its customer, for every operation the queue accepted.
    const accepted = new Map<number, string>()
    let refused = 0
    let seq = 0
    const enqueue = () => {
      const s = seq++
      const customer = `q-${Math.floor(rng() * CUSTOMERS)}`
      if (queue.track(customer, { name: 'chaos_queue', data: { seq: s } })) accepted.set(s, customer)
      else refused++
    }

    // Steady traffic (about 2 operations every 10 ms) with a burst of 50–400 now and then.
    const end = Date.now() + phaseMs
    let bursts = 0
    const traffic = async () => {
      while (Date.now() < end) {
        enqueue()
        enqueue()
        if (rng() < 0.01) {
          bursts++
          const size = 50 + Math.floor(rng() * 350)
          for (let i = 0; i < size; i++) enqueue()
        }
        await sleep(10)
      }
    }
    // A busy app: now and then the event loop is blocked for a few ms, as by a request's synchronous work.
    let hogs = 0
    const busyApp = async () => {
      while (Date.now() < end) {
        await sleep(between(rng, 10, 40))
        hogs++
        const until = performance.now() + between(rng, 1, 8)
        while (performance.now() < until) { /* the app's synchronous work */ }
      }
    }
    const [, faults] = await Promise.all([traffic(), simFaultSchedule(sim, rng, 'batch', end), busyApp()])
    result.notes.push(`faults on batch: ${describeCounts(faults)}; ${bursts} bursts, ${hogs} event-loop blocks of 1–8 ms; depth ${queue.depth} when the faults stopped`)

    // The outcome, with no rescue: no flush(). Progress is a delivery or a change of depth.
    sim.clearFaults()
    const recorded = new Recorded(sim, 'chaos_queue', accepted)
    const cleared = Date.now()
    let lastProgress = cleared
    let lastDelivered = -1
    let lastDepth = -1
    let verdict = 'capped' as 'drained' | 'wedged' | 'capped'
    await waitFor(() => {
      const delivered = recorded.scan().delivered(accepted.keys())
      const depth = queue.depth
      if (depth === 0 && delivered === accepted.size) { verdict = 'drained'; return true }
      if (delivered !== lastDelivered || depth !== lastDepth) lastProgress = Date.now()
      lastDelivered = delivered
      lastDepth = depth
      if (Date.now() - lastProgress >= WEDGE_MS) { verdict = 'wedged'; return true }
      return Date.now() - cleared >= DRAIN_CAP_MS
    }, DRAIN_CAP_MS + 1000)
    const waited = Date.now() - cleared
    const delivered = recorded.scan().delivered(accepted.keys())
    const dropped = [...drops.values()].reduce((a, b) => a + b, 0)

    Object.assign(result, { accepted: accepted.size, delivered, doubled: recorded.doubled, dropped })
    result.notes.push(`outcome ${ms(waited)} ms after the faults were cleared: ${verdict}, depth ${queue.depth}; ` +
      `${sim.requestsFor('batch').length} batch requests (${sim.requestsFor('batch').filter((r) => r.status !== 200).length} failed); ${sim.discardedEvents.length} re-sent copies discarded by id`)
    if (verdict === 'wedged') {
      result.failures.push(`WEDGE: depth ${queue.depth} and ${accepted.size - delivered} accepted events undelivered, ` +
        `no progress for ${WEDGE_MS / 1000} s after the faults were cleared`)
    } else if (verdict === 'capped') {
      result.failures.push(`not drained ${DRAIN_CAP_MS / 1000} s after the faults were cleared (depth ${queue.depth}, ${accepted.size - delivered} undelivered)`)
    }
    if (verdict !== 'drained' && accepted.size - delivered > 0) result.failures.push(`LOSS: ${accepted.size - delivered} accepted events never recorded`)
    if (recorded.doubled > 0) result.failures.push(`DOUBLE: ${recorded.doubled} events recorded more than once`)
    if (recorded.outOfOrder > 0) result.failures.push(`ORDER: ${recorded.outOfOrder} events recorded out of their customer's order`)
    // Every refusal at enqueue is also handed to onDrop; a difference would be a drop not counted.
    if (dropped > 0 || refused > 0) result.failures.push(`DROP: ${dropped} operations handed to onDrop (${describeCounts(drops)}), ${refused} refused at enqueue`)
  } catch (err) {
    result.failures.push(`scenario error: ${String(err)}`)
  } finally {
    result.failures.push(...await t.run())
  }
  return result
}

/** How long a rejection may take: each attempt's timeout, the longest backoff between them, and slack. */
const TIMEOUT_MS = 300
const ATTEMPTS = 2
const BACKOFF_MS = Math.max(SCHEDULE_RETRY_AFTER_MS, 2 * 200)
const SLACK_MS = 1000
const CALL_BOUND_MS = TIMEOUT_MS * ATTEMPTS + BACKOFF_MS + SLACK_MS
const CONCURRENCY = 16

export async function directScenario ({ phaseMs, seed, rng }: ScenarioContext): Promise<Row> {
  const result = row('direct client')
  const t = new Teardown()
  try {
    const sim = await createCioSimulator({ seed })
    t.teardown(() => sim.close())
    const app = Fastify({ logger: false })
    t.teardown(() => app.close())
    await app.register(cioObservability, cioOptions(sim, { client: { timeout: TIMEOUT_MS, retry: { maxRetries: ATTEMPTS - 1 } }, queue: false }))
    await app.ready()

    const owner = new Map<number, string>()
    const resolved: number[] = []
    const rejected: number[] = []
    const wrongErrors = new Map<string, number>()
    let unsettled = 0
    let slowRejections = 0
    let slowest = 0
    let seq = 0
    const end = Date.now() + phaseMs
    const caller = async () => {
      while (Date.now() < end) {
        const s = seq++
        const customer = `d-${s % CUSTOMERS}`
        owner.set(s, customer)
        const started = performance.now()
        const outcome = await within(app.cio.track(customer, { name: 'chaos_direct', data: { seq: s } }), CALL_BOUND_MS + 5000)
        const took = performance.now() - started
        slowest = Math.max(slowest, took)
        if (!outcome.done) {
          unsettled++
          continue
        }
        if (outcome.ok) {
          resolved.push(s)
          continue
        }
        rejected.push(s)
        const err = outcome.error
        if (!(err instanceof CioApiError) || err.code !== 'FST_CIO_API_ERROR') {
          const what = (err as { code?: string } | undefined)?.code ?? String(err)
          wrongErrors.set(what, (wrongErrors.get(what) ?? 0) + 1)
        }
        if (took > CALL_BOUND_MS) slowRejections++
      }
    }
    const [faults] = await Promise.all([simFaultSchedule(sim, rng, 'track', end), ...Array.from({ length: CONCURRENCY }, caller)])
    sim.clearFaults()

    // Every call has settled: a resolved call's event is in the history by now, or never.
    const recorded = new Recorded(sim, 'chaos_direct', owner).scan()
    const missing = resolved.filter((s) => recorded.counts.get(s) !== 1)
    const rejectedRecorded = recorded.delivered(rejected)
    Object.assign(result, { accepted: seq, delivered: recorded.delivered(resolved), doubled: recorded.doubled, dropped: rejected.length })
    result.notes.push(`faults on track: ${describeCounts(faults)}; ${resolved.length} resolved, ${rejected.length} rejected ` +
      `(${rejectedRecorded} of them recorded anyway: answer lost); slowest call ${ms(slowest)} ms, bound for a rejection ${CALL_BOUND_MS} ms`)
    if (missing.length > 0) result.failures.push(`LOSS: ${missing.length} resolved calls whose event is not recorded exactly once`)
    if (recorded.doubled > 0) result.failures.push(`DOUBLE: ${recorded.doubled} events recorded more than once`)
    if (wrongErrors.size > 0) result.failures.push(`rejections that are not CioApiError FST_CIO_API_ERROR: ${describeCounts(wrongErrors)}`)
    if (slowRejections > 0) result.failures.push(`${slowRejections} rejections took longer than ${CALL_BOUND_MS} ms`)
    if (unsettled > 0) result.failures.push(`${unsettled} calls had not settled ${CALL_BOUND_MS + 5000} ms after they started`)
  } catch (err) {
    result.failures.push(`scenario error: ${String(err)}`)
  } finally {
    result.failures.push(...await t.run())
  }
  return result
}
