/*
 * Scenario 3: the reporting-webhook route at three app instances, fed over real HTTP by a
 * stand-in for Customer.io that retries every event until it gets a 2xx, while onEvent
 * fails or is slow now and then and, with Redis, Redis is paused, killed and put to sleep.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { Queue, type ConnectionOptions } from 'bullmq'
import { Redis } from 'ioredis'
import cioObservability, { MemoryDedupeStore, RedisDedupeStore, type CioWebhookEvent, type CioWebhookOptions } from '../lib/index.ts'
import { createCioSimulator, signWebhook, webhookEvent } from '../lib/testing/index.ts'
import { inboxJobId } from '../lib/webhook/inbox/mode.ts'
import { startRedis } from '../test/fixtures/redis.ts'
import {
  between, cioOptions, describeCounts, ms, pick, redisFaultSchedule, redisSleeper, row, sleep, Teardown, waitFor, WEBHOOK_KEY,
  type Random, type RedisFaultLog, type Row, type ScenarioContext
} from './shared.ts'

export type WebhookVariant = 'memory' | 'redis' | 'inbox'

const INSTANCES = 3
const ANSWER_WITHIN_MS = 3000
/** An answer slower than this is late: Customer.io waits 4 s, the route promises answerWithinMs. */
const LATE_MS = ANSWER_WITHIN_MS + 500
/** Customer.io's wait for an answer; the stand-in aborts the request then and sends it again later. */
const CIO_TIMEOUT_MS = 4000
/** The stand-in's retries of one event stop this long after the fault phase ended. */
const SETTLE_MS = 20_000
/** After the last 2xx, how long every event's onEvent has to have run once successfully (inbox retries included). */
const RUN_BOUND_MS = 20_000
/**
 * The inbox's lock and stalled check: a job whose worker lost its lock while Redis was down runs
 * again once the lock has lapsed, at the next check, so both must fit within RUN_BOUND_MS.
 */
const INBOX_LOCK_MS = 5_000
/** The app's Redis client: commands fail quickly while Redis cannot answer. */
const COMMAND_TIMEOUT_MS = 1000

interface Run { readonly id: string, readonly instance: number, readonly start: number, end?: number, ok?: boolean }

/** Every onEvent run, and what ran at the same time as another run of its event. */
class RunLog {
  readonly runs: Run[] = []
  readonly #active = new Map<string, number>()
  readonly #ok = new Map<string, number>()
  /** A run that started while another run of its event was going: when that other run started, and this one. */
  overlaps: Array<{ id: string, instances: number[], since: number, at: number }> = []

  okCount (id: string): number { return this.#ok.get(id) ?? 0 }

  /** onEvent for `instance`: 3% of runs fail, 2% take 3.5–4.5 s (past answerWithinMs), the rest 0–20 ms. */
  handler (instance: number, rng: Random) {
    return async (event: CioWebhookEvent) => {
      const id = event.event_id ?? '(none)'
      const active = this.#active.get(id) ?? 0
      if (active > 0) {
        const going = this.runs.filter((r) => r.id === id && r.end === undefined)
        this.overlaps.push({ id, instances: going.map((r) => r.instance).concat(instance), since: Math.min(...going.map((r) => r.start)), at: Date.now() })
      }
      this.#active.set(id, active + 1)
      const run: Run = { id, instance, start: Date.now() }
      this.runs.push(run)
      const r = rng()
      try {
        if (r < 0.03) {
          await sleep(5)
          throw new Error('chaos: the handler dependency failed')
        }
        await sleep(r < 0.05 ? between(rng, 3500, 4500) : between(rng, 0, 20))
        run.ok = true
        this.#ok.set(id, this.okCount(id) + 1)
      } finally {
        run.end = Date.now()
        this.#active.set(id, this.#active.get(id)! - 1)
      }
    }
  }
}

/** The stand-in for Customer.io: signed POSTs to a random instance, retried with backoff until a 2xx. */
class Sender {
  answers = 0
  late = 0
  timeouts = 0
  slowest = 0
  readonly statuses = new Map<string, number>()
  readonly #urls: string[]
  readonly #rng: Random

  constructor (urls: string[], rng: Random) {
    this.#urls = urls
    this.#rng = rng
  }

  /** Resolves true once an instance answered the event 2xx, false if `giveUpAt` came first. */
  async deliver (event: object, giveUpAt: () => number): Promise<boolean> {
    const body = JSON.stringify(event)
    for (let attempt = 0; ; attempt++) {
      const url = pick(this.#rng, this.#urls)
      const started = performance.now()
      let status: number | 'timeout' | 'error'
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...signWebhook(body, WEBHOOK_KEY) },
          body,
          signal: AbortSignal.timeout(CIO_TIMEOUT_MS)
        })
        status = res.status
        await res.arrayBuffer()
      } catch (err) {
        status = (err as Error).name === 'TimeoutError' ? 'timeout' : 'error'
      }
      const took = performance.now() - started
      this.answers++
      this.slowest = Math.max(this.slowest, took)
      if (took > LATE_MS || status === 'timeout') this.late++
      if (status === 'timeout') this.timeouts++
      this.statuses.set(String(status), (this.statuses.get(String(status)) ?? 0) + 1)
      if (typeof status === 'number' && status >= 200 && status < 300) return true
      if (Date.now() >= giveUpAt()) return false
      await sleep(Math.min(2000, 100 * 2 ** Math.min(attempt, 5)) * between(this.#rng, 0.5, 1))
    }
  }
}

/** Where the inbox's jobs for `eventIds` are, for a failure's message: `; jobs: active ×1`. */
async function jobStates (url: string, eventIds: readonly string[]): Promise<string> {
  const client = new Redis(url, { maxRetriesPerRequest: 1 })
  client.on('error', () => {})
  const queue = new Queue('chaos', { connection: client as unknown as ConnectionOptions })
  try {
    const states = new Map<string, number>()
    for (const id of eventIds) {
      const job = await queue.getJob(inboxJobId(id))
      const state = job === undefined ? 'no job' : `${await job.getState()} after ${job.attemptsMade} attempts`
      states.set(state, (states.get(state) ?? 0) + 1)
    }
    return `; jobs: ${describeCounts(states)}`
  } catch (err) {
    return `; jobs unknown: ${String(err)}`
  } finally {
    await queue.close().catch(() => {})
    client.disconnect()
  }
}

export async function webhookScenario (variant: WebhookVariant, { phaseMs, seed, rng }: ScenarioContext): Promise<Row> {
  const result = row(`webhook ${variant}`)
  const t = new Teardown()
  try {
    const sim = await createCioSimulator({ seed })
    t.teardown(() => sim.close())
    const redis = variant === 'memory' ? undefined : await startRedis(t, { appendonly: variant === 'inbox' })

    // The app's own Redis client, shared by the three instances' stores (variant redis).
    let client: Redis | undefined
    if (variant === 'redis') {
      client = new Redis(redis!.port, '127.0.0.1', { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: COMMAND_TIMEOUT_MS })
      client.on('error', () => {})
      t.teardown(() => client!.disconnect())
      await waitFor(() => client!.status === 'ready', 5000)
    }
    const shared = new MemoryDedupeStore()
    const log = new RunLog()
    const apps: FastifyInstance[] = []
    const urls: string[] = []
    for (let i = 0; i < INSTANCES; i++) {
      const webhook: CioWebhookOptions = {
        signingKeys: WEBHOOK_KEY,
        answerWithinMs: ANSWER_WITHIN_MS,
        onEvent: log.handler(i, rng),
        ...(variant === 'memory' ? { dedupe: shared } : {}),
        ...(variant === 'redis' ? { dedupe: new RedisDedupeStore(client!, { prefix: 'chaos:' }) } : {}),
        ...(variant === 'inbox' ? { inbox: { connection: redis!.url, queueName: 'chaos', backoffMs: 100, attempts: 8, lockDurationMs: INBOX_LOCK_MS, stalledIntervalMs: INBOX_LOCK_MS } } : {})
      }
      const app = Fastify({ logger: false })
      t.teardown(() => app.close())
      await app.register(cioObservability, cioOptions(sim, { webhook, queue: false }))
      urls.push(`${await app.listen({ port: 0, host: '127.0.0.1' })}/webhooks/customerio`)
      apps.push(app)
    }

    const sender = new Sender(urls, rng)
    const end = Date.now() + phaseMs
    let giveUpAt = Infinity
    const deliveries: Array<{ id: string, done: Promise<boolean> }> = []
    const traffic = async () => {
      // About 40 events a second, each with a unique event_id.
      while (Date.now() < end) {
        const event = webhookEvent('email', 'delivered')
        deliveries.push({ id: event.event_id, done: sender.deliver(event, () => giveUpAt) })
        await sleep(25)
      }
    }
    let faults: RedisFaultLog = { counts: new Map(), kills: [] }
    let how = ''
    if (redis !== undefined) {
      const admin = new Redis(redis.port, '127.0.0.1', { enableOfflineQueue: false, maxRetriesPerRequest: 0 })
      admin.on('error', () => {})
      t.teardown(() => admin.disconnect())
      await waitFor(() => admin.status === 'ready', 5000)
      const sleeper = await redisSleeper(admin)
      how = `; the 2 s sleep is ${sleeper.how}`
      ;[faults] = await Promise.all([redisFaultSchedule(redis, sleeper, rng, end), traffic()])
    } else {
      await traffic()
    }
    giveUpAt = Date.now() + SETTLE_MS

    const outcomes = await Promise.all(deliveries.map(async ({ id, done }) => ({ id, ok: await done })))
    const answered = outcomes.filter((o) => o.ok)
    const allRan = await waitFor(() => answered.every((o) => log.okCount(o.id) > 0), RUN_BOUND_MS)
    const neverRan = answered.filter((o) => log.okCount(o.id) === 0)
    const doubled = outcomes.filter((o) => log.okCount(o.id) > 1).length
    const unanswered = outcomes.length - answered.length

    Object.assign(result, {
      accepted: outcomes.length,
      delivered: answered.length,
      doubled,
      dropped: unanswered,
      late: sender.late,
      slowestAnswerMs: ms(sender.slowest)
    })
    result.notes.push(`redis faults: ${redis === undefined ? 'none (memory store shared in-process)' : describeCounts(faults.counts)}${how}`)
    result.notes.push(`${sender.answers} answers (${describeCounts(sender.statuses)}); ${log.runs.length} onEvent runs, ` +
      `${log.runs.filter((r) => r.ok !== true).length} failed or unfinished; ${doubled} events ran successfully more than once`)
    if (unanswered > 0) result.failures.push(`LOSS: ${unanswered} events got no 2xx within ${SETTLE_MS / 1000} s after the faults ended`)
    if (!allRan) result.failures.push(`LOSS: ${neverRan.length} answered events whose onEvent never completed (waited ${RUN_BOUND_MS / 1000} s)${variant === 'inbox' ? await jobStates(redis!.url, neverRan.map((o) => o.id)) : ''}`)
    if (sender.late > 0) result.failures.push(`LATE: ${sender.late} answers slower than ${LATE_MS} ms (${sender.timeouts} no answer within ${CIO_TIMEOUT_MS} ms); slowest ${ms(sender.slowest)} ms`)
    // Two runs at once are explained when Redis was killed between their starts and kept nothing
    // (no AOF: the claim was lost with it); anything else breaks "at most one onEvent at a time".
    const persisted = variant === 'inbox'
    const lostClaim = (o: { since: number, at: number }) => !persisted && faults.kills.some((k) => k >= o.since && k <= o.at)
    const unexplained = log.overlaps.filter((o) => !lostClaim(o))
    const explained = new Set(log.overlaps.filter(lostClaim).map((o) => o.id)).size
    if (explained > 0) result.notes.push(`${explained} events ran twice at once after a Redis kill lost their claim (no persistence): not counted as a failure`)
    if (unexplained.length > 0) {
      const example = unexplained[0]
      result.failures.push(`CONCURRENT: onEvent ran twice at once for ${new Set(unexplained.map((o) => o.id)).size} event ids ` +
        `(e.g. at instances ${example.instances.join(' and ')}, the second ${ms(example.at - example.since)} ms after the first began)`)
    }
  } catch (err) {
    result.failures.push(`scenario error: ${String(err)}`)
  } finally {
    result.failures.push(...await t.run())
  }
  return result
}
