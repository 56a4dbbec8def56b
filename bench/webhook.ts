/**
 * The signed webhook route against a bare Fastify JSON route with the same bodies, on loopback
 * at 50 connections: throughput at saturation, server CPU per request, and latency at a steady
 * rate below saturation (at saturation, latency is only connections ÷ throughput).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import os from 'node:os'
import autocannon from 'autocannon'
import { signWebhook, webhookEvent } from '../lib/testing/index.ts'
import { alternate, median, ROUNDS, row, type Row } from './harness.ts'
import { paced } from './paced.ts'

const KEY = 'bench-signing-key'
const CONNECTIONS = 50
const SECONDS = Number(process.env.BENCH_WEBHOOK_SECONDS ?? 1.5)
// Short rounds, many of them: this machine's speed drifts by ±20% over seconds, and the median
// of per-round ratios (each from adjacent runs) cancels most of that drift.
const ROUNDS_HERE = ROUNDS * 3

/**
 * On Linux, the servers get core 0 and this process, the load generator, the other cores, so the
 * two never take turns on one core and a server's throughput is its own.
 */
const PIN = process.platform === 'linux' && os.availableParallelism() >= 2 && spawnSync('taskset', ['-V']).status === 0
const CLOCK_TICKS = process.platform === 'linux' ? Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100 : 0

function pinSelf (cores: string): void {
  if (PIN) spawnSync('taskset', ['-a', '-p', '-c', cores, String(process.pid)], { stdio: 'ignore' })
}

interface Server { url: string, child: ChildProcess, cpuMicros: () => number }

async function server (mode: 'bare' | 'signed'): Promise<Server> {
  const args = [new URL('webhook-server.ts', import.meta.url).pathname, mode, KEY]
  // taskset execs node, so the child's pid is the server's.
  const child = PIN
    ? spawn('taskset', ['-c', '0', process.execPath, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  const [chunk] = await once(child.stdout!, 'data') as [Buffer]
  const cpuMicros = () => {
    if (CLOCK_TICKS === 0) return Number.NaN
    // Fields 14 and 15 of /proc/<pid>/stat (after the command name): user and system time in ticks.
    const fields = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
    return (Number(fields[11]) + Number(fields[12])) * 1e6 / CLOCK_TICKS
  }
  return { url: chunk.toString().trim(), child, cpuMicros }
}

interface Sample { rps: number, cpuPerRequest: number }

export async function benchWebhook (): Promise<Row[]> {
  // Realistic ~1 KB events, signed up front so the load generator only picks one.
  const pool = Array.from({ length: 20_000 }, () => {
    const body = JSON.stringify(webhookEvent('email', 'delivered', { subject: 'Your order has shipped', content_id: 3, href: `https://example.com/${'x'.repeat(600)}` }))
    return { body, headers: { 'content-type': 'application/json', ...signWebhook(body, KEY) } }
  })
  pinSelf(`1-${os.availableParallelism() - 1}`)
  const servers = { bare: await server('bare'), signed: await server('signed') }
  let next = 0
  const load = (target: Server, path: string) => async (): Promise<Sample> => {
    const cpuBefore = target.cpuMicros()
    const result = await autocannon({
      url: `${target.url}${path}`,
      method: 'POST',
      connections: CONNECTIONS,
      duration: SECONDS,
      requests: [{ setupRequest: (request: any) => ({ ...request, ...pool[next++ % pool.length] }) }]
    })
    if (result.non2xx > 0 || result.errors > 0) throw new Error(`${path}: ${result.non2xx} non-2xx, ${result.errors} errors`)
    return { rps: result.requests.total / SECONDS, cpuPerRequest: (target.cpuMicros() - cpuBefore) / result.requests.total }
  }
  const WEBHOOK = '/webhooks/customerio'
  try {
    // The route's own cost: a bare JSON route in the same app (fastify-metrics times both).
    const route = await alternate(load(servers.signed, '/bare'), load(servers.signed, WEBHOOK), ROUNDS_HERE)
    // The whole plugin's cost: a bare JSON route in an app without it.
    const whole = await alternate(load(servers.bare, '/bare'), load(servers.signed, WEBHOOK), ROUNDS_HERE)
    // Latency at half the webhook route's saturation throughput, for both routes: each server is
    // at most half busy, so the figures show the route's latency rather than a queue's.
    const rate = Math.round(median(route.candidate.map((s) => s.rps)) / 2)
    const steady = (target: Server, path: string) => async () => {
      const result = await paced({ origin: target.url, path, rate, seconds: SECONDS * 2, connections: CONNECTIONS, next: () => pool[next++ % pool.length]! })
      if (result.failed > 0) throw new Error(`${path}: ${result.failed} of ${result.sent} failed`)
      return result
    }
    const latency = await alternate(steady(servers.bare, '/bare'), steady(servers.signed, WEBHOOK), ROUNDS)
    const ratios = (samples: { baseline: Sample[], candidate: Sample[] }, of: (b: Sample, c: Sample) => number) =>
      median(samples.candidate.map((c, i) => of(samples.baseline[i]!, c)))
    const throughputRow = (measure: string, samples: { baseline: Sample[], candidate: Sample[] }) => {
      const ratio = ratios(samples, (b, c) => c.rps / b.rps)
      return row('webhook route', measure, median(samples.baseline.map((s) => s.rps)), median(samples.candidate.map((s) => s.rps)), 'req/s', 'ratio ≥ 0.85', ratio >= 0.85, ratio)
    }
    const cpu = (samples: Sample[]) => median(samples.map((s) => s.cpuPerRequest))
    const quantile = (samples: Array<{ p50: number, p99: number }>, q: 'p50' | 'p99') => median(samples.map((s) => s[q]))
    const p99 = quantile(latency.candidate, 'p99')
    const rows = [
      throughputRow('throughput vs a bare JSON route in the same app (median of per-round ratios)', route),
      throughputRow('throughput vs a bare JSON route in an app without the plugin', whole)
    ]
    if (CLOCK_TICKS > 0) {
      rows.push(row('webhook route', 'server CPU per request vs the bare route in the same app', cpu(route.baseline), cpu(route.candidate), 'µs', 'for reading the rows above', true, ratios(route, (b, c) => c.cpuPerRequest / b.cpuPerRequest)))
    }
    const at = `at ${rate} req/s (half the webhook route's saturation) over ${CONNECTIONS} connections`
    rows.push(row('webhook route', `p50 latency ${at}`, quantile(latency.baseline, 'p50'), quantile(latency.candidate, 'p50'), 'ms', 'for reading the row below', true))
    rows.push(row('webhook route', `p99 latency ${at}`, quantile(latency.baseline, 'p99'), p99, 'ms', '≤ 5 ms', p99 <= 5))
    return rows
  } finally {
    servers.bare.child.kill()
    servers.signed.child.kill()
    pinSelf(`0-${os.availableParallelism() - 1}`)
  }
}
