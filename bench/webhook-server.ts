/** A server for the webhook benchmark, in its own process: `bare` (a plain JSON route) or `signed` (the plugin's route). */
import Fastify from 'fastify'
import cioObservability from '../lib/index.ts'

const [mode, key] = process.argv.slice(2)
const app = Fastify()
// The bare route: parse the JSON body, answer. The signed server has it too, beside the webhook.
app.post('/bare', async (request) => ({ ok: typeof request.body === 'object' }))
if (mode === 'signed') {
  // No dedupe: the load generator reuses its bodies across rounds, and a duplicate is the cheaper path.
  await app.register(cioObservability, { webhook: { signingKeys: key!, dedupe: false }, queue: false, metrics: { defaultMetrics: false }, env: {} })
}
const address = await app.listen({ host: '127.0.0.1', port: 0 })
process.stdout.write(`${address}\n`)
