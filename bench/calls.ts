/**
 * Instrumented fastify.cio calls against the raw customerio-node client, both over real HTTP
 * to the simulator at the same concurrency: throughput ratio and CPU added per call.
 */
import { APIClient, SendEmailRequest, TrackClient } from 'customerio-node'
import { alternate, median, medianDifference, row, timed, type Row } from './harness.ts'
import { simulatedApp } from './simulated-app.ts'

const CALLS = 6_000
const CONCURRENCY = 16

export async function benchCalls (): Promise<Row[]> {
  // A few fast retries on both sides: a keep-alive socket the server closed while idle can reset.
  const retry = { maxRetries: 2, minTimeoutMs: 1, maxTimeoutMs: 5 }
  const { sim, app } = await simulatedApp({ client: { retry } })
  const defaults = { region: sim.region, retry }
  const raw = { track: new TrackClient(sim.siteId, sim.trackApiKey, defaults), app: new APIClient(sim.appApiKey, defaults) }
  const email = new SendEmailRequest({ to: 'person@example.com', identifiers: { id: 'p' }, transactional_message_id: 1 })
  const kinds: Record<string, (c: any) => Promise<unknown>> = {
    identify: (c: any) => c.identify('person-1', { plan: 'pro' }),
    track: (c: any) => c.track('person-1', { name: 'signed_up', data: { a: 1 } }),
    send_email: (c: any) => c.sendEmail(email)
  }
  const rows: Row[] = []
  const runFor = (client: unknown, call: (c: any) => Promise<unknown>) => () => timed(async () => {
    let next = 0
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < CALLS) await call(client)
    }))
    sim.requests.length = 0
  })
  for (const [name, call] of Object.entries(kinds)) {
    const samples = await alternate(runFor(name === 'send_email' ? raw.app : raw.track, call), runFor(app.cio, call))
    const rate = (s: { wallMs: number }) => CALLS / (s.wallMs / 1000)
    const baseRate = median(samples.baseline.map(rate))
    const ourRate = median(samples.candidate.map(rate))
    rows.push(row(`calls: ${name}`, 'throughput', baseRate, ourRate, 'calls/s', 'ratio ≥ 0.97', ourRate / baseRate >= 0.97))
    const cpuPerCall = (s: { cpuMs: number }) => (s.cpuMs * 1000) / CALLS
    // Per-round differences: the machine's speed drifts between rounds, less within one.
    const added = medianDifference(samples.baseline, samples.candidate, cpuPerCall)
    rows.push(row(`calls: ${name}`, 'CPU added per call', null, added, 'µs', '≤ 20 µs', added <= 20))
  }
  // Without the network: a call the SDK refuses synchronously (track without a customer id), so
  // neither side does I/O and the difference is the instrumentation's own bookkeeping: the event's
  // ULID id (added before the SDK sees the event), metrics, classification, the failed-call log
  // line (the app's logger is off) and the promise.
  const BOOKKEEPING = 100_000
  const refused = (call: () => Promise<unknown>) => () => timed(async () => {
    for (let i = 0; i < BOOKKEEPING; i++) await call().catch(() => {})
  })
  const event = { name: 'signed_up', data: { a: 1 } }
  const book = await alternate(
    refused(async () => raw.track.track('', event)),
    refused(() => app.cio.track('', event))
  )
  const perCall = (s: { cpuMs: number }) => (s.cpuMs * 1000) / BOOKKEEPING
  const bookkeeping = medianDifference(book.baseline, book.candidate, perCall)
  rows.push(row('calls: bookkeeping', 'CPU per track() without network (SDK refuses synchronously; baseline: raw SDK)', median(book.baseline.map(perCall)), median(book.candidate.map(perCall)), 'µs', '≤ 10 µs added', bookkeeping <= 10))
  rows.push(row('calls: bookkeeping', 'CPU added per track() without network (the row above, candidate − baseline)', null, bookkeeping, 'µs', '≤ 10 µs', bookkeeping <= 10))

  // An A/A run (the raw client against itself) shows how much of the above is noise.
  const aa = await alternate(runFor(raw.track, kinds.identify), runFor(raw.track, kinds.identify))
  const noise = medianDifference(aa.baseline, aa.candidate, (s) => (s.cpuMs * 1000) / CALLS)
  rows.push(row('calls: noise floor', 'CPU difference, raw client against itself (A/A)', null, noise, 'µs', 'for reading the rows above', true))
  await app.close()
  await sim.close()
  return rows
}
