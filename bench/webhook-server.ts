/** A server for the webhook benchmark, in its own process: `bare` (a plain JSON route) or `signed` (the plugin's route). */
import Fastify from 'fastify'
import cioObservability from '../lib/index.ts'

const [mode, key] = process.argv.slice(2)
const app = Fastify()
if (mode === 'bare') {
  app.post('/webhooks/customerio', async (request) => ({ ok: typeof request.body === 'object' }))
} else {
  // No dedupe: the load generator reuses its bodies across rounds, and a duplicate is the cheaper path.
  await app.register(cioObservability, { webhook: { signingKeys: key!, dedupe: false }, queue: false, metrics: { defaultMetrics: false }, env: {} })
}
const address = await app.listen({ host: '127.0.0.1', port: 0 })
process.stdout.write(`${address}\n`)
