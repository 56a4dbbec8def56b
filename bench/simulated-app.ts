import Fastify, { type FastifyInstance } from 'fastify'
import cioObservability, { type CioObservabilityOptions } from '../lib/index.ts'
import { createCioSimulator, type CioSimulator } from '../lib/testing/index.ts'

/** A simulator and an app whose plugin points at it: no webhook, queue or process metrics unless `extra` asks. */
export async function simulatedApp (extra: CioObservabilityOptions = {}): Promise<{ sim: CioSimulator, app: FastifyInstance }> {
  const sim = await createCioSimulator()
  const app = Fastify()
  await app.register(cioObservability, {
    siteId: sim.siteId,
    trackApiKey: sim.trackApiKey,
    appApiKey: sim.appApiKey,
    region: sim.region,
    webhook: false,
    queue: false,
    metrics: { defaultMetrics: false },
    env: {},
    ...extra
  })
  await app.ready()
  return { sim, app }
}
