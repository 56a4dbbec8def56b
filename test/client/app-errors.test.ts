import t from 'tap'
import Fastify from 'fastify'
import { SendEmailRequest } from 'customerio-node'
import cioObservability from '../../lib/index.ts'
import { captureLogs, simOptions, startSimulator } from '../helpers.ts'

const EMAIL = 'jane.doe@example.com'
const PHONE = '+14155550100'

/** Every form in which a value might leak: as it is, percent-encoded, and base64 (Basic credentials). */
function forms (value: string): string[] {
  return [value, encodeURIComponent(value), Buffer.from(value).toString('base64')]
}

t.test('an upstream failure that a route lets propagate answers 502/504, never Customer.io\'s status, and the app\'s own error log leaks nothing', async (t) => {
  const sim = await startSimulator(t)
  const basic = Buffer.from(`${sim.siteId}:${sim.trackApiKey}`).toString('base64')
  // A Customer.io error body that echoes the request: the person, the phone and the credentials.
  const echo = { meta: { error: `${EMAIL} (${PHONE}) is not allowed; Authorization: Basic ${basic}; Bearer ${sim.appApiKey}; key ${sim.trackApiKey}` } }
  const scenarios: Array<[string, Parameters<typeof sim.fault>[0], number, string]> = [
    ['401 echoing the request', { status: 401, body: echo }, 502, '401'],
    ['404 HTML page echoing the path', { status: 404, body: `<html>No route /api/v1/customers/${encodeURIComponent(EMAIL)} for ${EMAIL}</html>` }, 502, 'invalid_response'],
    ['422 echoing the request', { status: 422, body: echo }, 502, '422'],
    ['500', { status: 500, body: echo }, 502, '500'],
    ['reset', { reset: true }, 502, 'network'],
    ['timeout', { hang: true }, 504, 'timeout']
  ]
  const calls: Array<[string, (app: any) => Promise<unknown>]> = [
    ['identify', (app) => app.cio.identify(EMAIL, { phone: PHONE })],
    ['sendEmail', (app) => app.cio.sendEmail(new SendEmailRequest({ to: EMAIL, transactional_message_id: '1', identifiers: { email: EMAIL } }))],
    ['getCustomersByEmail', (app) => app.cio.getCustomersByEmail(EMAIL)]
  ]
  for (const [scenario, fault, status, errorType] of scenarios) {
    for (const [name, call] of calls) {
      const { stream, logs } = captureLogs()
      // The app's own logger, without the plugin's redact paths.
      const app = Fastify({ logger: { level: 'info', stream } })
      t.teardown(() => app.close())
      await app.register(cioObservability, simOptions(sim, { client: { timeout: 1_000, retry: { maxRetries: 0 } }, queue: false }))
      app.post('/signup', async () => { await call(app); return { ok: true } })
      sim.clearFaults()
      sim.fault({ ...fault, times: 1 })
      const res = await app.inject({ method: 'POST', url: '/signup' })
      const what = `${scenario}, ${name}`
      t.equal(res.statusCode, status, `${what}: the app answers ${status}`)
      t.match(res.json(), { code: 'FST_CIO_API_ERROR', statusCode: status }, what)
      const line = logs.lines.find((l) => l.err !== undefined && l.msg !== 'customer.io call failed')
      t.match(line, { level: 50, err: { code: 'FST_CIO_API_ERROR', errorType } }, `${what}: Fastify's handler logged it`)
      const text = logs.text() + res.body
      for (const secret of [EMAIL, PHONE, sim.trackApiKey, sim.appApiKey, basic].flatMap(forms)) {
        t.notOk(text.includes(secret), `${what}: no ${secret.slice(0, 6)}… in the logs or the answer`)
      }
      await app.close()
    }
  }
})

t.test('a caller mistake answers 500 with its own class', async (t) => {
  const sim = await startSimulator(t)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cioObservability, simOptions(sim))
  app.get('/bad', async () => app.cio.identify('', {}))
  const res = await app.inject('/bad')
  t.equal(res.statusCode, 500)
  t.match(res.json(), { code: 'FST_CIO_INVALID_ARGUMENT' })
})
