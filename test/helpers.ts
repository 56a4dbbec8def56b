import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import cioObservability, { type CioObservabilityOptions } from '../lib/index.ts'
import { createCioSimulator, signWebhook, type CioSimulator, type SimulatorOptions } from '../lib/testing/index.ts'
// Every test of a file that uses these helpers gets a timeout (30 s unless it sets its own).
import './fixtures/timeouts.ts'

interface Teardown { teardown: (fn: () => unknown) => void }

export async function startSimulator (t: Teardown, options?: SimulatorOptions): Promise<CioSimulator> {
  const sim = await createCioSimulator(options)
  t.teardown(() => sim.close())
  return sim
}

export const WEBHOOK_KEY = 'test-webhook-signing-key'

/**
 * Plugin options that point at the simulator, with fast retries and a webhook key. The SDK's
 * own 10 s timeout stays: a test that wants a timeout points it at a server that never answers.
 */
export function simOptions (sim: CioSimulator, extra: CioObservabilityOptions = {}): CioObservabilityOptions {
  return {
    siteId: sim.siteId,
    trackApiKey: sim.trackApiKey,
    appApiKey: sim.appApiKey,
    pipelinesWriteKey: sim.pipelinesWriteKey,
    region: sim.region,
    client: { retry: { maxRetries: 2, minTimeoutMs: 1, maxTimeoutMs: 5 } },
    metrics: { defaultMetrics: false },
    webhook: { signingKeys: WEBHOOK_KEY },
    env: {},
    ...extra
  }
}

export interface LogCapture { lines: Array<Record<string, any>>, text: () => string }

/** A pino destination that keeps every line, parsed. */
export function captureLogs (): { stream: Writable, logs: LogCapture } {
  const lines: Array<Record<string, any>> = []
  let raw = ''
  const stream = new Writable({
    write (chunk, _enc, done) {
      raw += chunk.toString()
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line))
      done()
    }
  })
  return { stream, logs: { lines, text: () => raw } }
}

export interface Built { app: FastifyInstance, logs: LogCapture }

export async function buildApp (
  t: Teardown,
  options: CioObservabilityOptions,
  fastifyOptions: FastifyServerOptions = {},
  routes: (app: FastifyInstance) => void = () => {}
): Promise<Built> {
  const { stream, logs } = captureLogs()
  const app = Fastify({ logger: { level: 'debug', stream }, ...fastifyOptions })
  t.teardown(() => app.close())
  await app.register(cioObservability, options)
  routes(app)
  await app.ready()
  return { app, logs }
}

/** POSTs `event` to the webhook route as Customer.io does: JSON, signed with the test key. */
export function postWebhook (app: FastifyInstance, event: unknown, url = '/webhooks/customerio') {
  const body = JSON.stringify(event)
  return app.inject({ method: 'POST', url, payload: body, headers: { 'content-type': 'application/json', ...signWebhook(body, WEBHOOK_KEY) } })
}

/** Prometheus text as series → value (`name{a="1",b="2"}` as rendered → number). */
function parseExposition (text: string): Map<string, number> {
  const found = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const at = line.lastIndexOf(' ')
    found.set(line.slice(0, at), Number(line.slice(at + 1)))
  }
  return found
}

/**
 * Every series of the metrics route, for a test that looks at the exposition as a whole (which
 * series exist, how many). To read one value, use {@link metric}.
 */
export async function scrape (app: FastifyInstance, url = '/metrics'): Promise<Map<string, number>> {
  const res = await app.inject(url)
  if (res.statusCode !== 200) throw new Error(`scrape answered ${res.statusCode}`)
  return parseExposition(res.body)
}

/** `name{a="1",b="2"}` with labels in the order given. */
export function series (name: string, labels: Record<string, string> = {}): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v}"`)
  return parts.length === 0 ? name : `${name}{${parts.join(',')}}`
}

function valueIn (found: Map<string, number>, name: string, labels: Record<string, string>, where: string): number {
  const value = found.get(series(name, labels))
  if (value === undefined) throw new Error(`no series ${series(name, labels)} on ${where}`)
  return value
}

/**
 * Value of one series, read back from the metrics route. A missing series is an error, never
 * 0, so a renamed metric or label fails the test instead of passing an `=== 0` check.
 * The one way tests read a metric of an app (a bare registry: {@link registryMetric}).
 */
export async function metric (app: FastifyInstance, name: string, labels: Record<string, string> = {}, url = '/metrics'): Promise<number> {
  return valueIn(await scrape(app, url), name, labels, url)
}

/** {@link metric} for a registry with no app around it (the queue's unit tests, a registry the test made). */
export async function registryMetric (registry: { metrics: () => Promise<string> | string }, name: string, labels: Record<string, string> = {}): Promise<number> {
  return valueIn(parseExposition(await registry.metrics()), name, labels, 'the registry')
}

/** The rejection reason of a promise that must reject (fails the test through `undefined` otherwise). */
export async function rejection (promise: PromiseLike<unknown>): Promise<any> {
  return Promise.resolve(promise).then(() => undefined, (err: unknown) => err)
}
