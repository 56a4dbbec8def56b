import { performance } from 'node:perf_hooks'
import type { FastifyBaseLogger } from 'fastify'
import type { AttemptObserver, CallScope } from './attempts.ts'
import { rejectionFor } from './call-error.ts'
import { classify } from './classify.ts'
import type { Api, Channel, ErrorType, Outcome } from '../labels.ts'
import { CioNotConfiguredError } from '../errors.ts'
import { withEventId, withId } from './event-id.ts'
import { CREDENTIALS } from '../options.ts'
import { ERROR_LABEL_SETS, HISTOGRAM_LABEL_SETS, LabelBudget, type MetricsHandle } from '../monitoring/metrics.ts'
import { operations, type CioMethods, type Operation, type OperationName } from './operations.ts'
import type { Server, Tracing } from '../monitoring/tracing.ts'

/** The SDK clients behind `fastify.cio`; one is absent when its credentials are. */
export interface SdkClients {
  readonly track?: object
  readonly app?: object
  readonly pipelines?: object
}

export interface ClientDeps {
  readonly sdk: SdkClients
  readonly servers: Readonly<Record<Api, Server>>
  readonly metrics: MetricsHandle
  readonly observer: AttemptObserver
  readonly tracing: Tracing | undefined
  readonly log: FastifyBaseLogger
  /** Values masked wherever they appear in an error (API and signing keys). */
  readonly secrets: readonly string[]
  /** Told of each send that began a delivery, with Customer.io's `delivery_id`. */
  readonly onDelivery?: (deliveryId: string, channel: Channel) => void
}

/** Every SDK method, promise-returning; see {@link CioMethods}. */
export type CioClient = CioMethods

type Sdk = Record<string, (...a: unknown[]) => Promise<unknown>>

/** Calls that record an event get an idempotency `id`, so the SDK's retries never record it twice. */
const EVENT_CALLS: Partial<Record<OperationName, (sdk: Sdk, args: unknown[]) => Promise<unknown>>> = {
  track: (sdk, [id, data, ...rest]) => sdk.track(id, withEventId(data), ...rest),
  trackAnonymous: (sdk, [id, data, ...rest]) => sdk.trackAnonymous(id, withEventId(data), ...rest),
  // The SDK's trackPageView takes no id: the same page event goes through track(), which does.
  // A bad path still reaches trackPageView, so the caller gets the SDK's own error for it.
  trackPageView: (sdk, [id, path]) => typeof path === 'string' && path !== ''
    ? sdk.track(id, withEventId({ type: 'page', name: path }))
    : sdk.trackPageView(id, path),
  // Pipelines: a messageId before the first attempt, so a batch sent again (the queue's re-send,
  // not only the SDK's own retry) carries the same ids and Customer.io records each once.
  'pipelines.identify': (sdk, [payload]) => sdk.identify(withId(payload, 'messageId')),
  'pipelines.track': (sdk, [payload]) => sdk.track(withId(payload, 'messageId')),
  'pipelines.page': (sdk, [payload]) => sdk.page(withId(payload, 'messageId')),
  'pipelines.screen': (sdk, [payload]) => sdk.screen(withId(payload, 'messageId')),
  'pipelines.group': (sdk, [payload]) => sdk.group(withId(payload, 'messageId')),
  'pipelines.alias': (sdk, [payload]) => sdk.alias(withId(payload, 'messageId')),
  'pipelines.batch': (sdk, [items]) => sdk.batch(Array.isArray(items) ? items.map((item) => withId(item, 'messageId')) : items)
}

/** How errors name each API. */
const API_NAMES: Readonly<Record<Api, string>> = { track: 'Track', app: 'App', pipelines: 'Data Pipelines' }

/** SDK calls that begin a delivery, by the channel it goes out on. */
const DELIVERY_CHANNELS: Partial<Record<OperationName, Channel>> = { sendEmail: 'email', sendPush: 'push', sendSMS: 'sms', sendInboxMessage: 'in_app' }

/** SDK calls that send exactly one email when they succeed. */
const API_EMAILS: Partial<Record<OperationName, 'transactional'>> = { sendEmail: 'transactional' }

function deliveryIdOf (result: unknown): string | undefined {
  const id = (result as { delivery_id?: unknown } | null)?.delivery_id
  return typeof id === 'string' ? id : undefined
}

/**
 * Builds `fastify.cio`: one function per SDK method, all through {@link instrument}, which
 * times the call, counts it, classifies its failure, traces it and logs it. The caller gets
 * the SDK's own result, or the SDK's own error object, unchanged.
 */
export function createClient (deps: ClientDeps): CioClient {
  const { sdk, servers, metrics, observer, tracing, log, secrets, onDelivery } = deps
  const histogramBudget = new LabelBudget(HISTOGRAM_LABEL_SETS)
  const errorBudget = new LabelBudget(ERROR_LABEL_SETS)

  function finish (scope: CallScope, start: number, errorType: ErrorType | undefined, result: unknown, error?: unknown): void {
    const { op } = scope
    const seconds = (performance.now() - start) / 1000
    const outcome: Outcome = errorType === undefined ? 'success' : 'error'
    metrics.inFlight.dec({ api: op.api })
    metrics.requests.inc({ api: op.api, operation: op.label })
    metrics.duration.observe({
      labels: { api: op.api, operation: histogramBudget.admit(`${op.api}:${op.label}:${outcome}`, op.label), outcome },
      value: seconds,
      exemplarLabels: scope.span === undefined ? undefined : tracing?.exemplar(scope.span)
    })
    const fields = { api: op.api, operation: op.label, status: scope.statusCode, attempts: scope.attempts, duration_seconds: seconds }
    if (errorType === undefined) {
      const emailType = API_EMAILS[op.name]
      if (emailType !== undefined) metrics.emailSent.inc({ source: 'api', type: emailType })
      const channel = DELIVERY_CHANNELS[op.name]
      const deliveryId = deliveryIdOf(result)
      if (channel !== undefined && deliveryId !== undefined) onDelivery?.(deliveryId, channel)
      log.debug(fields, 'customer.io call succeeded')
    } else {
      metrics.errors.inc({ api: op.api, operation: errorBudget.admit(`${op.api}:${op.label}:${errorType}`, op.label), error_type: errorType })
      log.warn({ ...fields, error_type: errorType, err: error }, 'customer.io call failed')
    }
    if (scope.span !== undefined) {
      tracing?.endCall(scope.span, { errorType, statusCode: scope.statusCode, deliveryId: deliveryIdOf(result), error })
    }
  }

  /** Records a failed call and returns what the caller's promise rejects with. */
  function fail (scope: CallScope, start: number, errorType: ErrorType, err: unknown): unknown {
    const rejection = rejectionFor(err, scope.op, errorType, scope.statusCode, secrets)
    finish(scope, start, errorType, undefined, err)
    return rejection
  }

  function instrument (op: Operation, args: unknown[]): Promise<unknown> {
    const start = performance.now()
    const target = sdk[op.api] as Sdk | undefined
    const server = servers[op.api]
    const span = tracing?.startCall(op, server)
    const scope: CallScope = { op, server, span, attempts: 0, statusCode: undefined }
    metrics.inFlight.inc({ api: op.api })
    let pending: Promise<unknown>
    try {
      if (target === undefined) throw new CioNotConfiguredError(API_NAMES[op.api], CREDENTIALS[op.api])
      const eventCall = EVENT_CALLS[op.name]
      const call = eventCall === undefined ? () => target[op.call](...args) : () => eventCall(target, args)
      pending = observer.run(scope, span === undefined ? call : () => span.run(call))
    } catch (err) {
      // The SDK validates arguments synchronously, before any promise exists: whatever it throws is a bad argument.
      const errorType = classify(err)
      return Promise.reject(fail(scope, start, errorType === 'not_configured' ? errorType : 'invalid_argument', err))
    }
    return pending.then(
      (result) => { finish(scope, start, undefined, result); return result },
      (err: unknown) => { throw fail(scope, start, classify(err), err) }
    )
  }

  const flat: Record<string, unknown> = {}
  const pipelines: Record<string, unknown> = {}
  // Every (api, operation) exists from the start, so rates and ratios never see a missing series.
  for (const op of operations) {
    metrics.requests.inc({ api: op.api, operation: op.label }, 0)
    ;(op.api === 'pipelines' ? pipelines : flat)[op.call] = (...args: unknown[]) => instrument(op, args)
  }
  return { ...flat, pipelines: Object.freeze(pipelines) } as unknown as CioClient
}
