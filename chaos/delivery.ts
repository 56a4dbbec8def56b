/*
 * Scenario: delivery tracking on three instances sharing a Redis (AOF on) that is paused,
 * killed and restarted, and put to sleep while deliveries begin and end. A delivery with no
 * outcome must be counted unconfirmed exactly once across the instances (never twice, never one
 * whose outcome Redis took); one whose record Redis never took is a counted store error instead.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import cioObservability, { RedisDeliveryStore } from '../lib/index.ts'
import { createCioSimulator } from '../lib/testing/index.ts'
import { cioOptions, describeCounts, persistentRedis, redisFaultSchedule, redisSleeper, row, sleep, Teardown, WEBHOOK_KEY, type Row, type ScenarioContext } from './shared.ts'

const WINDOW_SECONDS = 2
const PREFIX = 'chaos-delivery:'
/** The check reads every record back: the traffic stops well within a record's life (a minute past its window). */
const MAX_TRAFFIC_MS = 40_000

async function counter (app: FastifyInstance, name: string): Promise<number> {
  const body = (await app.inject('/metrics')).body
  let total = 0
  for (const [, value] of body.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) total += Number(value)
  return total
}

export async function deliveryScenario ({ phaseMs, seed, rng }: ScenarioContext): Promise<Row> {
  const result = row('delivery')
  const t = new Teardown()
  try {
    const sim = await createCioSimulator({ seed })
    t.teardown(() => sim.close())
    const { redis, admin } = await persistentRedis(t)
    // The apps' own client, as an app would make it: fails fast while Redis is gone.
    const client = new Redis(redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 1_000, disconnectTimeout: 200 })
    client.on('error', () => {})
    t.teardown(() => client.disconnect())
    const apps: Array<{ app: FastifyInstance, url: string }> = []
    for (let i = 0; i < 3; i++) {
      const app = Fastify({ logger: false })
      t.teardown(() => app.close())
      await app.register(cioObservability, cioOptions(sim, {
        queue: false,
        webhook: { signingKeys: WEBHOOK_KEY },
        delivery: { confirmWithinSeconds: WINDOW_SECONDS, store: new RedisDeliveryStore(client, { prefix: PREFIX }) }
      }))
      apps.push({ app, url: `${await app.listen({ host: '127.0.0.1', port: 0 })}/webhooks/customerio` })
    }

    const voids: string[] = []
    const confirmed: string[] = []
    /** Confirmed deliveries whose outcome was answered well within the window (by wall time). */
    const inTime = new Set<string>()
    let n = 0
    const end = Date.now() + Math.min(phaseMs, MAX_TRAFFIC_MS)
    const traffic = async () => {
      while (Date.now() < end) {
        const id = `d${n++}`
        const instance = () => apps[Math.floor(rng() * apps.length)]!.url
        if (rng() < 0.5) {
          voids.push(id)
          await sim.deliver(id, [{ metric: 'sent', after: 0 }], { url: instance(), signingKey: WEBHOOK_KEY })
        } else {
          confirmed.push(id)
          const began = Date.now()
          await sim.deliver(id, [{ metric: 'sent', after: 0 }], { url: instance(), signingKey: WEBHOOK_KEY })
          await sim.deliver(id, [{ metric: 'delivered', after: 1 }], { url: instance(), signingKey: WEBHOOK_KEY })
          // Its beginning is stamped in whole seconds, so its window ends at least a second after `began`.
          if (Date.now() - began < 800) inTime.add(id)
        }
        await sleep(10)
      }
    }
    const [, faults] = await Promise.all([traffic(), redisFaultSchedule(redis, await redisSleeper(admin), rng, end)])

    // Every window ends within WINDOW_SECONDS of the traffic's end; then each void delivery Redis
    // holds is settled, and its count reaches an instance a moment later.
    const bound = Date.now() + WINDOW_SECONDS * 1000 + 5_000
    const pendingNow = async () => Number(await admin.zcard(`${PREFIX}deadlines`))
    while (await pendingNow() > 0 && Date.now() < bound) await sleep(100)
    // Redis marks each delivery it answered as unconfirmed (`u`): with or without an outcome sent,
    // since an outcome Redis never took (a store error) leaves its delivery unconfirmed too.
    const marked = async (ids: string[]) => (await Promise.all(ids.map(async (id) => await admin.hget(`${PREFIX}d:${id}`, 'u') === '1' ? 1 : 0))).reduce<number>((a, b) => a + b, 0)
    const settledVoids = await marked(voids)
    const settledConfirmed = await marked(confirmed)
    const settled = settledVoids + settledConfirmed
    // An outcome Redis stored, answered well within the window, confirmed its delivery in time:
    // counting it unconfirmed would be the product's mistake, which the marks cannot show.
    const wronglyCounted = (await Promise.all(confirmed.filter((id) => inTime.has(id)).map(async (id) => {
      const [counted, outcome] = await admin.hmget(`${PREFIX}d:${id}`, 'u', 'm:delivered')
      return counted === '1' && outcome === '1' ? 1 : 0
    }))).reduce<number>((a, b) => a + b, 0)
    const pending = await pendingNow()
    const total = async () => (await Promise.all(apps.map(({ app }) => counter(app, 'cio_delivery_unconfirmed_total')))).reduce((a, b) => a + b)
    while (await total() < settled && Date.now() < bound) await sleep(100)
    const counted = await total()
    const storeErrors = (await Promise.all(apps.map(({ app }) => counter(app, 'cio_delivery_store_errors_total')))).reduce((a, b) => a + b)
    Object.assign(result, { accepted: voids.length + confirmed.length, delivered: counted, doubled: Math.max(0, counted - settled), dropped: voids.length - settledVoids })
    result.notes.push(`Redis: ${describeCounts(faults.counts)}; ${voids.length} deliveries without an outcome, ${confirmed.length} with one; ` +
      `${counted} counted unconfirmed, ${settled} settled in Redis as unconfirmed (${settledConfirmed} of them sent an outcome Redis did not take), ${pending} still waiting; ${storeErrors} store errors counted`)
    if (counted !== settled) result.failures.push(`UNCONFIRMED: counted ${counted} times across the instances, but Redis settled ${settled} deliveries as unconfirmed`)
    if (wronglyCounted > 0) result.failures.push(`${wronglyCounted} deliveries counted unconfirmed although Redis stored their outcome within the window`)
    if (settledConfirmed > 0 && storeErrors === 0) result.failures.push(`${settledConfirmed} deliveries with an outcome counted unconfirmed without a store error counted`)
    if (pending > 0) result.failures.push(`${pending} deliveries still wait for their window ${WINDOW_SECONDS + 3} s after it ended`)
    if (voids.length - settledVoids > 0 && storeErrors === 0) result.failures.push(`${voids.length - settledVoids} deliveries untracked without a store error counted`)
  } catch (err) {
    result.failures.push(`scenario error: ${String(err)}`)
  } finally {
    result.failures.push(...await t.run())
  }
  return result
}
