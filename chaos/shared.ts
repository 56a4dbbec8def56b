/*
 * What every chaos scenario shares: seeded randomness, bounded waits, teardown, the plugin's
 * options against the simulator, the fault schedules, and the result rows run.ts prints.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import type { CioObservabilityOptions } from '../lib/index.ts'
import type { CioSimulator, Fault } from '../lib/testing/index.ts'
import { seeded } from '../lib/testing/simulator.ts'
import { startRedis, type RedisServer } from '../test/fixtures/redis.ts'

export { sleep }

export const WEBHOOK_KEY = 'chaos-webhook-signing-key'

/** A seeded PRNG (the simulator's): the same seed gives the same schedule of faults and traffic. */
export type Random = () => number
export { seeded }

export const between = (rng: Random, min: number, max: number): number => min + rng() * (max - min)
export const pick = <T>(rng: Random, items: readonly T[]): T => items[Math.floor(rng() * items.length)]

/** What a scenario hands to run.ts: the table's figures (undefined: not applicable) and its verdicts. */
export interface Row {
  scenario: string
  accepted?: number
  delivered?: number
  doubled?: number
  dropped?: number
  late?: number
  slowestAnswerMs?: number
  /** A string for a close that did not resolve, e.g. `>8000`. */
  slowestCloseMs?: number | string
  exitBounded?: boolean
  /** Each one fails the run. */
  failures: string[]
  /** Figures worth knowing that pass or fail nothing. */
  notes: string[]
}

export const row = (scenario: string): Row => ({ scenario, failures: [], notes: [] })

export interface ScenarioContext {
  /** How long the scenario's fault phase lasts. */
  phaseMs: number
  seed: number
  rng: Random
}

export type Settled<T> = { done: true, ok: true, value: T } | { done: true, ok: false, error: unknown } | { done: false }

/** `promise`'s outcome, or `{ done: false }` if it has not settled within `ms` (it is not cancelled). */
export async function within<T> (promise: PromiseLike<T>, ms: number): Promise<Settled<T>> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<Settled<T>>((resolve) => { timer = setTimeout(() => resolve({ done: false }), ms) })
  const settled = Promise.resolve(promise).then(
    (value): Settled<T> => ({ done: true, ok: true, value }),
    (error: unknown): Settled<T> => ({ done: true, ok: false, error })
  )
  try {
    return await Promise.race([settled, late])
  } finally {
    clearTimeout(timer)
  }
}

/** Polls `condition` every `pollMs` until it holds (true) or `boundMs` passed (false). */
export async function waitFor (condition: () => boolean, boundMs: number, pollMs = 50): Promise<boolean> {
  const deadline = Date.now() + boundMs
  for (;;) {
    if (condition()) return true
    if (Date.now() >= deadline) return false
    await sleep(pollMs)
  }
}

/**
 * Collects clean-up functions (the shape test/fixtures/redis.ts takes) and runs them newest
 * first, each within a bound, so a hanging close cannot keep the harness from finishing.
 */
export class Teardown {
  /** Every Teardown not yet run, for an interrupted run (SIGINT) to clean up. */
  static readonly pending = new Set<Teardown>()
  readonly #fns: Array<() => unknown> = []

  teardown (fn: () => unknown): void {
    Teardown.pending.add(this)
    this.#fns.push(fn)
  }

  async run (boundMs = 10_000): Promise<string[]> {
    const problems: string[] = []
    for (let fn = this.#fns.pop(); fn !== undefined; fn = this.#fns.pop()) {
      const outcome = await within(Promise.resolve().then(fn), boundMs)
      if (!outcome.done) problems.push(`a clean-up step did not finish within ${boundMs} ms`)
      else if (!outcome.ok) problems.push(`a clean-up step failed: ${String(outcome.error)}`)
    }
    Teardown.pending.delete(this)
    return problems
  }
}

/** Plugin options pointing at the simulator; no process metrics (their timers are not under test). */
export function cioOptions (sim: CioSimulator, extra: CioObservabilityOptions = {}): CioObservabilityOptions {
  return {
    siteId: sim.siteId,
    trackApiKey: sim.trackApiKey,
    appApiKey: sim.appApiKey,
    region: sim.region,
    metrics: { defaultMetrics: false },
    webhook: false,
    env: {},
    ...extra
  }
}

/** The faults the simulator injects, as the schedule names them. */
const SIM_FAULTS: ReadonlyArray<readonly [string, Fault]> = [
  ['503', { status: 503 }],
  ['429+Retry-After', { status: 429, retryAfter: 1 }],
  ['hang', { hang: true }],
  ['reset', { reset: true }],
  ['lost answer (reset)', { lose: 'reset' }],
  ['lost answer (hang)', { lose: 'hang' }]
]

/** The longest a Retry-After in the schedule asks for, in ms. */
export const SCHEDULE_RETRY_AFTER_MS = 1000

/**
 * Until `until` (ms since the epoch): a fault-free gap of 0.2–1.5 s, then one fault on
 * `operation`'s requests for 0.3–3 s (a third of them on a share of requests only), again.
 * Clears every fault when it ends. Returns how often each kind was applied.
 */
export async function simFaultSchedule (sim: CioSimulator, rng: Random, operation: Fault['operation'], until: number): Promise<Map<string, number>> {
  const applied = new Map<string, number>()
  try {
    while (Date.now() < until) {
      await sleep(Math.min(between(rng, 200, 1500), Math.max(0, until - Date.now())))
      if (Date.now() >= until) break
      const [kind, fault] = pick(rng, SIM_FAULTS)
      const ratio = rng() < 1 / 3 ? between(rng, 0.3, 0.9) : undefined
      const length = between(rng, 300, 3000)
      applied.set(kind, (applied.get(kind) ?? 0) + 1)
      const remove = sim.fault({ operation, ...fault, ...(ratio === undefined ? {} : { ratio }) })
      await sleep(Math.min(length, Math.max(0, until - Date.now())))
      remove()
    }
  } finally {
    sim.clearFaults()
  }
  return applied
}

export const describeCounts = (counts: Map<string, number>): string =>
  [...counts].map(([kind, n]) => `${kind} ×${n}`).join(', ') || 'none'

/** Blocks Redis for `seconds`: DEBUG SLEEP where allowed, else a Lua busy loop (same effect: nothing else runs). */
export interface RedisSleeper { readonly how: string, sleep: (seconds: number) => void }

const BUSY = `local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
while true do
  local n = redis.call('TIME')
  if n[1] * 1000000 + n[2] - start >= tonumber(ARGV[1]) * 1000000 then return 1 end
end`

export async function redisSleeper (admin: Redis): Promise<RedisSleeper> {
  const debug = await admin.call('DEBUG', 'SLEEP', '0').then(() => true, () => false)
  // Sent and not awaited: what it blocks is the app's Redis traffic, not this schedule.
  const ignore = () => {}
  return debug
    ? { how: 'DEBUG SLEEP', sleep: (s) => { admin.call('DEBUG', 'SLEEP', String(s)).catch(ignore) } }
    : { how: 'a Lua busy loop (this redis-server refuses DEBUG: enable-debug-command no)', sleep: (s) => { admin.eval(BUSY, 0, String(s)).catch(ignore) } }
}

/** What a Redis fault schedule did: how often each kind, and when Redis was killed (losing what it had not persisted). */
export interface RedisFaultLog { counts: Map<string, number>, kills: number[] }

/**
 * Until `until`: a gap of 0.5–1.5 s, then one Redis fault: SIGSTOP for 1.5–4 s then SIGCONT;
 * SIGKILL and a restart on the same port 0.3–1.5 s later; or a 2 s sleep of the server. The
 * kinds come in rounds, each a seeded shuffle of the three, so a short phase still sees each.
 * Leaves Redis running and answering.
 */
export async function redisFaultSchedule (redis: RedisServer, sleeper: RedisSleeper, rng: Random, until: number): Promise<RedisFaultLog> {
  const log: RedisFaultLog = { counts: new Map(), kills: [] }
  const count = (kind: string) => log.counts.set(kind, (log.counts.get(kind) ?? 0) + 1)
  const round: Array<'pause' | 'kill' | 'sleep'> = []
  while (Date.now() < until) {
    await sleep(Math.min(between(rng, 500, 1500), Math.max(0, until - Date.now())))
    if (Date.now() >= until) break
    if (round.length === 0) round.push(...(['pause', 'kill', 'sleep'] as const).map((k) => [rng(), k] as const).sort(([a], [b]) => a - b).map(([, k]) => k))
    const kind = round.shift()!
    if (kind === 'pause') {
      count('SIGSTOP')
      redis.pause()
      try {
        await sleep(between(rng, 1500, 4000))
      } finally {
        redis.resume()
      }
    } else if (kind === 'kill') {
      count('SIGKILL+restart')
      log.kills.push(Date.now())
      await redis.kill()
      await sleep(between(rng, 300, 1500))
      await redis.start()
    } else {
      count('sleep 2 s')
      sleeper.sleep(2)
      await sleep(2000)
    }
  }
  return log
}

export const ms = (n: number): number => Math.round(n)

/** A redis-server with AOF (nothing acknowledged is lost to a SIGKILL) and an admin client for the harness, both torn down with `t`. */
export async function persistentRedis (t: Teardown): Promise<{ redis: RedisServer, admin: Redis }> {
  const redis = await startRedis(t, { appendonly: true })
  const admin = new Redis(redis.url, { maxRetriesPerRequest: null })
  admin.on('error', () => {})
  t.teardown(() => admin.disconnect())
  return { redis, admin }
}
