import t from 'tap'
import type { FastifyInstance } from 'fastify'
import net from 'node:net'
import { CustomerIORequestError, MissingParamError, Region } from 'customerio-node'
import { classify, statusLabel } from '../../lib/client/classify.ts'
import { ERROR_TYPES } from '../../lib/labels.ts'
import { CioApiError, CioInvalidArgumentError, CioNotConfiguredError } from '../../lib/errors.ts'
import { buildApp, metric, simOptions, startSimulator } from '../helpers.ts'

const requestError = (status: number) => new CustomerIORequestError({ meta: { error: 'x' } }, status, { statusCode: status, headers: {}, ok: false }, '{}')

t.test('status codes map onto the closed set', async (t) => {
  for (const code of [400, 401, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 504]) {
    t.equal(classify(requestError(code)), String(code))
  }
  t.equal(classify(requestError(418)), '4xx')
  t.equal(classify(requestError(451)), '4xx')
  t.equal(classify(requestError(507)), '5xx')
  t.equal(classify(requestError(302)), '_other')
  t.equal(classify(requestError(204)), '_other', 'a 2xx is never an error type')
  t.equal(statusLabel(201), '2xx')
  t.equal(statusLabel(101), '_other')
  t.equal(statusLabel(600), '_other')
})

t.test('errors without a status', async (t) => {
  t.equal(classify(new DOMException('The operation was aborted due to timeout', 'TimeoutError')), 'timeout')
  t.equal(classify(new TypeError('fetch failed', { cause: Object.assign(new Error('x'), { code: 'ECONNRESET' }) })), 'network')
  t.equal(classify(new Error('Unable to parse JSON. Error: SyntaxError \nBody:\n <html>')), 'invalid_response')
  t.equal(classify(new Error('Received a 301 status, but no Location header was present')), 'invalid_response')
  t.equal(classify(new MissingParamError('customerId')), 'invalid_argument')
  t.equal(classify(new CioNotConfiguredError('Track', 'siteId')), 'not_configured')
  t.equal(classify(new TypeError('something else')), '_other')
  t.equal(classify('a string'), '_other')
  t.equal(classify(new CioApiError({ errorType: '429', api: 'track', operation: 'batch', upstreamStatus: 429, cause: undefined })), '429', 'a rejection of fastify.cio keeps its type')
  t.equal(classify(new CioInvalidArgumentError('batch', 'x', { cause: undefined })), 'invalid_argument')
  for (const type of ERROR_TYPES) t.notMatch(type, /[A-Z ]/, 'labels are lower-case tokens')
})

/** Runs one failing call against the simulator and returns what the metrics say about it. */
async function failOnce (t: { teardown: (fn: () => unknown) => void }, setup: (sim: Awaited<ReturnType<typeof startSimulator>>) => void, call: (cio: any) => Promise<unknown>, extra = {}): Promise<{ err: any, app: FastifyInstance, logs: any, sim: any }> {
  const sim = await startSimulator(t)
  setup(sim)
  const { app, logs } = await buildApp(t, simOptions(sim, { client: { retry: { maxRetries: 0 } }, ...extra }))
  const err = await call(app.cio).then(() => undefined, (e: unknown) => e)
  return { err, app, logs, sim }
}

const identify = (cio: any) => cio.identify('person-1', { plan: 'pro' })

t.test('every HTTP failure is classified and counted over real HTTP', async (t) => {
  const cases: Array<[number, string]> = [[400, '400'], [401, '401'], [403, '403'], [404, '404'], [408, '408'], [409, '409'], [413, '413'], [422, '422'], [429, '429'], [500, '500'], [502, '502'], [503, '503'], [504, '504'], [418, '4xx'], [599, '5xx']]
  for (const [status, type] of cases) {
    const { err, app } = await failOnce(t, (sim) => sim.fault({ operation: 'identify', status }), identify)
    t.ok(err instanceof CioApiError, `${status} rejects with CioApiError`)
    t.match(err, { code: 'FST_CIO_API_ERROR', statusCode: 502, errorType: type, api: 'track', operation: 'identify', upstreamStatus: status })
    t.ok(err.cause instanceof CustomerIORequestError, 'the SDK\'s error is the cause')
    t.equal(err.cause.statusCode, status)
    t.equal(await metric(app, 'cio_api_errors_total', { api: 'track', operation: 'identify', error_type: type }), 1, `${status} → ${type}`)
    t.equal(await metric(app, 'cio_api_request_duration_seconds_count', { api: 'track', operation: 'identify', outcome: 'error' }), 1)
  }
})

t.test('timeouts, resets, refused connections and unreadable answers', async (t) => {
  // The timeout fires against a server that never answers, so it races nothing.
  const timeout = await failOnce(t, (sim) => sim.fault({ hang: true }), identify, { client: { timeout: 1_000, retry: { maxRetries: 0 } } })
  t.match(timeout.err, { code: 'FST_CIO_API_ERROR', statusCode: 504, errorType: 'timeout', upstreamStatus: undefined })
  t.equal(timeout.err.cause.name, 'TimeoutError')
  t.equal(await metric(timeout.app, 'cio_api_errors_total', { api: 'track', operation: 'identify', error_type: 'timeout' }), 1)
  t.equal(await metric(timeout.app, 'cio_api_attempts_total', { api: 'track', status_code: 'timeout' }), 1)

  const reset = await failOnce(t, (sim) => sim.fault({ reset: true }), identify)
  t.match(reset.err, { statusCode: 502, errorType: 'network' })
  t.equal(reset.err.cause.message, 'fetch failed')
  t.equal(await metric(reset.app, 'cio_api_errors_total', { api: 'track', operation: 'identify', error_type: 'network' }), 1)
  t.equal(await metric(reset.app, 'cio_api_attempts_total', { api: 'track', status_code: 'network' }), 1)

  const closed = net.createServer().listen(0, '127.0.0.1')
  await new Promise((resolve) => closed.on('listening', resolve))
  const port = (closed.address() as net.AddressInfo).port
  closed.close()
  const refusedRegion = new Region(`http://127.0.0.1:${port}/api/v1`, `http://127.0.0.1:${port}/v1`, `http://127.0.0.1:${port}/cdp/v1`)
  const refused = await failOnce(t, () => {}, identify, { region: refusedRegion })
  t.equal(await metric(refused.app, 'cio_api_errors_total', { api: 'track', operation: 'identify', error_type: 'network' }), 1)

  const html = await failOnce(t, (sim) => sim.fault({ status: 502, body: '<html>Bad Gateway</html>' }), identify)
  t.match(html.err, { statusCode: 502, errorType: 'invalid_response', upstreamStatus: 502 }, 'the status the attempt saw')
  t.match(html.err.cause.message, /^Unable to parse JSON/)
  t.equal(await metric(html.app, 'cio_api_errors_total', { api: 'track', operation: 'identify', error_type: 'invalid_response' }), 1)
  t.equal(await metric(html.app, 'cio_api_attempts_total', { api: 'track', status_code: '502' }), 1, 'the attempt still shows its status')

  const redirect = await failOnce(t, (sim) => sim.fault({ status: 301, body: {} }), identify)
  t.equal(await metric(redirect.app, 'cio_api_errors_total', { api: 'track', operation: 'identify', error_type: 'invalid_response' }), 1)
  t.equal(await metric(redirect.app, 'cio_api_attempts_total', { api: 'track', status_code: '_other' }), 1)
})

t.test('synchronous SDK throws become counted rejections', async (t) => {
  const { err, app } = await failOnce(t, () => {}, (cio) => cio.identify('', {}))
  t.ok(err instanceof CioInvalidArgumentError, 'a caller mistake keeps its own class')
  t.match(err, { code: 'FST_CIO_INVALID_ARGUMENT', statusCode: 500, message: /identify: customerId/ })
  t.ok(err.cause instanceof MissingParamError, 'the SDK error object is the cause')
  t.match(err.stack, /^FastifyError: Invalid argument to Customer\.io identify: customerId/, 'its stack starts with its own message')
  t.match(err.stack, /classify\.test\.ts/, 'down to the caller')
  t.match(err.cause.stack, /customerio-node/, 'the cause keeps the frames of the call the SDK refused')
  t.equal(await metric(app, 'cio_api_errors_total', { api: 'track', operation: 'identify', error_type: 'invalid_argument' }), 1)
  const bad = await failOnce(t, () => {}, (cio) => cio.sendEmail({ not: 'a request' }))
  t.match(bad.err, { code: 'FST_CIO_INVALID_ARGUMENT', message: /send_email: .*SendEmailRequest/ })
  t.equal(await metric(bad.app, 'cio_api_errors_total', { api: 'app', operation: 'send_email', error_type: 'invalid_argument' }), 1)
})

t.test('an unconfigured API rejects with FST_CIO_NOT_CONFIGURED and is counted', async (t) => {
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim, { siteId: undefined, trackApiKey: undefined, appApiKey: undefined }))
  await t.rejects(app.cio.identify('person-1', {}), { code: 'FST_CIO_NOT_CONFIGURED', message: /siteId and trackApiKey/ })
  await t.rejects(app.cio.listCampaigns(), { code: 'FST_CIO_NOT_CONFIGURED', message: /appApiKey/ })
  t.equal(await metric(app, 'cio_api_errors_total', { api: 'track', operation: 'identify', error_type: 'not_configured' }), 1)
  t.equal(await metric(app, 'cio_api_errors_total', { api: 'app', operation: 'list_campaigns', error_type: 'not_configured' }), 1)
  t.equal(sim.requests.length, 0, 'nothing was sent')
})
