/**
 * The signed webhook route against its floor (the HMAC and JSON.parse every receiver must do),
 * and the plugin's cost to the app's other routes. Servers on core 0, the load generator on the
 * other core, ~1 KB signed bodies with a fresh event id and delivery id each, 50 connections;
 * figures are the servers' own CPU time per request, from /proc, medians over alternating rounds.
 */
import { floorProcess } from './floor.ts'
import { median, medianDifference, medianRatio, ROUNDS, rotate, row, type Row } from './harness.ts'
import { paced, pooledPercentile } from './paced.ts'
import { ALL_CORES, CONNECTIONS, fillDedupe, HAS_PROC, LOAD_CORES, pin, saturate, SECONDS, server, signedRequests, WEBHOOK, type Sample, type Server } from './servers.ts'

// Short rounds, many of them: this machine's speed drifts by ±20% over seconds, and the median
// of per-round figures (each from adjacent runs) cancels most of that drift.
const ROUNDS_HERE = ROUNDS * 3
/**
 * The route's goals. CPU added over the bare route, in floors: room for plain code doing what
 * the contract asks (two keyed stores, counting, a deadline) and for the run-to-run noise, none
 * for a store that walks its table per event. p99 against the bare route's at a steady rate above
 * any campaign's, where the server is mostly idle, so the tail is the route's own pauses rather
 * than a queue's (at half saturation it is mostly the load generator's and the VM's).
 */
export const WEBHOOK_ADDED_GOAL = 9
export const WEBHOOK_P99_GOAL = 1.5
const STEADY_RATE = 1_000

const cpu = (s: Sample) => s.cpuPerRequest
const rps = (s: Sample) => s.rps

export async function benchWebhook (): Promise<Row[]> {
  const next = signedRequests()
  pin(LOAD_CORES)
  // Everything started is stopped, also when a later start fails.
  const started: Array<{ stop: () => Promise<void> }> = []
  const kept = async <T extends { stop: () => Promise<void> }>(starting: Promise<T>): Promise<T> => {
    const child = await starting
    started.push(child)
    return child
  }
  try {
    const floorChild = await kept(floorProcess())
    const servers: Record<'plain' | 'metrics' | 'signed' | 'untracked', Server> = {
      plain: await kept(server('plain')),
      metrics: await kept(server('metrics')),
      signed: await kept(server('signed')),
      untracked: await kept(server('signed', { env: { BENCH_DELIVERY: 'off' } }))
    }
    await fillDedupe(servers.signed, next)
    await fillDedupe(servers.untracked, next)
    // One rotation for all of them: an ordinary route in a plain app, in an app timing its routes
    // with fastify-metrics, and in an app with the plugin (twice: the A/A row), the webhook route,
    // and the floor itself, so each round's figures are read against that round's floor.
    const s = await rotate({
      inProcess: async () => ({ rps: Number.NaN, cpuPerRequest: await floorChild.measure() }),
      plain: saturate(servers.plain, '/bare', next),
      metrics: saturate(servers.metrics, '/bare', next),
      bare: saturate(servers.signed, '/bare', next),
      bareAgain: saturate(servers.signed, '/bare', next),
      floor: saturate(servers.signed, '/floor', next),
      webhook: saturate(servers.signed, WEBHOOK, next),
      untracked: saturate(servers.untracked, WEBHOOK, next)
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
    const steady = (path: string, at = rate, target = servers.signed) => async () => {
      const before = target.cpuMicros()
      const result = await paced({ origin: target.url, path, rate: at, seconds: SECONDS * 2, connections: CONNECTIONS, next })
      if (result.failed > 0) throw new Error(`${path}: ${result.failed} of ${result.sent} failed`)
      return { ...result, cpuPerRequest: (target.cpuMicros() - before) / result.sent }
    }
    // Percentiles of every request of every round pooled: a round's own p99 is set by whether one
    // of the VM's pauses fell in it. Twice the rounds, for that many more requests.
    // The same route with delivery: false as well, for what delivery tracking adds to the tail.
    const latencyAt = (at: number) => rotate({ bare: steady('/bare', at), floor: steady('/floor', at), webhook: steady(WEBHOOK, at), untracked: steady(WEBHOOK, at, servers.untracked) }, ROUNDS * 2)
    const latency = await latencyAt(rate)
    const calm = await latencyAt(STEADY_RATE)
    const p99Of = (runs: typeof latency) => ({ bare: pooledPercentile(runs.bare, 0.99), floor: pooledPercentile(runs.floor, 0.99), webhook: pooledPercentile(runs.webhook, 0.99), untracked: pooledPercentile(runs.untracked, 0.99) })

    const floor = median(s.inProcess.map(cpu))
    const added = medianDifference(s.bare, s.webhook, cpu)
    // Per round, in that round's floors: the machine's speed drifts over minutes, and the floor with it.
    const addedFloors = median(s.webhook.map((w, i) => (w.cpuPerRequest - s.bare[i]!.cpuPerRequest) / s.inProcess[i]!.cpuPerRequest))
    const floorRoute = medianDifference(s.bare, s.floor, cpu)
    const addedPaced = medianDifference(latency.bare, latency.webhook, (l) => l.cpuPerRequest)
    const p50 = { bare: pooledPercentile(latency.bare, 0.5), webhook: pooledPercentile(latency.webhook, 0.5) }
    const p99 = p99Of(latency)
    const calmP99 = p99Of(calm)
    const calmAt = `at ${STEADY_RATE} req/s, ${CONNECTIONS} connections`
    const appRatio = medianRatio(s.metrics, s.bare, cpu)
    const at = `at ${rate} req/s (the server half busy on the webhook route), ${CONNECTIONS} connections`
    const rows = [
      row('webhook floor', 'HMAC-SHA256 of v0:<ts>:<body> + JSON.parse, per event, in a process of its own on the servers\' core, in each round', null, floor, 'µs', 'the unit of the floor multiples', true),
      row('webhook route', 'throughput at saturation (baseline: bare JSON route, same app; median of per-round ratios)', median(s.bare.map(rps)), median(s.webhook.map(rps)), 'req/s', 'for reading', true, medianRatio(s.bare, s.webhook, rps))
    ]
    if (HAS_PROC) {
      rows.push(
        row('webhook route', 'server CPU per request (baseline: bare JSON route, same app)', median(s.bare.map(cpu)), median(s.webhook.map(cpu)), 'µs', 'for reading the row below', true, medianRatio(s.bare, s.webhook, cpu)),
        row('webhook route', 'server CPU added per request over the bare route, delivery tracking on (the default), at saturation (baseline: the floor; median of per-round multiples of that round\'s floor)', floor, added, 'µs', `≤ ${WEBHOOK_ADDED_GOAL} × floor`, addedFloors <= WEBHOOK_ADDED_GOAL, addedFloors),
        row('webhook route', `server CPU added per request over the bare route, ${at} (baseline: the floor)`, floor, addedPaced, 'µs', 'for reading the row above', true),
        row('webhook route', 'the floor as a route: server CPU added per request by a minimal signed route (createHmac, compare, parse) over the bare route, at saturation (baseline: the floor)', floor, floorRoute, 'µs', 'for reading the row above', true),
        row('webhook route', 'server CPU added per request over the minimal signed route: dedupe, delivery tracking, counting, lag, the deadline, at saturation', null, medianDifference(s.floor, s.webhook, cpu), 'µs', 'for reading the rows above', true),
        row('webhook route', 'server CPU added per request by delivery tracking: the route against the same route with delivery: false (another process), at saturation', null, medianDifference(s.untracked, s.webhook, cpu), 'µs', 'for reading the rows above', true),
        row('webhook route', 'noise: server CPU per request, bare route against itself (A/A)', null, medianDifference(s.bare, s.bareAgain, cpu), 'µs', 'for reading the rows above', true)
      )
    }
    rows.push(
      row('webhook route', `p50 latency ${at}, every round's requests pooled (baseline: bare route, same app)`, p50.bare, p50.webhook, 'ms', 'for reading the row below', true),
      row('webhook route', `p99 latency ${at}, every round's requests pooled (baseline: bare route, same app)`, p99.bare, p99.webhook, 'ms', 'for reading', true),
      row('webhook route', `p99 latency of the minimal signed route ${at}, every round's requests pooled (baseline: bare route, same app)`, p99.bare, p99.floor, 'ms', 'for reading the row above', true),
      row('webhook route', `p99 latency ${at}, every round's requests pooled (baseline: the same route with delivery: false, another process)`, p99.untracked, p99.webhook, 'ms', 'for reading the rows above', true),
      row('webhook route', `p99 latency ${calmAt}, every round's requests pooled (baseline: bare route, same app)`, calmP99.bare, calmP99.webhook, 'ms', `ratio ≤ ${WEBHOOK_P99_GOAL}`, calmP99.webhook <= WEBHOOK_P99_GOAL * calmP99.bare),
      row('webhook route', `p99 latency of the minimal signed route ${calmAt}, every round's requests pooled (baseline: bare route, same app)`, calmP99.bare, calmP99.floor, 'ms', 'for reading the row above', true),
      row('webhook route', `p99 latency ${calmAt}, every round's requests pooled (baseline: the same route with delivery: false, another process)`, calmP99.untracked, calmP99.webhook, 'ms', 'for reading the rows above', true)
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
    await Promise.all(started.map((s) => s.stop()))
    pin(ALL_CORES)
  }
}
