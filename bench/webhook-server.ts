/** A server for the webhook benchmark, in its own process: `bare` (a plain JSON route) or `signed` (the plugin's route too). */
import Fastify from 'fastify'
import cioObservability from '../lib/index.ts'

const [mode, key] = process.argv.slice(2)
const app = Fastify()
if (mode === 'signed') {
  // No dedupe: the load generator reuses its bodies across rounds, and a duplicate is the cheaper path.
  await app.register(cioObservability, { webhook: { signingKeys: key!, dedupe: false }, queue: false, metrics: { defaultMetrics: false }, env: {} })
}
// The bare route: parse the JSON body, answer. Declared after the plugin, so fastify-metrics
// times it as it times the webhook route and the comparison is of the routes alone.
app.post('/bare', async (request) => ({ ok: typeof request.body === 'object' }))
const address = await app.listen({ host: '127.0.0.1', port: 0 })
process.stdout.write(`${address}\n`)
