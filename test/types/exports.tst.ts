import { expect, test } from 'tstyche'
import { Redis } from 'ioredis'
import {
  CioApiError, CioInvalidArgumentError, CioInvalidOperationError, CioInvalidOptionsError, CioNotConfiguredError, CioUnsupportedSetupError,
  CioWebhookHandlerError, CioWebhookMalformedError, CioWebhookRetryLaterError, CioWebhookSignatureInvalidError, CioWebhookSignatureMissingError,
  CioWebhookTimestampStaleError, CioWebhookTooLargeError, CioWebhookUnsupportedMediaTypeError, MemoryDedupeStore, RedisDedupeStore,
  CioOutboxFullError, CioOutboxUnavailableError, MemoryDeliveryStore, RedisDeliveryStore, type CioDeliveryOptions, type DeliveryStore, type DeliveryEvent,
  type DeliveryRecorded, type Channel, type MemoryDeliveryOptions, type RedisDeliveryClient, type RedisDeliveryOptions, type CioOutbox, type CioOutboxOptions, type OutboxDropReason, type RedisConnection,
  cioEnvSchema, cioObservability, cioRedactPaths, verifyCioWebhook,
  type Api, type BatchOperation, type ClaimResult, type CioClient, type CioClientOptions, type CioMetricsOptions, type CioObservabilityOptions,
  type CioQueue, type CioQueueOptions, type CioWebhookEvent, type CioWebhookInboxOptions, type CioWebhookOptions, type DedupeStore,
  type DropReason, type ErrorType, type QueueItem, type EventData, type Identifiers, type LogLevel, type MemoryDedupeOptions, type MetricOf, type ObjectType,
  type OperationName, type RecognisedWebhookEvent, type RedisDedupeClient, type RedisDedupeOptions, type UnrecognisedWebhookEvent,
  type VerifyCioWebhookInput
} from '../../lib/index.ts'

test('every error class is an Error with its FST_CIO_ code and the status an app should answer', () => {
  for (const Error of [CioInvalidOptionsError, CioNotConfiguredError, CioInvalidOperationError, CioUnsupportedSetupError, CioInvalidArgumentError,
    CioWebhookSignatureMissingError, CioWebhookSignatureInvalidError, CioWebhookTimestampStaleError, CioWebhookMalformedError,
    CioWebhookTooLargeError, CioWebhookUnsupportedMediaTypeError, CioWebhookHandlerError, CioWebhookRetryLaterError, CioOutboxUnavailableError,
    CioOutboxFullError]) {
    expect(Error).type.toBeAssignableTo<new (...args: never[]) => globalThis.Error & { code: string, statusCode?: number }>()
  }
  expect<CioApiError['errorType']>().type.toBe<ErrorType>()
  expect<CioApiError['api']>().type.toBe<Api>()
  expect<CioApiError['upstreamStatus']>().type.toBe<number | undefined>()
})

test('the stores keep the DedupeStore contract', () => {
  expect(new MemoryDedupeStore()).type.toBeAssignableTo<DedupeStore>()
  expect<MemoryDedupeOptions>().type.toBeAssignableFrom({ size: 10 })
  expect(new RedisDedupeStore(new Redis({ lazyConnect: true }))).type.toBeAssignableTo<DedupeStore>()
  expect<RedisDedupeClient>().type.toBeAssignableFrom(new Redis({ lazyConnect: true }))
  expect<RedisDedupeOptions>().type.toBeAssignableFrom({ prefix: 'app:', doneTtlMs: 1_000 })
  expect<ReturnType<DedupeStore['claim']>>().type.toBe<ClaimResult | Promise<ClaimResult>>()
  expect<ClaimResult>().type.toBe<'new' | 'busy' | 'done'>()
})

test('the delivery stores keep the DeliveryStore contract', () => {
  expect(new MemoryDeliveryStore({ size: 10, onEvict: () => {} })).type.toBeAssignableTo<DeliveryStore>()
  expect(new RedisDeliveryStore(new Redis({ lazyConnect: true }), { prefix: 'app:' })).type.toBeAssignableTo<DeliveryStore>()
  expect<RedisDeliveryClient>().type.toBeAssignableFrom(new Redis({ lazyConnect: true }))
  expect<MemoryDeliveryOptions>().type.toBeAssignableFrom({ size: 10 })
  expect<RedisDeliveryOptions>().type.toBeAssignableFrom({ prefix: 'app:' })
  expect<ReturnType<DeliveryStore['record']>>().type.toBe<DeliveryRecorded | Promise<DeliveryRecorded>>()
  expect<DeliveryEvent['channel']>().type.toBe<Channel>()
  expect<Channel>().type.toBe<'email' | 'push' | 'in_app' | 'sms' | 'slack' | 'webhook' | 'whatsapp' | '_other'>()
  expect<CioObservabilityOptions['delivery']>().type.toBe<false | CioDeliveryOptions | undefined>()
  expect<CioDeliveryOptions>().type.toBeAssignableFrom({ confirmWithinSeconds: 600, store: { size: 1_000 } })
})

test('verifyCioWebhook takes the raw body and headers and returns the event', () => {
  expect(verifyCioWebhook({ body: '{}', headers: {}, signingKeys: 'k' })).type.toBe<CioWebhookEvent>()
  expect<VerifyCioWebhookInput>().type.toBeAssignableFrom({ body: Buffer.from(''), headers: new Headers(), signingKeys: ['a', 'b'], toleranceSeconds: 300 })
})

test('the event types', () => {
  expect<RecognisedWebhookEvent | UnrecognisedWebhookEvent>().type.toBe<CioWebhookEvent>()
  expect<ObjectType>().type.toBe<'customer' | 'email' | 'push' | 'in_app' | 'sms' | 'slack' | 'webhook' | 'whatsapp'>()
  expect<'bounced'>().type.toBeAssignableTo<MetricOf<'email'>>()
  expect<EventData['delivery_id']>().type.toBe<string | undefined>()
  expect<Identifiers['email']>().type.toBe<string | null | undefined>()
})

test('the option types', () => {
  expect<CioObservabilityOptions['client']>().type.toBe<CioClientOptions | undefined>()
  expect<CioObservabilityOptions['metrics']>().type.toBe<false | CioMetricsOptions | undefined>()
  expect<CioObservabilityOptions['webhook']>().type.toBe<false | CioWebhookOptions | undefined>()
  expect<CioObservabilityOptions['queue']>().type.toBe<false | CioQueueOptions | undefined>()
  expect<CioObservabilityOptions['logLevel']>().type.toBe<LogLevel | undefined>()
  expect<CioWebhookOptions['inbox']>().type.toBe<CioWebhookInboxOptions | undefined>()
  expect<Parameters<NonNullable<CioQueueOptions['onDrop']>>>().type.toBe<[operations: QueueItem[], reason: DropReason]>()
  expect<BatchOperation>().type.toBeAssignableTo<QueueItem>()
  expect<DropReason>().type.toBe<'overflow' | 'too_large' | 'rejected' | 'shutdown'>()
  expect<CioObservabilityOptions['outbox']>().type.toBe<false | CioOutboxOptions | undefined>()
  expect<CioOutboxOptions>().type.toBeAssignableFrom({ connection: 'redis://127.0.0.1:6379' })
  expect<CioOutboxOptions>().type.toBeAssignableFrom({ connection: new Redis({ lazyConnect: true }), sender: false, claimAfterMs: 60_000 })
  expect<CioOutboxOptions>().type.not.toBeAssignableFrom({ sender: false })
  expect<RedisConnection>().type.toBeAssignableFrom({ host: '127.0.0.1', port: 6379 })
  expect<Parameters<NonNullable<CioOutboxOptions['onDrop']>>>().type.toBe<[operations: QueueItem[], reason: 'rejected']>()
  expect<OutboxDropReason>().type.toBe<'rejected' | 'unreadable'>()
})

test('the outbox: every call resolves once Redis has stored it', () => {
  expect<CioOutbox['track']>().type.toBeCallableWith('p1', { name: 'signed_up' })
  expect<ReturnType<CioOutbox['track']>>().type.toBe<Promise<void>>()
  expect<ReturnType<CioOutbox['enqueue']>>().type.toBe<Promise<void>>()
  expect<CioOutbox>().type.not.toHaveProperty('depth')
})

test('the client, the queue and the values the package exports', () => {
  expect<OperationName>().type.toBeAssignableFrom('sendEmail' as const)
  expect<CioClient['identify']>().type.toBeCallableWith('p1', { plan: 'pro' })
  expect<CioQueue['depth']>().type.toBe<number>()
  expect(cioRedactPaths).type.toBe<readonly string[]>()
  expect(cioEnvSchema.properties).type.toHaveProperty('CUSTOMERIO_WEBHOOK_SIGNING_KEY')
  expect<Parameters<typeof cioObservability>[1]>().type.toBe<CioObservabilityOptions>()
})
