/**
 * Property test of the queue's liveness: random bursts of events, random moves of a clock at
 * least as hostile as real timers (timers a few ms early or late, a coarse now()), and random
 * outages of the simulator (503, 429 with Retry-After, hangs, resets, lost answers), sent
 * through a real TrackClient over HTTP. After every step the queue must be able to go on by
 * itself; at the end, with the faults gone, it must drain, every event recorded once and in
 * order. Seeded: `SEED=n` replays the case with seed n (printed when a case fails), `CASES=n`
 * runs n cases.
 */
import t, { type Test } from 'tap'
import promClient from '@prometheus-io/client'
import { TrackClient } from 'customerio-node'
import { Agent } from 'undici'
import pino from 'pino'
import type { BatchOperation, DropReason, QueueItem } from '../../lib/index.ts'
import { createMetrics, type PromClient } from '../../lib/monitoring/metrics.ts'
import { QUEUE_DEFAULTS } from '../../lib/queue/options.ts'
import { CioQueue } from '../../lib/queue/queue.ts'
import type { Fault } from '../../lib/testing/simulator.ts'
import { JitterClock, seededRandom } from '../fixtures/clock.ts'
import { registryMetric, startSimulator } from '../helpers.ts'

const FIRST_SEED = 20260201
const seeds = process.env.SEED !== undefined
  ? [Number(process.env.SEED)]
  : Array.from({ length: Number(process.env.CASES ?? 32) }, (_, i) => FIRST_SEED + i)

/** Moves of the clock at the end, before a queue that has not drained counts as wedged. */
const DRAIN_MOVES = 2_000
/** The SDK's timeout in real ms: how long a hanging request holds its batch. */
const TIMEOUT_MS = 200
const CUSTOMERS = ['c0', 'c1', 'c2', 'c3', 'c4']

class Wedged extends Error {}

async function runCase (t: Test, seed: number): Promise<void> {
  const random = seededRandom(seed)
  const int = (n: number) => Math.floor(random() * n)
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!

  const drops: Array<[number, DropReason]> = []
  const retryDelayMs = pick([1, 3, 10, 50, 100])
  const settings = {
    ...QUEUE_DEFAULTS,
    api: 'track' as const,
    maxSize: 1_000_000,
    batchSize: pick([1, 2, 3, 5, 10, 25]),
    flushIntervalMs: pick([1, 2, 5, 20, 50, 200]),
    retryDelayMs,
    maxRetryDelayMs: Math.min(2_000, retryDelayMs * pick([1, 4, 10, 20])),
    onDrop: (ops: QueueItem[], reason: DropReason) => { drops.push([ops.length, reason]) }
  }

  const sim = await startSimulator(t, { seed })
  const clock = new JitterClock(seed, { offsetMs: int(4) })
  const start = clock.now()
  const agent = new Agent()
  t.teardown(() => agent.destroy())
  const client = new TrackClient(sim.siteId, sim.trackApiKey, { region: sim.region, dispatcher: agent, timeout: TIMEOUT_MS, retry: { maxRetries: 0 } } as never)
  const registry = { ...promClient, register: new promClient.Registry() } as unknown as PromClient

  // Every batch call, so the test knows what is in flight and can wait for it to settle.
  const inFlight = new Set<Promise<unknown>>()
  let calls = 0
  const send = (ops: BatchOperation[]) => {
    const sent = client.batch(ops as never)
    calls++
    inFlight.add(sent)
    const done = () => { inFlight.delete(sent) }
    sent.then(done, done)
    return sent
  }
  const queue = new CioQueue(settings, send, createMetrics(registry, { version: '0', sdkVersion: '0' }), pino({ level: 'silent' }), clock, seededRandom(seed ^ 0x9e3779b9))

  /** Resolves once every batch call so far has settled and the queue has reacted (batches it then started included). */
  const settled = async () => {
    for (let seen = -1; seen !== calls;) {
      seen = calls
      await Promise.allSettled([...inFlight])
      await new Promise(setImmediate)
    }
  }
  const state = () => `depth ${queue.depth}, ${inFlight.size} in flight, ${clock.armed} timers armed, clock +${clock.now() - start} ms`
  /** The liveness invariant: while operations wait, a batch is in flight or a timer is armed. */
  const check = (where: string) => {
    if (queue.depth > 0 && inFlight.size === 0 && clock.armed === 0) throw new Wedged(`wedged ${where}: ${state()}`)
  }

  const expected = new Map<string, number[]>(CUSTOMERS.map((c) => [c, []]))
  let accepted = 0
  let offered = 0
  const log: string[] = []
  const enqueue = () => {
    const n = 1 + int(settings.batchSize * 3)
    for (let i = 0; i < n; i++) {
      const customer = pick(CUSTOMERS)
      const seq = offered++
      if (queue.track(customer, { name: 'step', data: { seq } })) {
        accepted++
        expected.get(customer)!.push(seq)
      }
    }
    log.push(`enqueue ${n}`)
  }
  const advance = () => {
    const ms = pick([() => int(4), () => 1 + int(10), () => 10 + int(90), () => 100 + int(900), () => int(settings.maxRetryDelayMs + 10)])()
    clock.advance(ms)
    log.push(`advance ${ms}`)
  }
  // A hang holds a batch for the SDK's timeout in real time: a few per case at most.
  let hangs = 2
  const fault = () => {
    const ratio = random() < 0.5 ? undefined : 0.3 + random() * 0.7
    const kinds: Array<() => Fault> = [
      () => ({ status: 503, times: 1 + int(6) }),
      () => ({ status: 429, retryAfter: pick([0, 0.002, 0.05, 0.3, 1]), times: 1 + int(6) }),
      () => ({ reset: true, times: 1 + int(6) }),
      () => ({ lose: 'reset', times: 1 + int(6) })
    ]
    if (hangs > 0) kinds.push(() => ({ hang: true, times: 1 }), () => ({ lose: 'hang', times: 1 }))
    const kind = pick(kinds)()
    if (kind.hang === true || kind.lose === 'hang') hangs--
    const f: Fault = { operation: 'batch', ...kind, ...(ratio === undefined ? {} : { ratio }) }
    sim.fault(f)
    log.push(`fault ${JSON.stringify(f)}`)
  }

  try {
    const steps = 20 + int(30)
    for (let step = 0; step < steps; step++) {
      // A few things at once, so the clock also moves and events arrive while a batch is in flight.
      const actions = 1 + int(4)
      for (let a = 0; a < actions; a++) {
        const r = random()
        if (r < 0.4) enqueue()
        else if (r < 0.85) advance()
        else fault()
        check(`in step ${step} after ${log.at(-1)}`)
      }
      await settled()
      check(`after step ${step} settled`)
    }

    sim.clearFaults()
    log.push('faults cleared')
    let moves = 0
    for (; ; moves++) {
      await settled()
      check(`draining, after ${moves} moves`)
      if (queue.depth === 0 && inFlight.size === 0) break
      if (moves === DRAIN_MOVES) throw new Wedged(`not drained after ${DRAIN_MOVES} moves: ${state()}`)
      clock.advance(1 + int(50))
    }
    await queue.close()
  } catch (err) {
    if (!(err instanceof Wedged)) throw err
    t.fail(err.message, { seed, settings: { ...settings, onDrop: undefined }, steps: log.slice(-12) })
    return
  }

  t.equal(accepted, offered, 'every event accepted (maxSize is large)')
  t.same(drops, [], 'nothing dropped')
  const recorded = new Map<string, number[]>(CUSTOMERS.map((c) => [c, []]))
  for (const event of sim.events) recorded.get(event.customerId!)!.push((event.data as { seq: number }).seq)
  t.same(Object.fromEntries(recorded), Object.fromEntries(expected), 'each customer\'s history holds every accepted event once, in the order queued')
  t.equal(sim.events.length, accepted, 'nothing else recorded')
  t.equal(await registryMetric(registry.register, 'cio_queue_sent_total', { queue: 'track' }), accepted, 'cio_queue_sent_total counts every accepted event')
}

for (const seed of seeds) {
  t.test(`case with seed ${seed}`, async (t) => {
    await runCase(t, seed)
    if (!t.passing()) t.comment(`replay: SEED=${seed} npx node test/queue/queue-property.test.ts`)
  })
}
