/**
 * Inbox mode against a real local redis-server (on the load generator's core): the route in a
 * receive-only app (`worker: false`) against the bare route of the same app, and the inbox's
 * `add` (a BullMQ Queue.add plus one HGET) in-process against one plain SET of the same entry.
 */
import { Redis } from 'ioredis'
import { parseEvent } from '../lib/webhook/events.ts'
import { openInbox } from '../lib/webhook/inbox/mode.ts'
import { INBOX_DEFAULTS } from '../lib/webhook/options.ts'
import pino from 'pino'
import { alternate, median, medianDifference, medianRatio, ROUNDS, rotate, row, timed, type Row } from './harness.ts'
import { benchRedis } from './redis.ts'
import { ALL_CORES, HAS_PROC, LOAD_CORES, pin, processCpuMicros, saturate, SECONDS, server, signedRequests, WEBHOOK, type Sample } from './servers.ts'
import { floorMicros } from './floor.ts'

const ADDS = 5_000
const CONCURRENCY = 50

export async function benchInbox (): Promise<Row[]> {
  const next = signedRequests()
  const floor = await floorMicros(next)
  const redis = await benchRedis()
  pin(LOAD_CORES)
  pin(LOAD_CORES, redis.pid)
  const app = await server('inbox', { redisUrl: redis.url })
  try {
    // Redis's CPU per request too: it is work the route causes, in another process.
    const withRedis = (run: () => Promise<Sample>) => async () => {
      const before = processCpuMicros(redis.pid)
      const sample = await run()
      return { ...sample, redisPerRequest: (processCpuMicros(redis.pid) - before) / (sample.rps * SECONDS) }
    }
    const s = await rotate({ bare: withRedis(saturate(app, '/bare', next)), webhook: withRedis(saturate(app, WEBHOOK, next)) }, ROUNDS * 2)
    const cpu = (x: Sample) => x.cpuPerRequest
    const rows = [
      row('inbox mode', 'throughput at saturation (baseline: bare JSON route, same app; median of per-round ratios)', median(s.bare.map((x) => x.rps)), median(s.webhook.map((x) => x.rps)), 'req/s', 'for reading', true, medianRatio(s.bare, s.webhook, (x) => x.rps))
    ]
    if (HAS_PROC) {
      const added = medianDifference(s.bare, s.webhook, cpu)
      rows.push(
        row('inbox mode', 'server CPU per request (baseline: bare JSON route, same app)', median(s.bare.map(cpu)), median(s.webhook.map(cpu)), 'µs', 'for reading', true, medianRatio(s.bare, s.webhook, cpu)),
        row('inbox mode', 'server CPU added per event over the bare route (baseline: the floor)', floor, added, 'µs', 'for reading', true),
        row('inbox mode', 'redis-server CPU per event (its own process)', null, medianDifference(s.bare, s.webhook, (x) => x.redisPerRequest), 'µs', 'for reading', true)
      )
    }

    // In-process: the inbox's add against one SET of the same entry, both at 50 in flight.
    const inbox = await openInbox({ ...INBOX_DEFAULTS, connection: redis.url, queueName: 'bench-add', worker: false }, {
      onEvent: undefined, record () {}, handlerFailed () {}, tracing: undefined, log: pino(), secrets: [], commandTimeoutMs: 3_000
    })
    const plain = new Redis(redis.url)
    let sequence = 0
    const entry = () => parseEvent(next().body)
    // Entries made before the clock starts: fresh ids, so every add stores a new job.
    const adds = (add: (e: ReturnType<typeof entry>) => Promise<unknown>) => async () => {
      const entries = Array.from({ length: ADDS }, entry)
      return timed(async () => {
        let started = 0
        await Promise.all(Array.from({ length: CONCURRENCY }, async () => { while (started < ADDS) await add(entries[started++]!) }))
      })
    }
    const a = await alternate(
      adds((e) => plain.set(`bench-set:${sequence++}`, JSON.stringify(e))),
      adds((e) => inbox.add(e, Date.now()))
    )
    await inbox.close()
    plain.disconnect()
    const perAdd = (x: { cpuMs: number }) => (x.cpuMs * 1000) / ADDS
    const rate = (x: { wallMs: number }) => ADDS / (x.wallMs / 1000)
    rows.push(
      row('inbox add', `CPU per add, in-process, ${CONCURRENCY} in flight (baseline: one SET of the same entry)`, median(a.baseline.map(perAdd)), median(a.candidate.map(perAdd)), 'µs', 'for reading', true, medianRatio(a.baseline, a.candidate, perAdd)),
      row('inbox add', `adds per second, in-process, ${CONCURRENCY} in flight (baseline: SETs)`, median(a.baseline.map(rate)), median(a.candidate.map(rate)), 'adds/s', 'for reading', true, medianRatio(a.baseline, a.candidate, rate))
    )
    return rows
  } finally {
    await app.stop()
    pin(ALL_CORES)
    await redis.close()
  }
}
