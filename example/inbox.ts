/**
 * Inbox mode across processes: `node example/inbox.ts receive` answers Customer.io's webhooks
 * and stores each event in BullMQ (`worker: false`); `node example/inbox.ts work` runs the
 * worker that handles them, with retries. Both need Redis: REDIS_URL (default
 * redis://127.0.0.1:6379) and CUSTOMERIO_WEBHOOK_SIGNING_KEY. Each process serves its own
 * /metrics: the receiver counts duplicates and refusals, the worker counts handled events.
 */
import Fastify from 'fastify'
import closeWithGrace from 'close-with-grace'
import cioObservability, { cioRedactPaths } from '../lib/index.ts'

const role = process.argv[2]
if (role !== 'receive' && role !== 'work') throw new Error('usage: node example/inbox.ts receive|work')

const app = Fastify({ logger: { redact: [...cioRedactPaths] } })
await app.register(cioObservability, {
  webhook: {
    inbox: { connection: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', worker: role === 'work', concurrency: 4 },
    // Runs in the worker only; a throw retries the event with backoff, then leaves it in the failed set.
    onEvent: async (event) => {
      if (event.object_type === 'email' && event.metric === 'bounced') app.log.info({ delivery_id: event.data.delivery_id }, 'bounce recorded')
    }
  }
})
closeWithGrace({ delay: 15_000 }, async ({ err }) => {
  if (err !== undefined) app.log.error({ err }, 'closing after an error')
  await app.close()
})
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? (role === 'receive' ? 3000 : 3001)) })
