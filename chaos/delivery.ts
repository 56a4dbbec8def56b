/*
 * Scenario: delivery tracking on three instances sharing a Redis (AOF on) that is paused,
 * killed and restarted, and put to sleep while deliveries begin and end. A delivery with no
 * outcome must be counted unconfirmed exactly once across the instances (never twice, never one
 * that got its outcome); one whose record Redis never took is a counted store error instead.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import cioObservability, { RedisDeliveryStore } from '../lib/index.ts'
import { createCioSimulator } from '../lib/testing/index.ts'
import { cioOptions, describeCounts, persistentRedis, redisFaultSchedule, redisSleeper, row, sleep, Teardown, WEBHOOK_KEY, type Row, type ScenarioContext } from './shared.ts'

const WINDOW_SECONDS = 2
const PREFIX = 'chaos-delivery:'

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
    let n = 0
    const end = Date.now() + phaseMs
    const traffic = async () => {
      while (Date.now() < end) {
        const id = `d${n++}`
        const instance = () => apps[Math.floor(rng() * apps.length)]!.url
        if (rng() < 0.5) {
          voids.push(id)
          await sim.deliver(id, [{ metric: 'sent', after: 0 }], { url: instance(), signingKey: WEBHOOK_KEY })
        } else {
          confirmed.push(id)
          await sim.deliver(id, [{ metric: 'sent', after: 0 }], { url: instance(), signingKey: WEBHOOK_KEY })
          await sim.deliver(id, [{ metric: 'delivered', after: 1 }], { url: instance(), signingKey: WEBHOOK_KEY })
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
    const settledVoids = (await Promise.all(voids.map(async (id) => {
      const record = await admin.hgetall(`${PREFIX}d:${id}`)
      return record.ok === '1' && record['m:delivered'] === undefined ? 1 : 0
    }))).reduce<number>((a, b) => a + b, 0)
    const pending = await pendingNow()
    const total = async () => (await Promise.all(apps.map(({ app }) => counter(app, 'cio_delivery_unconfirmed_total')))).reduce((a, b) => a + b)
    while (await total() < settledVoids && Date.now() < bound) await sleep(100)
    const counted = await total()
    const storeErrors = (await Promise.all(apps.map(({ app }) => counter(app, 'cio_delivery_store_errors_total')))).reduce((a, b) => a + b)
    Object.assign(result, { accepted: voids.length + confirmed.length, delivered: counted, doubled: Math.max(0, counted - settledVoids), dropped: voids.length - settledVoids })
    result.notes.push(`Redis: ${describeCounts(faults.counts)}; ${voids.length} deliveries without an outcome, ${confirmed.length} with one; ` +
      `${counted} counted unconfirmed, ${settledVoids} settled in Redis as unconfirmed, ${pending} still waiting; ${storeErrors} store errors counted`)
    if (counted !== settledVoids) result.failures.push(`UNCONFIRMED: counted ${counted} times across the instances, but Redis settled ${settledVoids} deliveries as unconfirmed`)
    if (pending > 0) result.failures.push(`${pending} deliveries still wait for their window ${WINDOW_SECONDS + 3} s after it ended`)
    if (voids.length - settledVoids > 0 && storeErrors === 0) result.failures.push(`${voids.length - settledVoids} deliveries untracked without a store error counted`)
  } catch (err) {
    result.failures.push(`scenario error: ${String(err)}`)
  } finally {
    result.failures.push(...await t.run())
  }
  return result
}
