/**
 * The outbox across processes: `node example/outbox.ts` serves POST /invoices/:id/paid, which
 * stores an `invoice_paid` event in Redis before it answers, and sends what the outbox holds
 * (SENDER=false to only add, with senders elsewhere). Needs Redis (REDIS_URL, default
 * redis://127.0.0.1:6379, ideally with `appendonly yes`) and Track credentials
 * (CUSTOMERIO_SITE_ID, CUSTOMERIO_TRACK_API_KEY). Kill it at any moment: what was stored is sent
 * by the next process that runs a sender.
 */
import Fastify from 'fastify'
import closeWithGrace from 'close-with-grace'
import cioObservability, { cioRedactPaths } from '../lib/index.ts'

const app = Fastify({ logger: { redact: [...cioRedactPaths] } })
await app.register(cioObservability, {
  queue: false,
  outbox: { connection: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', sender: process.env.SENDER !== 'false' }
})

app.post<{ Params: { id: string }, Body: { customerId: string, amount: number } }>('/invoices/:id/paid', {
  schema: { body: { type: 'object', required: ['customerId', 'amount'], properties: { customerId: { type: 'string', minLength: 1 }, amount: { type: 'number' } } } }
}, async (request) => {
  // Resolves once Redis has it; a FST_CIO_OUTBOX_* error (503) tells the client to try again.
  await request.server.cio.outbox!.track(request.body.customerId, { name: 'invoice_paid', data: { invoice: request.params.id, amount: request.body.amount } })
  return { ok: true }
})

closeWithGrace({ delay: 15_000 }, async ({ err }) => {
  if (err !== undefined) app.log.error({ err }, 'closing after an error')
  await app.close()
})
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 3000) })
