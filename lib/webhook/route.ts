import { STATUS_CODES } from 'node:http'
import type { FastifyBaseLogger, FastifyError, FastifyInstance, FastifyReply } from 'fastify'
import { CioWebhookHandlerError, CioWebhookMalformedError, CioWebhookRetryLaterError, CioWebhookTooLargeError, CioWebhookUnsupportedMediaTypeError } from '../errors.ts'
import type { MetricsHandle } from '../monitoring/metrics.ts'
import { sanitizeString } from '../monitoring/sanitize.ts'
import { LATE, within } from '../timers.ts'
import type { Tracing } from '../monitoring/tracing.ts'
import type { StoreOperation } from './dedupe.ts'
import { createDirectHandler, type DirectOutcome } from './direct.ts'
import { parseEvent, type ReadEvent } from './events.ts'
import { openInbox } from './inbox/mode.ts'
import { createInboxGauge, createWebhookMetrics, type RejectReason } from './metrics.ts'
import type { WebhookSettings } from './options.ts'
import { recorder } from './record.ts'
import { createWebhookVerifier, VERIFY_ERRORS } from './verify.ts'

export interface WebhookDeps {
  readonly options: WebhookSettings
  readonly metrics: MetricsHandle
  readonly tracing: Tracing | undefined
  readonly log: FastifyBaseLogger
  readonly secrets: readonly string[]
  /** Told of each handled event, after it was counted. */
  readonly onRecorded?: (read: ReadEvent) => void
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
  return reply.code(statusCode).send({ statusCode, code, error: STATUS_CODES[statusCode], message: error.message })
}

/**
 * The answers to a verified event. Customer.io holds back every later event of the webhook
 * for an hour after a 4xx or 500, so nothing that came from it is refused: a failure here
 * answers 503, which it retries with its normal backoff.
 */
const retryLater = (): Error => new CioWebhookRetryLaterError()
const ANSWERS: Readonly<Record<Exclude<DirectOutcome, 'handled' | 'duplicate'>, () => Error>> = {
  failed: () => new CioWebhookHandlerError(),
  pending: retryLater,
  unavailable: retryLater,
  unconfirmed: retryLater
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
export async function registerWebhookRoute (fastify: FastifyInstance, deps: WebhookDeps): Promise<{ close: () => Promise<void> }> {
  const { options, tracing, log, secrets } = deps
  const metrics = createWebhookMetrics(deps.metrics)
  const verify = createWebhookVerifier(options.signingKeys, options.toleranceSeconds)
  const count = recorder(metrics, deps.metrics.emailSent)
  const record = (read: ReadEvent, receivedAt: number): void => {
    count(read, receivedAt)
    deps.onRecorded?.(read)
  }
  const handlerFailed = () => { metrics.handlerErrors.inc() }
  const storeFailed = (operation: StoreOperation) => { metrics.storeErrors.inc({ call: operation }) }
  const inbox = options.inbox === undefined
    ? undefined
    : await openInbox(options.inbox, { onEvent: options.onEvent, record, handlerFailed, tracing, log, secrets, commandTimeoutMs: options.answerWithinMs })
  if (inbox !== undefined) createInboxGauge(deps.metrics, () => inbox.counts())
  const direct = createDirectHandler({ store: options.dedupe, onEvent: options.onEvent, answerWithinMs: options.answerWithinMs, record, handlerFailed, storeFailed, tracing, log, secrets })

  const refuse = (reply: FastifyReply, reason: RejectReason, error: Error = REFUSALS[reason]()) => {
    metrics.rejected.inc({ reason })
    // Logged once, with the reason only: never the body, headers or signature.
    log.warn({ reason, reqId: reply.request.id }, 'customer.io webhook refused')
    return answer(reply, error)
  }

  /** Where a verified event goes: into the inbox, or to onEvent now. */
  const take = async (read: ReadEvent, request: Parameters<typeof direct>[1], receivedAt: number): Promise<DirectOutcome> => {
    if (inbox === undefined) return await direct(read, request, receivedAt)
    try {
      // An event stored after the answer is safe: its next copy finds the job.
      const added = await within(inbox.add(read, receivedAt), receivedAt + options.answerWithinMs - Date.now())
      if (added === LATE) return 'pending'
      return added === 'added' ? 'handled' : 'duplicate'
    } catch (err) {
      log.error({ err }, 'customer.io webhook inbox cannot store the event')
      return 'unavailable'
    }
  }

  /** The answer to a verified event, once its outcome is known. */
  const respond = ({ labels, eventId }: ReadEvent, reply: FastifyReply, outcome: DirectOutcome) => {
    if (outcome === 'duplicate') metrics.duplicates.inc()
    // Built only when someone reads debug lines: sanitising costs more than the rest of the route.
    if (log.level === 'debug' || log.level === 'trace') {
      log.debug({ object_type: labels.objectType, metric: labels.metric, event_id: eventId === undefined ? undefined : sanitizeString(eventId, secrets), outcome }, 'customer.io webhook event')
    }
    if (outcome === 'handled') return { ok: true }
    if (outcome === 'duplicate') return { ok: true, duplicate: true }
    return answer(reply, ANSWERS[outcome]())
  }

  await fastify.register(async (child) => {
    child.removeAllContentTypeParsers()
    child.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: options.bodyLimit }, (_request, body, done) => done(null, body))
    child.setErrorHandler((error: FastifyError, request, reply) => {
      // A body Fastify could not read is refused; anything else is this side's fault, and a
      // 4xx would hold back Customer.io's stream for an hour.
      if (error.code?.startsWith('FST_ERR_CTP_')) return refuse(reply, BODY_ERRORS[error.code] ?? 'malformed')
      log.error({ err: error, reqId: request.id }, 'customer.io webhook route failed')
      return answer(reply, new CioWebhookRetryLaterError())
    })

    child.post(options.path, {
      bodyLimit: options.bodyLimit,
      schema: {
        response: {
          '2xx': { type: 'object', properties: { ok: { type: 'boolean' }, duplicate: { type: 'boolean' } }, required: ['ok'] },
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

      let read: ReadEvent
      try {
        read = parseEvent(body)
      } catch {
        // Signed by Customer.io, so not refused (that would stall the stream): taken, counted, dropped.
        metrics.rejected.inc({ reason: 'malformed' })
        log.warn({ reason: 'malformed', reqId: request.id }, 'customer.io webhook body is not JSON; accepted and dropped')
        return reply.code(202).send({ ok: false })
      }
      return respond(read, reply, await take(read, request, receivedAt))
    })
  })
  return { close: async () => { await inbox?.close() } }
}
