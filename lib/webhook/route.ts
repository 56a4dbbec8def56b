import type { FastifyBaseLogger, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { CioWebhookHandlerError, CioWebhookMalformedError, CioWebhookTooLargeError, CioWebhookUnsupportedMediaTypeError } from '../errors.ts'
import { sanitizeString } from '../redact.ts'
import type { Tracing } from '../tracing.ts'
import { emailTypeOf, labelsOf, parseEvent, type CioWebhookEvent, type EventLabels } from './events.ts'
import type { RejectReason, WebhookMetrics } from './metrics.ts'
import type { WebhookSettings } from './options.ts'
import { createWebhookVerifier, VERIFY_ERRORS } from './verify.ts'

export interface WebhookDeps {
  readonly options: WebhookSettings
  readonly metrics: WebhookMetrics
  readonly emailSent: { inc: (labels: { source: string, type: string }) => void }
  readonly tracing: Tracing | undefined
  readonly log: FastifyBaseLogger
  readonly secrets: readonly string[]
}

const REFUSALS: Readonly<Record<RejectReason, () => Error>> = {
  ...VERIFY_ERRORS,
  malformed: () => new CioWebhookMalformedError('body is not JSON'),
  too_large: () => new CioWebhookTooLargeError(),
  unsupported_media_type: () => new CioWebhookUnsupportedMediaTypeError()
}

/**
 * Fastify's standard error body, sent directly: an Error handed to `reply.send` would go
 * through the app's error handler, which may reshape or re-log it.
 */
function answer (reply: FastifyReply, error: Error): FastifyReply {
  const { statusCode, code } = error as FastifyError & { statusCode: number }
  return reply.code(statusCode).send({ statusCode, code, error: STATUS_TEXT[statusCode], message: error.message })
}

const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: 'Bad Request', 401: 'Unauthorized', 413: 'Payload Too Large', 415: 'Unsupported Media Type', 500: 'Internal Server Error'
}

const ERROR_SCHEMA = {
  type: 'object',
  properties: { statusCode: { type: 'integer' }, code: { type: 'string' }, error: { type: 'string' }, message: { type: 'string' } }
}

/** Fastify's own body errors, as refusal reasons; any other error before the handler is a bad body. */
const BODY_ERRORS: Readonly<Record<string, RejectReason>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type'
}

/**
 * The reporting-webhook route, in an encapsulated context whose only parser keeps the raw
 * JSON bytes (the signature covers them), so the app's own parsers are untouched.
 */
export async function registerWebhookRoute (fastify: FastifyInstance, deps: WebhookDeps): Promise<void> {
  const { options, metrics, emailSent, tracing, log, secrets } = deps
  const verify = createWebhookVerifier(options.signingKeys, options.toleranceSeconds)
  // Concurrent copies of one event wait for the first, so onEvent never runs twice at once.
  const inFlight = new Map<string, Promise<boolean>>()

  const refuse = (reply: FastifyReply, reason: RejectReason, error: Error = REFUSALS[reason]()) => {
    metrics.rejected.inc({ reason })
    // Logged once, with the reason only: never the body, headers or signature.
    log.warn({ reason, reqId: reply.request.id }, 'customer.io webhook refused')
    return answer(reply, error)
  }

  const record = (event: CioWebhookEvent, labels: EventLabels, receivedAt: number) => {
    metrics.received.inc({ object_type: labels.objectType, metric: labels.metric })
    metrics.lag.observe({ object_type: labels.objectType }, Math.max(0, receivedAt / 1000 - event.timestamp))
    metrics.lastReceived.set(receivedAt / 1000)
    if (labels.objectType !== 'email') return
    if (labels.metric === 'sent') emailSent.inc({ source: 'webhook', type: emailTypeOf(event.data) })
    else if (labels.metric === 'bounced') metrics.bounced.inc()
    else if (labels.metric === 'spammed') metrics.complained.inc()
  }

  /** Hands a new event to onEvent inside its span; true when it was handled now, false for a duplicate. */
  const handle = async (event: CioWebhookEvent, labels: EventLabels, request: FastifyRequest, receivedAt: number): Promise<boolean> => {
    if (await options.dedupe.has(event.event_id)) return false
    const { onEvent } = options
    const span = tracing?.startWebhook(labels, event.event_id, event.data.delivery_id)
    try {
      if (onEvent !== undefined) await (span === undefined ? onEvent(event, request) : span.run(() => onEvent(event, request)))
    } catch (err) {
      span?.end(err)
      throw err
    }
    span?.end()
    await options.dedupe.add(event.event_id)
    record(event, labels, receivedAt)
    return true
  }

  await fastify.register(async (child) => {
    child.removeAllContentTypeParsers()
    child.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: options.bodyLimit }, (_request, body, done) => done(null, body))
    // Reached only by errors before the handler runs: the handler catches its own.
    child.setErrorHandler((error: FastifyError, _request, reply) => refuse(reply, BODY_ERRORS[error.code] ?? 'malformed'))

    child.post(options.path, {
      bodyLimit: options.bodyLimit,
      schema: {
        response: {
          200: { type: 'object', properties: { ok: { type: 'boolean' }, duplicate: { type: 'boolean' } }, required: ['ok'] },
          '4xx': ERROR_SCHEMA,
          '5xx': ERROR_SCHEMA
        }
      }
    }, async (request, reply) => {
      const receivedAt = Date.now()
      const body = request.body as Buffer | undefined
      if (body === undefined) return refuse(reply, 'unsupported_media_type')
      const verdict = verify({ signature: request.headers['x-cio-signature'], timestamp: request.headers['x-cio-timestamp'], body, now: receivedAt })
      if (!verdict.ok) return refuse(reply, verdict.reason)

      let valid: CioWebhookEvent
      try {
        valid = parseEvent(body)
      } catch (err) {
        return refuse(reply, 'malformed', err as Error)
      }
      const labels = labelsOf(valid)
      const pending = inFlight.get(valid.event_id)
      if (pending !== undefined) await pending.catch(() => {})
      const handling = handle(valid, labels, request, receivedAt)
      inFlight.set(valid.event_id, handling)
      let handled: boolean
      try {
        handled = await handling
      } catch (err) {
        metrics.handlerErrors.inc()
        log.error({ err, object_type: labels.objectType, metric: labels.metric, event_id: sanitizeString(valid.event_id, secrets) }, 'customer.io webhook handler failed')
        return answer(reply, new CioWebhookHandlerError())
      } finally {
        if (inFlight.get(valid.event_id) === handling) inFlight.delete(valid.event_id)
      }
      if (!handled) metrics.duplicates.inc()
      // Built only when someone reads debug lines: sanitising costs more than the rest of the route.
      if (log.level === 'debug' || log.level === 'trace') {
        log.debug({ object_type: labels.objectType, metric: labels.metric, event_id: sanitizeString(valid.event_id, secrets) }, handled ? 'customer.io webhook event' : 'customer.io webhook duplicate')
      }
      return handled ? { ok: true } : { ok: true, duplicate: true }
    })
  })
}
