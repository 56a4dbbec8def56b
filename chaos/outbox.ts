/*
 * Scenario: fastify.cio.outbox. An app adds events while Customer.io fails on a seeded schedule,
 * Redis (AOF on) is paused, killed and put to sleep, and two sender processes are SIGKILLed and
 * started again at random. Every event whose add resolved must be recorded exactly once.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import Fastify from 'fastify'
import cioObservability from '../lib/index.ts'
import { createCioSimulator } from '../lib/testing/index.ts'
import {
  between, cioOptions, persistentRedis, describeCounts, ms, redisFaultSchedule, redisSleeper, row, simFaultSchedule, sleep, Teardown, waitFor, within,
  type Row, type ScenarioContext
} from './shared.ts'

/** However the run went, everything accepted must be recorded this long after the faults stopped. */
const DRAIN_CAP_MS = 60_000
/** An add must settle within its command bound and slack. */
const ADD_BOUND_MS = 1_000 + 2_000
const SENDERS = 2

export async function outboxScenario ({ phaseMs, seed, rng }: ScenarioContext): Promise<Row> {
  const result = row('outbox')
  const t = new Teardown()
  try {
    const sim = await createCioSimulator({ seed })
    t.teardown(() => sim.close())
    const { redis, admin } = await persistentRedis(t)
    const outbox = { connection: redis.url, stream: `chaos-${seed}`, blockMs: 200, claimAfterMs: 2_000, retryDelayMs: 50, maxRetryDelayMs: 400 }
    const options = cioOptions(sim, { queue: false, client: { timeout: 500, retry: { maxRetries: 0 } }, outbox })

    // The senders: child processes, killed and replaced now and then.
    const senders = new Set<ChildProcess>()
    const startSender = async () => {
      const child = fork(new URL('outbox-child.ts', import.meta.url), [JSON.stringify({ ...options, region: { ...sim.region } })], { stdio: 'ignore' })
      senders.add(child)
      child.once('exit', () => senders.delete(child))
      // A child that dies while starting must not hang the scenario: it is reported instead.
      const started = await Promise.race([once(child, 'message').then(() => true), once(child, 'exit').then(() => false)])
      if (!started) result.failures.push('a sender process exited while starting')
    }
    t.teardown(() => { for (const child of senders) child.kill('SIGKILL') })
    for (let i = 0; i < SENDERS; i++) await startSender()

    // The app that adds: no sender of its own, so every send is a child's.
    const app = Fastify({ logger: false })
    t.teardown(() => app.close())
    await app.register(cioObservability, { ...options, outbox: { ...outbox, sender: false } })
    await app.ready()

    const accepted = new Set<number>()
    const errors = new Map<string, number>()
    let slow = 0
    let seq = 0
    const end = Date.now() + phaseMs
    const adder = async () => {
      while (Date.now() < end) {
        const s = seq++
        const started = performance.now()
        const outcome = await within(app.cio.outbox!.track(`o-${s % 20}`, { name: 'chaos_outbox', data: { seq: s } }), ADD_BOUND_MS + 5_000)
        if (performance.now() - started > ADD_BOUND_MS) slow++
        if (outcome.done && outcome.ok) accepted.add(s)
        else {
          const code = outcome.done ? String((outcome.error as { code?: string }).code) : 'unsettled'
          errors.set(code, (errors.get(code) ?? 0) + 1)
          await sleep(20)
        }
        await sleep(2)
      }
    }
    let kills = 0
    const killer = async () => {
      while (Date.now() < end) {
        await sleep(Math.min(between(rng, 1_000, 3_000), Math.max(0, end - Date.now())))
        const victim = [...senders][Math.floor(rng() * senders.size)]
        if (victim === undefined || Date.now() >= end) continue
        kills++
        victim.kill('SIGKILL')
        await once(victim, 'exit')
        await startSender()
      }
    }
    const sleeper = await redisSleeper(admin)
    const [, simFaults, redisFaults] = await Promise.all([
      Promise.all([adder(), adder(), adder(), killer()]),
      simFaultSchedule(sim, rng, 'batch', end),
      redisFaultSchedule(redis, sleeper, rng, end)
    ])
    sim.clearFaults()

    const cleared = Date.now()
    const recorded = () => {
      const counts = new Map<number, number>()
      for (const e of sim.events) if (e.name === 'chaos_outbox') counts.set(e.data.seq as number, (counts.get(e.data.seq as number) ?? 0) + 1)
      return counts
    }
    const drained = await waitFor(() => [...accepted].every((s) => recorded().has(s)), DRAIN_CAP_MS, 200)
    const counts = recorded()
    const delivered = [...accepted].filter((s) => counts.has(s)).length
    const doubled = [...counts.values()].filter((n) => n > 1).length
    Object.assign(result, { accepted: accepted.size, delivered, doubled, dropped: 0 })
    result.notes.push(`faults on batch: ${describeCounts(simFaults)}; Redis: ${describeCounts(redisFaults.counts)}; ${kills} senders SIGKILLed; ` +
      `adds refused: ${describeCounts(errors)}; drained ${drained ? `in ${ms(Date.now() - cleared)} ms` : 'no'}; ` +
      `${sim.discardedEvents.length} re-sent copies discarded by id; stream length ${await admin.xlen(outbox.stream)}`)
    if (accepted.size - delivered > 0) result.failures.push(`LOSS: ${accepted.size - delivered} accepted events never recorded`)
    if (doubled > 0) result.failures.push(`DOUBLE: ${doubled} events recorded more than once`)
    const wrong = [...errors.keys()].filter((code) => code !== 'FST_CIO_OUTBOX_UNAVAILABLE')
    if (wrong.length > 0) result.failures.push(`adds refused otherwise than FST_CIO_OUTBOX_UNAVAILABLE: ${wrong.join(', ')}`)
    if (slow > 0) result.failures.push(`${slow} adds took longer than ${ADD_BOUND_MS} ms`)
  } catch (err) {
    result.failures.push(`scenario error: ${String(err)}`)
  } finally {
    result.failures.push(...await t.run())
  }
  return result
}
