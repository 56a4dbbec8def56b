/**
 * The outbox: operations accepted per second (concurrent adds, sender off, so the figure is the
 * add path's), and the latency one `await outbox.track()` adds over one plain XADD of the same
 * entry on the same Redis, alternating in the same run.
 */
import { Redis } from 'ioredis'
import { median, ROUNDS, rotate, row, type Row } from './harness.ts'
import { benchRedis } from './redis.ts'
import { simulatedApp } from './simulated-app.ts'

const SEQUENTIAL = 2_000
const CONCURRENT = 20_000
const IN_FLIGHT = 50

export async function benchOutbox (): Promise<Row[]> {
  const redis = await benchRedis()
  const { sim, app } = await simulatedApp({ appApiKey: undefined, queue: false, outbox: { connection: redis.url, sender: false, maxLength: 10_000_000 } })
  const outbox = app.cio.outbox!
  const plain = new Redis(redis.url)
  try {
    // The same entry as the outbox stores (a track with its id), added with one XADD.
    const entry = JSON.stringify({ type: 'person', identifiers: { id: 'p1' }, action: 'event', name: 'page', attributes: { i: 1 }, id: '01JGZ8K3M4N5P6Q7R8S9T0V1W2' })
    const latency = (add: () => Promise<unknown>) => async () => {
      const start = performance.now()
      for (let i = 0; i < SEQUENTIAL; i++) await add()
      return (performance.now() - start) * 1000 / SEQUENTIAL
    }
    const perAdd = await rotate({
      xadd: latency(() => plain.xadd('bench-plain', '*', 'op', entry)),
      outbox: latency(() => outbox.track('p1', { name: 'page', data: { i: 1 } }))
    }, ROUNDS)
    const rates: number[] = []
    for (let round = 0; round < ROUNDS; round++) {
      const start = performance.now()
      let next = 0
      await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
        while (next < CONCURRENT) await outbox.track(`p${next++}`, { name: 'page', data: { i: next } })
      }))
      rates.push(CONCURRENT / ((performance.now() - start) / 1000))
    }
    const xadd = median(perAdd.xadd)
    const added = median(perAdd.outbox.map((o, i) => o - perAdd.xadd[i]!))
    const rate = median(rates)
    return [
      row('outbox', `accepted operations per second (${IN_FLIGHT} adds in flight, sender off)`, null, rate, 'ops/s', 'for reading', true),
      row('outbox', 'latency of one awaited add (baseline: one plain XADD of the same entry; median of per-round differences as the result)', xadd, added, 'µs added', 'for reading', true)
    ]
  } finally {
    plain.disconnect()
    await app.close()
    await sim.close()
    await redis.close()
  }
}
