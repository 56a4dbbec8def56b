import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { context, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { parse } from 'yaml'
import { SendEmailRequest } from 'customerio-node'
import { webhookEvent } from '../../lib/testing/index.ts'
import { startRedis } from '../fixtures/redis.ts'
import { until } from '../fixtures/wait.ts'
import { buildApp, simOptions, startSimulator, WEBHOOK_KEY } from '../helpers.ts'

const installed = spawnSync('prometheus', ['--version']).status === 0
const JOB = 'cio-app'
const monitoring = new URL('../../monitoring/', import.meta.url)

// Spans for the exemplar round trip.
const exporter = new InMemorySpanExporter()
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }))

async function freePort (): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** The shipped rules with windows and `for:` shrunk to seconds, so a test run can see them fire and resolve. */
function quickRules (): string {
  const seconds: Record<string, string> = { '5m': '10s', '10m': '20s', '1h': '30s', '2h': '40s', '1d': '60s' }
  return readFileSync(new URL('alerts.yml', monitoring), 'utf8')
    .replace(/\[(5m|10m|1h|2h|1d)\]/g, (_, w: string) => `[${seconds[w]}]`)
    .replace(/offset 1h/g, 'offset 30s')
    .replace(/for: \S+/g, 'for: 2s')
}

/** The shared `until`, for a condition read from Prometheus: `fn` answers undefined while it does not hold. */
async function eventually<T> (what: string, fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  return await until(async () => {
    const value = await fn()
    if (value === undefined) throw new Error(`timed out waiting for ${what}`)
    return value
  }, timeoutMs)
}

// This file may run longer than tap's per-file timeout allows other files: it sets its own.
t.setTimeout(300_000)

t.test('a real Prometheus scrapes the app: dashboard queries and rules return data; the error alert fires and resolves', {
  skip: installed ? false : 'prometheus is not installed (.ci/run installs it)',
  // About 20 s when all is well. Its waits below are bounded (20 + 60 + 60 + 90 s) and say what
  // they waited for; this only catches a hang outside them.
  timeout: 240_000
}, async (t) => {
  const sim = await startSimulator(t)
  // Inbox mode, so the inbox panels have data too; its events are counted when their jobs complete.
  const redis = await startRedis(t)
  const { app } = await buildApp(t, simOptions(sim, {
    queue: { flushIntervalMs: 100 },
    metrics: { defaultMetrics: false },
    webhook: { signingKeys: WEBHOOK_KEY, inbox: { connection: redis.url, backoffMs: 1 } },
    outbox: { connection: redis.url, blockMs: 100 }
  }))
  const address = await app.listen({ host: '127.0.0.1', port: 0 })

  const dir = mkdtempSync(join(tmpdir(), 'cio-prometheus-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'rules.yml'), quickRules())
  writeFileSync(join(dir, 'prometheus.yml'), [
    'global: { scrape_interval: 1s, evaluation_interval: 1s }',
    `rule_files: [${join(dir, 'rules.yml')}]`,
    `scrape_configs: [{ job_name: ${JOB}, static_configs: [{ targets: ['${new URL(address).host}'] }] }]`
  ].join('\n'))
  const port = await freePort()
  const prom = `http://127.0.0.1:${port}`
  const child = spawn('prometheus', [
    `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`, '--enable-feature=exemplar-storage'
  ], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (chunk) => { stderr = (stderr + chunk).slice(-4000) })
  t.teardown(() => { child.kill('SIGKILL') })
  await eventually('Prometheus to be ready', async () => (await fetch(`${prom}/-/ready`)).ok || undefined, 20_000).catch((err) => { throw new Error(`${err.message}\n${stderr}`) })

  const api = async (path: string) => {
    const body = await (await fetch(`${prom}${path}`)).json() as { status: string, data: any, error?: string }
    if (body.status !== 'success') throw new Error(`${path}: ${body.error}`)
    return body.data
  }
  const query = (expr: string) => api(`/api/v1/query?query=${encodeURIComponent(expr)}`) as Promise<{ result: unknown[] }>

  // Traffic: successes, some failures, signed webhooks of every channel, queued Track calls, sends.
  let n = 0
  const traffic = setInterval(() => {
    n++
    const calls: Array<Promise<unknown>> = [
      app.cio.identify(`p${n}`, {}),
      app.cio.sendEmail(new SendEmailRequest({ to: 'x@example.com', identifiers: { id: 'p' }, transactional_message_id: 1 })),
      sim.sendWebhook(`${address}/webhooks/customerio`, n % 3 === 0 ? webhookEvent('push', 'sent') : webhookEvent('email', (['sent', 'delivered', 'bounced', 'spammed'] as const)[n % 4]!), WEBHOOK_KEY)
    ]
    if (n % 5 === 0) calls.push(app.cio.listCampaigns())
    app.cio.queue!.identify(`q${n}`)
    calls.push(app.cio.outbox!.identify(`o${n}`))
    // A delivery's life, so the delivery panels have data: sent, delivered 5 s later, opened after 30 s.
    if (n % 4 === 0) calls.push(sim.deliver(`d${n}`, [{ metric: 'sent', after: 0 }, { metric: 'delivered', after: 5 }, { metric: 'opened', after: 30 }], { url: `${address}/webhooks/customerio`, signingKey: WEBHOOK_KEY, start: Math.floor(Date.now() / 1000) - 60 }))
    Promise.allSettled(calls).catch(() => {})
  }, 40)
  t.teardown(() => clearInterval(traffic))
  sim.fault({ operation: 'listCampaigns', status: 429, ratio: 0.5, times: Infinity })

  await eventually('the target to be up', async () => {
    const { activeTargets } = await api('/api/v1/targets') as { activeTargets: Array<{ health: string, lastError: string }> }
    return activeTargets[0]?.health === 'up' ? true : undefined
  }, 20_000)

  const dashboard = JSON.parse(readFileSync(new URL('dashboard.json', monitoring), 'utf8')) as { panels: Array<{ title: string, targets?: Array<{ expr: string, refId: string }> }> }
  const panelQueries = dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({
    name: `${panel.title} ${target.refId}`,
    expr: target.expr.replaceAll('$__rate_interval', '10s').replaceAll('$job', JOB).replaceAll('$instance', '.+')
  })))
  const shipped = (parse(readFileSync(new URL('alerts.yml', monitoring), 'utf8')) as { groups: Array<{ rules: Array<{ record?: string }> }> }).groups.flatMap((g) => g.rules)
  const recorded = shipped.flatMap((rule) => rule.record === undefined ? [] : [rule.record])
  // Rates need two scrapes and recording rules an evaluation: wait until every query has data.
  await eventually('every dashboard query and recording rule to return data', async () => {
    for (const expr of [...panelQueries.map((q) => q.expr), ...recorded]) if ((await query(expr)).result.length === 0) return undefined
    return true
  }, 60_000).catch(() => {}) // on a timeout, the assertions below name what has none
  for (const { name, expr } of panelQueries) {
    const { result } = await query(expr)
    t.ok(result.length > 0, `${name} returns data`)
  }
  t.ok((await api('/api/v1/label/job/values?match[]=cio_info') as string[]).includes(JOB), 'the job variable finds the app')
  t.ok((await api(`/api/v1/label/instance/values?match[]=${encodeURIComponent(`cio_info{job=~"${JOB}"}`)}`) as string[]).length > 0, 'the instance variable finds it')

  const groups = (await api('/api/v1/rules') as { groups: Array<{ rules: Array<{ name: string, type: string, health: string, lastError?: string }> }> }).groups
  const rules = groups.flatMap((g) => g.rules)
  t.equal(rules.length, shipped.length, 'every shipped rule is loaded')
  for (const rule of rules) {
    t.equal(rule.health, 'ok', `${rule.name} evaluates without error ${rule.lastError ?? ''}`)
    if (rule.type === 'recording') t.ok((await query(rule.name)).result.length > 0, `${rule.name} returns data`)
  }

  // Exemplars: the latency histogram links to the trace of a real call.
  const traceIds = new Set(exporter.getFinishedSpans().map((s) => s.spanContext().traceId))
  const now = Date.now() / 1000
  const exemplars = await api(`/api/v1/query_exemplars?query=cio_api_request_duration_seconds_bucket&start=${now - 60}&end=${now + 1}`) as Array<{ exemplars: Array<{ labels: { trace_id: string } }> }>
  const found = exemplars.flatMap((e) => e.exemplars.map((x) => x.labels.trace_id))
  t.ok(found.length > 0 && found.every((id) => traceIds.has(id)), `exemplars carry trace ids of recorded spans (${found.length})`)

  // An outage of the Track API: the error-ratio alert goes pending/firing, then resolves.
  const state = async () => {
    const { alerts } = await api('/api/v1/alerts') as { alerts: Array<{ labels: { alertname: string }, state: string }> }
    return alerts.find((a) => a.labels.alertname === 'CustomerioApiHighErrorRatio')?.state
  }
  t.equal(await state(), undefined, 'quiet before the outage')
  const outage = sim.fault({ api: 'track', status: 503 })
  const seen = new Set<string>()
  await eventually('the alert to fire', async () => { const s = await state(); if (s !== undefined) seen.add(s); return s === 'firing' ? s : undefined }, 60_000)
  t.ok(seen.has('firing'), `the alert fired (states seen: ${[...seen].join(', ')})`)
  outage()
  await eventually('the alert to resolve', async () => (await state()) === undefined ? true : undefined, 90_000)
  t.pass('the alert resolved after recovery')
})
