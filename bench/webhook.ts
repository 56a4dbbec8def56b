/**
 * The signed webhook route against its floor (the HMAC and JSON.parse every receiver must do),
 * and the plugin's cost to the app's other routes. Servers on core 0, the load generator on the
 * other core, ~1 KB signed bodies with a fresh event id each, 50 connections; figures are the
 * servers' own CPU time per request, from /proc, medians over alternating rounds.
 */
import { createHmac } from 'node:crypto'
import { median, medianDifference, medianRatio, ROUNDS, rotate, row, timed, type Row } from './harness.ts'
import { paced } from './paced.ts'
import { ALL_CORES, CONNECTIONS, fillDedupe, HAS_PROC, KEY, LOAD_CORES, pin, saturate, SECONDS, server, signedRequests, WEBHOOK, type Sample, type Server, type SignedRequest } from './servers.ts'

// Short rounds, many of them: this machine's speed drifts by ±20% over seconds, and the median
// of per-round figures (each from adjacent runs) cancels most of that drift.
const ROUNDS_HERE = ROUNDS * 3
const FLOOR_EVENTS = 50_000

/**
 * What any receiver of a signed event must do, in-process: HMAC-SHA256 of `v0:<ts>:<body>` and
 * JSON.parse of the body, µs per event (CPU time; median of rounds).
 */
export async function floorMicros (next: () => SignedRequest): Promise<number> {
  const requests = Array.from({ length: 1_000 }, next)
  let sink = 0
  const once = () => timed(async () => {
    for (let i = 0; i < FLOOR_EVENTS; i++) {
      const { body, headers } = requests[i % requests.length]!
      const mac = createHmac('sha256', KEY).update(`v0:${headers['x-cio-timestamp']}:${body}`).digest()
      sink += mac[0]! + (JSON.parse(body) as { timestamp: number }).timestamp
    }
  })
  await once()
  const rounds: number[] = []
  for (let i = 0; i < ROUNDS; i++) rounds.push((await once()).cpuMs * 1000 / FLOOR_EVENTS)
  if (sink === 0) throw new Error('unreachable')
  return median(rounds)
}

const cpu = (s: Sample) => s.cpuPerRequest
const rps = (s: Sample) => s.rps

export async function benchWebhook (): Promise<Row[]> {
  const next = signedRequests()
  const floor = await floorMicros(next)
  pin(LOAD_CORES)
  const servers: Record<'plain' | 'metrics' | 'signed', Server> = { plain: await server('plain'), metrics: await server('metrics'), signed: await server('signed') }
  try {
    await fillDedupe(servers.signed, next)
    // One rotation for all of them: an ordinary route in a plain app, in an app timing its routes
    // with fastify-metrics, and in an app with the plugin (twice: the A/A row), and the webhook route.
    const s = await rotate({
      plain: saturate(servers.plain, '/bare', next),
      metrics: saturate(servers.metrics, '/bare', next),
      bare: saturate(servers.signed, '/bare', next),
      bareAgain: saturate(servers.signed, '/bare', next),
      floor: saturate(servers.signed, '/floor', next),
      webhook: saturate(servers.signed, WEBHOOK, next)
    }, ROUNDS_HERE)

    // Latency with the server half busy on the webhook route, the same rate for both routes of the
    // app, so the figures show the route's latency rather than a queue's. Half the closed-loop
    // saturation rate is not that: requests arriving one by one cost more each than a saturated
    // server's, which it reads and answers in batches (half that rate kept it 70–90% busy here).
    // Paced probes scale the rate until the server's own CPU time says half.
    let rate = Math.round(median(s.webhook.map(rps)) / 2)
    for (let probe = 0; probe < (HAS_PROC ? 3 : 0); probe++) {
      const cpuBefore = servers.signed.cpuMicros()
      const start = performance.now()
      await paced({ origin: servers.signed.url, path: WEBHOOK, rate, seconds: 1, connections: CONNECTIONS, next })
      const busy = (servers.signed.cpuMicros() - cpuBefore) / ((performance.now() - start) * 1000)
      rate = Math.round(rate * 0.5 / busy)
    }
    const steady = (path: string) => async () => {
      const before = servers.signed.cpuMicros()
      const result = await paced({ origin: servers.signed.url, path, rate, seconds: SECONDS * 2, connections: CONNECTIONS, next })
      if (result.failed > 0) throw new Error(`${path}: ${result.failed} of ${result.sent} failed`)
      return { ...result, cpuPerRequest: (servers.signed.cpuMicros() - before) / result.sent }
    }
    // Twice the rounds: a p99 here is mostly the VM's pauses, which move it by 2× between rounds.
    const latency = await rotate({ bare: steady('/bare'), floor: steady('/floor'), webhook: steady(WEBHOOK) }, ROUNDS * 2)

    const added = medianDifference(s.bare, s.webhook, cpu)
    const floorRoute = medianDifference(s.bare, s.floor, cpu)
    const addedPaced = medianDifference(latency.bare, latency.webhook, (l) => l.cpuPerRequest)
    const p99 = { bare: median(latency.bare.map((l) => l.p99)), floor: median(latency.floor.map((l) => l.p99)), webhook: median(latency.webhook.map((l) => l.p99)) }
    const p99Ratio = medianRatio(latency.bare, latency.webhook, (l) => l.p99)
    const appRatio = medianRatio(s.metrics, s.bare, cpu)
    const at = `at ${rate} req/s (the server half busy on the webhook route), ${CONNECTIONS} connections`
    const rows = [
      row('webhook floor', 'HMAC-SHA256 of v0:<ts>:<body> + JSON.parse, in-process, per event', null, floor, 'µs', 'the unit of the floor multiples', true),
      row('webhook route', 'throughput at saturation (baseline: bare JSON route, same app; median of per-round ratios)', median(s.bare.map(rps)), median(s.webhook.map(rps)), 'req/s', 'for reading', true, medianRatio(s.bare, s.webhook, rps))
    ]
    if (HAS_PROC) {
      rows.push(
        row('webhook route', 'server CPU per request (baseline: bare JSON route, same app)', median(s.bare.map(cpu)), median(s.webhook.map(cpu)), 'µs', 'for reading the row below', true, medianRatio(s.bare, s.webhook, cpu)),
        row('webhook route', 'server CPU added per request over the bare route, delivery tracking on (the default), at saturation (baseline: the floor)', floor, added, 'µs', '≤ 2.5 × floor', added <= 2.5 * floor),
        row('webhook route', `server CPU added per request over the bare route, ${at} (baseline: the floor)`, floor, addedPaced, 'µs', 'for reading the row above', true),
        row('webhook route', 'the floor as a route: server CPU added per request by a minimal signed route (createHmac, compare, parse) over the bare route, at saturation (baseline: the floor)', floor, floorRoute, 'µs', 'for reading the row above', true),
        row('webhook route', 'server CPU added per request over the minimal signed route: dedupe, counting, lag, the deadline, at saturation', null, medianDifference(s.floor, s.webhook, cpu), 'µs', 'for reading the rows above', true),
        row('webhook route', 'noise: server CPU per request, bare route against itself (A/A)', null, medianDifference(s.bare, s.bareAgain, cpu), 'µs', 'for reading the rows above', true)
      )
    }
    rows.push(
      row('webhook route', `p50 latency ${at} (baseline: bare route, same app)`, median(latency.bare.map((l) => l.p50)), median(latency.webhook.map((l) => l.p50)), 'ms', 'for reading the row below', true, medianRatio(latency.bare, latency.webhook, (l) => l.p50)),
      row('webhook route', `p99 latency ${at} (baseline: bare route, same app; median of per-round ratios)`, p99.bare, p99.webhook, 'ms', 'ratio ≤ 1.5', p99Ratio <= 1.5, p99Ratio),
      row('webhook route', `p99 latency of the minimal signed route ${at} (baseline: bare route, same app; median of per-round ratios)`, p99.bare, p99.floor, 'ms', 'for reading the row above', true, medianRatio(latency.bare, latency.floor, (l) => l.p99))
    )
    if (HAS_PROC) {
      rows.push(
        row('other routes', 'server CPU per request of an ordinary JSON route: plugin registered (baseline: app registers fastify-metrics itself)', median(s.metrics.map(cpu)), median(s.bare.map(cpu)), 'µs', 'ratio ≤ 1.05', appRatio <= 1.05, appRatio),
        row('other routes', 'the same route: app with fastify-metrics (baseline: plain app)', median(s.plain.map(cpu)), median(s.metrics.map(cpu)), 'µs', 'for reading the row above', true, medianRatio(s.plain, s.metrics, cpu)),
        row('other routes', 'the same route: plugin registered (baseline: plain app)', median(s.plain.map(cpu)), median(s.bare.map(cpu)), 'µs', 'for reading the row above', true, medianRatio(s.plain, s.bare, cpu))
      )
    }
    return rows
  } finally {
    await Promise.all(Object.values(servers).map((s) => s.stop()))
    pin(ALL_CORES)
  }
}
