/** The signed webhook route against a bare Fastify JSON route with the same bodies, under autocannon at 50 connections. */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import autocannon from 'autocannon'
import { signWebhook, webhookEvent } from '../lib/testing/index.ts'
import { alternate, median, row, type Row } from './harness.ts'

const KEY = 'bench-signing-key'
const CONNECTIONS = 50
const SECONDS = Number(process.env.BENCH_WEBHOOK_SECONDS ?? 3)

async function server (mode: 'bare' | 'signed'): Promise<{ url: string, child: ChildProcess }> {
  const child = spawn(process.execPath, [new URL('webhook-server.ts', import.meta.url).pathname, mode, KEY], { stdio: ['ignore', 'pipe', 'inherit'] })
  const [chunk] = await once(child.stdout!, 'data') as [Buffer]
  return { url: chunk.toString().trim(), child }
}

export async function benchWebhook (): Promise<Row[]> {
  // Realistic ~1 KB events, signed up front so the load generator only picks one.
  const pool = Array.from({ length: 20_000 }, () => {
    const body = JSON.stringify(webhookEvent('email', 'delivered', { subject: 'Your order has shipped', content_id: 3, href: `https://example.com/${'x'.repeat(600)}` }))
    return { body, headers: { 'content-type': 'application/json', ...signWebhook(body, KEY) } }
  })
  const servers = { bare: await server('bare'), signed: await server('signed') }
  let next = 0
  const load = (url: string) => async () => {
    const result = await autocannon({
      url,
      method: 'POST',
      connections: CONNECTIONS,
      duration: SECONDS,
      requests: [{ setupRequest: (request: any) => ({ ...request, ...pool[next++ % pool.length] }) }]
    })
    if (result.non2xx > 0 || result.errors > 0) throw new Error(`${url}: ${result.non2xx} non-2xx, ${result.errors} errors`)
    return { rps: result.requests.average, p99: result.latency.p99 }
  }
  const webhook = `${servers.signed.url}/webhooks/customerio`
  try {
    // The route's own cost: a bare JSON route in the same app (fastify-metrics' hooks on both).
    const route = await alternate(load(`${servers.signed.url}/bare`), load(webhook))
    // The whole plugin's cost: a bare JSON route in an app without it.
    const whole = await alternate(load(`${servers.bare.url}/bare`), load(webhook))
    const rps = (s: { rps: number }) => s.rps
    const routeBase = median(route.baseline.map(rps))
    const routeOurs = median(route.candidate.map(rps))
    const wholeBase = median(whole.baseline.map(rps))
    const wholeOurs = median(whole.candidate.map(rps))
    const p99 = median(whole.candidate.map((s) => s.p99))
    return [
      row('webhook route', 'throughput vs a bare JSON route in the same app', routeBase, routeOurs, 'req/s', 'ratio ≥ 0.85', routeOurs / routeBase >= 0.85),
      row('webhook route', 'throughput vs a bare JSON route in an app without the plugin', wholeBase, wholeOurs, 'req/s', 'ratio ≥ 0.85', wholeOurs / wholeBase >= 0.85),
      row('webhook route', `p99 latency at ${CONNECTIONS} connections`, median(whole.baseline.map((s) => s.p99)), p99, 'ms', '≤ 5 ms', p99 <= 5)
    ]
  } finally {
    servers.bare.child.kill()
    servers.signed.child.kill()
  }
}
