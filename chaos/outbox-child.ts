/*
 * A sender of the outbox chaos scenario, in a process of its own so that it can be SIGKILLed in
 * the middle of a batch: `node outbox-child.ts <options JSON>`. It only sends; it says `ready`.
 */
import Fastify from 'fastify'
import cioObservability from '../lib/index.ts'

const app = Fastify({ logger: false })
await app.register(cioObservability, JSON.parse(process.argv[2]!))
await app.ready()
process.send!('ready')
