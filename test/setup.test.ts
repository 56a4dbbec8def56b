import t from 'tap'
import Fastify from 'fastify'
import cioObservability from '../lib/index.ts'
import { checkNodeVersion } from '../lib/options.ts'
import { buildApp, captureLogs, rejection, simOptions, startSimulator } from './helpers.ts'

t.test('an older Node is refused with the version it needs', async (t) => {
  t.throws(() => checkNodeVersion('20.20.2'), { code: 'FST_CIO_UNSUPPORTED_SETUP', message: /Node\.js 22 or later, and this is Node\.js 20\.20\.2/ })
  t.doesNotThrow(() => checkNodeVersion('22.0.0'))
  t.doesNotThrow(() => checkNodeVersion(process.versions.node), 'the Node running these tests')
})

t.test('registering twice on one app fails with an error that names the fix', async (t) => {
  const sim = await startSimulator(t)
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(cioObservability, simOptions(sim))
  app.register(cioObservability, simOptions(sim))
  t.match(await rejection(app.ready()), { code: 'FST_CIO_UNSUPPORTED_SETUP', message: /registered twice.*register it once/ })
})

t.test('credentials without a signing key: a warning names the variable and how to silence it', async (t) => {
  const sim = await startSimulator(t)
  const { logs } = await buildApp(t, simOptions(sim, { webhook: undefined }))
  const warning = logs.lines.find((l) => l.level === 40 && /webhook route is off/.test(l.msg))
  t.match(warning?.msg, /CUSTOMERIO_WEBHOOK_SIGNING_KEY.*webhook: false/)

  const quiet = await buildApp(t, simOptions(sim, { webhook: false }))
  t.notOk(quiet.logs.lines.some((l) => /webhook route is off/.test(l.msg)), 'webhook: false silences it')
  const { stream, logs: bare } = captureLogs()
  const zero = Fastify({ logger: { stream } })
  t.teardown(() => zero.close())
  await zero.register(cioObservability, { env: {} })
  await zero.ready()
  t.notOk(bare.lines.some((l) => /webhook route is off/.test(l.msg)), 'nor is a zero-config app warned')
})
