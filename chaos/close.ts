/*
 * Scenario 4: app.close() while Customer.io hangs every request and Redis is paused (SIGSTOP),
 * with events queued: in this process, and in a child process that must then exit by itself.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import cioObservability, { RedisDedupeStore, type CioWebhookOptions } from '../lib/index.ts'
import { createCioSimulator, type CioSimulator } from '../lib/testing/index.ts'
import { startRedis, type RedisServer } from '../test/fixtures/redis.ts'
import { cioOptions, ms, row, Teardown, waitFor, within, WEBHOOK_KEY, type Row, type ScenarioContext } from './shared.ts'

export type CloseMode = 'memory' | 'redis' | 'inbox'

export interface CloseChildConfig {
  mode: CloseMode
  simUrl: string
  siteId: string
  trackApiKey: string
  redisUrl: string | undefined
  webhookKey: string
  shutdownTimeoutMs: number
  events: number
}

/** queue.shutdownTimeoutMs of the apps under test. */
const SHUTDOWN_MS = 2000
/** webhook.inbox.closeTimeoutMs of the apps under test: the inbox's documented close bound. */
export const INBOX_CLOSE_BOUND_MS = 2000
const SLACK_MS = 1000
/** How long a child may live after it reported its app closed. */
const EXIT_BOUND_MS = 2000
/** How long past the bound a close is still waited for, to tell slow from hung. */
const GRACE_MS = 5000
const EVENTS = 200

const closeBound = (mode: CloseMode) => SHUTDOWN_MS + (mode === 'inbox' ? INBOX_CLOSE_BOUND_MS : 0) + SLACK_MS

/** Operations recorded by the simulator under the scenario's event name, by seq. */
const deliveredSeqs = (sim: CioSimulator) => new Set(sim.events.filter((e) => e.name === 'chaos_close').map((e) => e.data.seq as number))

async function hangingSimulator (t: Teardown, seed: number): Promise<CioSimulator> {
  const sim = await createCioSimulator({ seed })
  t.teardown(() => sim.close())
  sim.fault({ hang: true })
  return sim
}

/** Whether Customer.io has a batch in flight: the close then has something to end. */
const batchInFlight = (sim: CioSimulator) => waitFor(() => sim.requestsFor('batch').length > 0, 5000)

interface CloseOutcome { closeMs: number | undefined, lost: number | undefined, handedOver: number, detail: string }

async function closeInProcess (mode: CloseMode, t: Teardown, seed: number): Promise<CloseOutcome> {
  const sim = await hangingSimulator(t, seed)
  const redis = mode === 'memory' ? undefined : await startRedis(t, { appendonly: mode === 'inbox' })
  let client: Redis | undefined
  if (mode === 'redis') {
    client = new Redis(redis!.port, '127.0.0.1', { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 1000 })
    client.on('error', () => {})
    t.teardown(() => client!.disconnect())
  }
  const webhook: CioWebhookOptions = {
    signingKeys: WEBHOOK_KEY,
    ...(client === undefined ? {} : { dedupe: new RedisDedupeStore(client) }),
    ...(mode === 'inbox' ? { inbox: { connection: redis!.url, queueName: 'chaos-close', closeTimeoutMs: INBOX_CLOSE_BOUND_MS } } : {})
  }
  const handedOver = new Set<number>()
  const app: FastifyInstance = Fastify({ logger: false })
  let closing: Promise<void> | undefined
  t.teardown(() => closing ?? app.close())
  await app.register(cioObservability, cioOptions(sim, {
    client: { timeout: 300, retry: { maxRetries: 1 } },
    webhook,
    queue: {
      batchSize: 20,
      flushIntervalMs: 50,
      retryDelayMs: 50,
      maxRetryDelayMs: 400,
      shutdownTimeoutMs: SHUTDOWN_MS,
      onDrop: (operations, reason) => {
        if (reason === 'shutdown') for (const op of operations) handedOver.add((op.attributes as { seq: number }).seq)
      }
    }
  }))
  await app.ready()
  const accepted: number[] = []
  for (let seq = 0; seq < EVENTS; seq++) if (app.cio.queue!.track(`c-${seq % 10}`, { name: 'chaos_close', data: { seq } })) accepted.push(seq)
  await batchInFlight(sim)

  redis?.pause()
  const started = performance.now()
  let closeMs: number | undefined
  let detail = ''
  try {
    closing = app.close()
    const outcome = await within(closing, closeBound(mode) + GRACE_MS)
    if (outcome.done) closeMs = performance.now() - started
    if (outcome.done && !outcome.ok) detail = `close rejected: ${String(outcome.error)}`
  } finally {
    redis?.resume()
  }
  if (closeMs === undefined) {
    const after = await within(closing, 10_000)
    detail = after.done
      ? `resolved only ${ms(performance.now() - started)} ms after it began, once Redis was resumed`
      : 'still not resolved 10 s after Redis was resumed'
  }
  const delivered = deliveredSeqs(sim)
  const lost = closeMs === undefined ? undefined : accepted.filter((s) => !handedOver.has(s) && !delivered.has(s)).length
  return { closeMs, lost, handedOver: handedOver.size, detail }
}

interface ChildOutcome extends CloseOutcome { exitBounded: boolean, exitDetail: string }

async function closeInChild (mode: CloseMode, t: Teardown, seed: number): Promise<ChildOutcome> {
  const sim = await hangingSimulator(t, seed)
  const redis: RedisServer | undefined = mode === 'memory' ? undefined : await startRedis(t, { appendonly: mode === 'inbox' })
  const config: CloseChildConfig = {
    mode,
    simUrl: sim.url,
    siteId: sim.siteId,
    trackApiKey: sim.trackApiKey,
    redisUrl: redis?.url,
    webhookKey: WEBHOOK_KEY,
    shutdownTimeoutMs: SHUTDOWN_MS,
    events: EVENTS
  }
  const child = spawn(process.execPath, [fileURLToPath(new URL('close-child.ts', import.meta.url)), JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = once(child, 'exit')
  const alive = () => child.exitCode === null && child.signalCode === null
  t.teardown(async () => {
    if (!alive()) return
    child.kill('SIGKILL')
    await exited
  })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-2000) })
  const messages: Array<Record<string, unknown>> = []
  createInterface({ input: child.stdout }).on('line', (line) => { messages.push(JSON.parse(line) as Record<string, unknown>) })
  const message = async (key: string, boundMs: number) => {
    await waitFor(() => messages.some((m) => key in m) || !alive(), boundMs, 20)
    return messages.find((m) => key in m)
  }

  const ready = await message('ready', 30_000)
  if (ready === undefined) return { closeMs: undefined, lost: undefined, handedOver: 0, exitBounded: false, detail: `the child never got ready: ${stderr.trim()}`, exitDetail: '' }
  await batchInFlight(sim)
  redis?.pause()
  const started = performance.now()
  let closed: Record<string, unknown> | undefined
  let exitBounded = false
  let detail = ''
  let exitDetail = ''
  try {
    child.kill('SIGTERM')
    closed = await message('closed', closeBound(mode) + GRACE_MS)
    if (closed?.closed === true) {
      exitBounded = (await within(exited, EXIT_BOUND_MS)).done
      if (!exitBounded) exitDetail = `left right after close: ${(closed.resources as string[]).join('; ')}`
    } else {
      detail = closed === undefined ? `its app.close() had not resolved ${ms(performance.now() - started)} ms after SIGTERM` : `close failed: ${String(closed.error)}`
      if (!alive()) detail += `; it exited (${child.exitCode ?? child.signalCode}): ${stderr.trim()}`
    }
  } finally {
    redis?.resume()
  }
  const closeMs = closed?.closed === true ? closed.ms as number : undefined
  const handed = new Set(closed?.handedOver as number[] | undefined)
  const delivered = deliveredSeqs(sim)
  const lost = closeMs === undefined ? undefined : (ready.accepted as number[]).filter((s) => !handed.has(s) && !delivered.has(s)).length
  return { closeMs, lost, handedOver: handed.size, exitBounded, detail, exitDetail }
}

export async function closeScenario (mode: CloseMode, { seed }: ScenarioContext): Promise<Row> {
  const result = row(`close ${mode}`)
  const bound = closeBound(mode)
  const t = new Teardown()
  const forChild = new Teardown()
  try {
    // Side by side, each with its own simulator and Redis.
    const [own, child] = await Promise.all([closeInProcess(mode, t, seed), closeInChild(mode, forChild, seed)])
    const closes = [own.closeMs, child.closeMs]
    const resolved = closes.filter((c): c is number => c !== undefined)
    Object.assign(result, {
      accepted: EVENTS * 2,
      dropped: own.handedOver + child.handedOver,
      slowestCloseMs: resolved.length === 2 ? ms(Math.max(...resolved)) : `>${bound + GRACE_MS}`,
      exitBounded: child.exitBounded
    })
    result.notes.push(`bound ${bound} ms (shutdownTimeoutMs ${SHUTDOWN_MS}${mode === 'inbox' ? ` + inbox ${INBOX_CLOSE_BOUND_MS}` : ''} + ${SLACK_MS} slack); ` +
      `close in process ${own.closeMs === undefined ? 'unresolved' : `${ms(own.closeMs)} ms`}, in the child ${child.closeMs === undefined ? 'unresolved' : `${ms(child.closeMs)} ms`}; ` +
      `handed to onDrop('shutdown') ${own.handedOver} + ${child.handedOver} of ${EVENTS} + ${EVENTS}`)
    for (const [where, outcome] of [['in process', own], ['in the child', child]] as const) {
      if (outcome.closeMs === undefined || outcome.closeMs > bound) {
        result.failures.push(`CLOSE ${where}: ${outcome.closeMs === undefined ? `not resolved within ${bound + GRACE_MS} ms` : `${ms(outcome.closeMs)} ms > ${bound} ms`}${outcome.detail === '' ? '' : ` (${outcome.detail})`}`)
      }
      if (outcome.lost !== undefined && outcome.lost > 0) result.failures.push(`LOSS ${where}: ${outcome.lost} accepted events neither delivered nor handed to onDrop('shutdown')`)
    }
    if (!child.exitBounded) {
      result.failures.push(`EXIT: the child did not exit by itself within ${EXIT_BOUND_MS} ms of its close${child.exitDetail === '' ? ' (its close never resolved)' : ` (${child.exitDetail})`}`)
    }
  } catch (err) {
    result.failures.push(`scenario error: ${String(err)}`)
  } finally {
    result.failures.push(...await t.run(), ...await forChild.run())
  }
  return result
}
