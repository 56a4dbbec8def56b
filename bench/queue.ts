/** The queue: enqueue rate, HTTP calls per 1 000 events, and RSS under a 1 000 000-enqueue burst. */
import { median, row, ROUNDS, type Row } from './harness.ts'
import { simulatedApp } from './simulated-app.ts'

const EVENTS = 100_000

export async function benchQueue (): Promise<Row[]> {
  const { sim, app } = await simulatedApp({ appApiKey: undefined, queue: { maxSize: 10_000 } })
  const queue = app.cio.queue!

  // Sustained rate: bursts of 5 000 (half the capacity), draining between them as an app would.
  const burst = async (enqueue: (i: number) => void) => {
    for (let done = 0; done < EVENTS; done += 5_000) {
      for (let i = 0; i < 5_000; i++) enqueue(done + i)
      await queue.flush()
    }
  }
  const rates: number[] = []
  const calls: number[] = []
  await burst((i) => queue.track(`p${i}`, { name: 'warm-up' }))
  for (let round = 0; round < ROUNDS; round++) {
    sim.requests.length = 0
    let enqueueMs = 0
    await burst((i) => { const start = performance.now(); queue.track(`p${i}`, { name: 'page', data: { i } }); enqueueMs += performance.now() - start })
    rates.push(EVENTS / (enqueueMs / 1000))
    calls.push(sim.requestsFor('batch').length / (EVENTS / 1000))
  }
  const enqueueRate = median(rates)
  const callsPer1000 = median(calls)

  // Burst: a million enqueues in one go into the capped queue; all but its capacity overflow.
  global.gc?.()
  const before = process.memoryUsage().rss
  let accepted = 0
  for (let i = 0; i < 1_000_000; i++) if (queue.track(`p${i}`, { name: 'burst', data: { i } })) accepted++
  const grownMb = (process.memoryUsage().rss - before) / 1024 / 1024
  global.gc?.()
  const retainedMb = (process.memoryUsage().rss - before) / 1024 / 1024
  await app.close()
  await sim.close()
  return [
    row('queue', 'enqueue rate (time inside track(), drained between bursts)', null, enqueueRate, 'enqueues/s', '≥ 50 000/s', enqueueRate >= 50_000),
    row('queue', 'HTTP calls per 1 000 events (baseline: one call per event)', 1000, callsPer1000, 'calls', '≤ 10', callsPer1000 <= 10),
    row('queue', `RSS growth during a 1 000 000-enqueue burst (${accepted} accepted)`, null, grownMb, 'MB', '≤ 100 MB', grownMb <= 100),
    row('queue', 'RSS growth still held after a GC', null, retainedMb, 'MB', '≤ 100 MB', retainedMb <= 100)
  ]
}
