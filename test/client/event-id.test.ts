import t from 'tap'
import { MissingParamError } from 'customerio-node'
import { buildApp, metric, rejection, simOptions, startSimulator } from '../helpers.ts'

const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/

t.test('every event fastify.cio sends carries a ULID id unless the caller set one; the caller\'s object is not changed', async (t) => {
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim))
  const data = Object.freeze({ name: 'signed_up', data: Object.freeze({ plan: 'pro' }) })
  await app.cio.track('p1', data)
  await app.cio.track('p1', { name: 'kept', id: '01JGZ8K3M4N5P6Q7R8S9T0V1W2' })
  await app.cio.trackAnonymous('anon-1', { name: 'visited' })
  await app.cio.trackPageView('p1', '/pricing')
  const [signedUp, kept, visited, page] = sim.events
  t.match(signedUp, { type: 'event', name: 'signed_up', customerId: 'p1', data: { plan: 'pro' }, id: ULID })
  t.notOk('id' in data, 'the caller\'s object has no id added')
  t.equal(kept!.id, '01JGZ8K3M4N5P6Q7R8S9T0V1W2', 'the caller\'s id is kept')
  t.match(visited, { type: 'event', anonymousId: 'anon-1', id: ULID })
  t.match(page, { type: 'page', name: '/pricing', customerId: 'p1', id: ULID })
  t.equal(new Set(sim.events.map((e) => e.id)).size, 4)
  t.equal(await metric(app, 'cio_api_requests_total', { api: 'track', operation: 'track_page_view' }), 1, 'a page view is counted as one')
})

t.test('a bad page path still gets the SDK\'s own error', async (t) => {
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim))
  const err = await rejection(app.cio.trackPageView('p1', ''))
  t.ok(err instanceof MissingParamError || err?.cause instanceof MissingParamError, 'MissingParamError for the path')
  t.match(String(err?.message), /path/)
  t.equal(await metric(app, 'cio_api_errors_total', { api: 'track', operation: 'track_page_view', error_type: 'invalid_argument' }), 1)
  t.equal(sim.requests.length, 0)
})

t.test('the SDK\'s own retries record an event once: after a 503, and after an answer lost on the way back', async (t) => {
  const sim = await startSimulator(t)
  const { app } = await buildApp(t, simOptions(sim))
  sim.fault({ operation: 'track', status: 503, times: 1 })
  await app.cio.track('p1', { name: 'after_503' })
  sim.fault({ operation: 'track', lose: 'reset', times: 1 })
  await app.cio.track('p1', { name: 'after_lost_answer' })
  t.same(sim.eventsFor('p1').map((e) => e.name), ['after_503', 'after_lost_answer'], 'once each')
  t.equal(sim.requestsFor('track').length, 4, 'both were sent twice')
  t.equal(sim.discardedEvents.length, 1, 'the copy of the one Customer.io had taken was discarded')
  t.equal(sim.discardedEvents[0]!.id, sim.eventsFor('p1')[1]!.id, 'because it carried the same id')
})
