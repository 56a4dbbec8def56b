import { expect, test } from 'tstyche'
import Fastify from 'fastify'
import { SendEmailRequest, type APIClient, type TrackClient } from 'customerio-node'
import type { FastifyRequest } from 'fastify'
import cioObservability, { type CioObservabilityOptions, type CioOutbox, type CioQueue, type CioWebhookEvent, type DropReason, type UnrecognisedWebhookEvent } from '../../lib/index.ts'
import { unrecognisedWebhookEvent, webhookEvent } from '../../lib/testing/index.ts'

const app = Fastify()

test('fastify.cio has the SDK methods with their own argument and result types', () => {
  expect(app.cio.identify).type.toBeCallableWith('p1', { plan: 'pro' })
  expect(app.cio.identify('p1')).type.toBe<ReturnType<TrackClient['identify']>>()
  expect(app.cio.sendEmail).type.toBe<APIClient['sendEmail']>()
  expect(app.cio.track).type.toBeCallableWith('p1', { name: 'signed_up', data: { source: 'ad' } })
  expect(app.cio.sendEmail).type.toBeCallableWith(new SendEmailRequest({ to: 'a@example.com', transactional_message_id: '1', identifiers: { id: '1' } }))
  expect(app.cio.sendEmail).type.not.toBeCallableWith({ to: 'a@example.com' })
  expect(app.cio).type.not.toHaveProperty('identfy')
  expect(app.cio).type.toHaveProperty('triggerBroadcast')
})

test('fastify.cio.queue is optional and returns whether the operation was accepted', () => {
  expect(app.cio.queue).type.toBe<CioQueue | undefined>()
  expect(app.cio.outbox).type.toBe<CioOutbox | undefined>()
  expect(app.cio.queue!.track('p1', { name: 'x' })).type.toBe<boolean>()
  expect(app.cio.queue!.flush()).type.toBe<Promise<void>>()
  expect(app.cio.queue!.depth).type.toBe<number>()
  expect(app.cio.queue!.track).type.not.toBeCallableWith('p1', { data: {} })
})

test('the options type rejects typos and wrong shapes', () => {
  expect(app.register).type.toBeCallableWith(cioObservability, { siteId: 's', trackApiKey: 'k', queue: { maxSize: 10 } })
  expect<CioObservabilityOptions>().type.toBeAssignableFrom({ webhook: false as const, metrics: { endpoint: '/m' } })
  expect<CioObservabilityOptions>().type.not.toBeAssignableFrom({ siteID: 's' })
  expect<CioObservabilityOptions>().type.not.toBeAssignableFrom({ queue: { maxsize: 10 } })
  expect<CioObservabilityOptions>().type.not.toBeAssignableFrom({ region: 'ap' })
  expect<CioObservabilityOptions>().type.not.toBeAssignableFrom({ webhook: { signingKeys: 3 } })
  expect<NonNullable<Exclude<CioObservabilityOptions['queue'], false>>['onDrop']>().type.toBe<((operations: Array<Record<string, unknown> & { type: string }>, reason: DropReason) => void) | undefined>()
})

test('the webhook event union narrows on object_type and metric', () => {
  const event = {} as CioWebhookEvent
  if (event.object_type === 'email') {
    expect(event.metric).type.toBe<'drafted' | 'attempted' | 'sent' | 'delivered' | 'opened' | 'clicked' | 'converted' | 'bounced' | 'dropped' | 'spammed' | 'failed' | 'undeliverable' | 'subscribed' | 'unsubscribed' | 'cio_subscription_preferences_changed'>()
    expect(event.data.delivery_id).type.toBe<string | undefined>()
  }
  if (event.object_type === 'sms') {
    expect(event.metric).type.not.toBe<'spammed'>()
    expect<'replied'>().type.toBeAssignableTo(event.metric)
  }
  switch (event.object_type) {
    case 'email': case 'sms': break
    default: expect(event).type.toBeAssignableFrom<UnrecognisedWebhookEvent>()
  }
  if (event.object_type === '_other') expect(event.raw).type.toBe<unknown>()
})

test('webhookEvent() takes only documented pairs; unrecognisedWebhookEvent() is the explicit escape', () => {
  expect(webhookEvent).type.toBeCallableWith('email', 'bounced')
  expect(webhookEvent).type.not.toBeCallableWith('email', 'bouncd')
  expect(webhookEvent).type.not.toBeCallableWith('sms', 'spammed')
  expect(webhookEvent('email', 'sent').object_type).type.toBe<'email'>()
  expect(unrecognisedWebhookEvent).type.toBeCallableWith('carrier_pigeon', 'flew')
})

test('onEvent gets the request, or undefined in inbox mode', () => {
  expect<NonNullable<Exclude<CioObservabilityOptions['webhook'], false | undefined>['onEvent']>>().type.toBe<(event: CioWebhookEvent, request: FastifyRequest | undefined) => void | Promise<void>>()
})
