import createError from '@fastify/error'
import type { Api, ErrorType } from './labels.ts'

// Messages name the option, variable or operation at fault, never a value: values may be secrets.

/** The plugin cannot run here: an older Node, or a second registration on the same app. */
export const CioUnsupportedSetupError = createError<'FST_CIO_UNSUPPORTED_SETUP', 500, [string]>(
  'FST_CIO_UNSUPPORTED_SETUP', 'fastify-customerio-observability cannot start: %s', 500
)

/** Bad or half-configured plugin options; fails `ready()`. */
export const CioInvalidOptionsError = createError<'FST_CIO_INVALID_OPTIONS', 500, [string, string]>(
  'FST_CIO_INVALID_OPTIONS', 'Invalid fastify-customerio-observability option "%s": %s', 500, TypeError
)

/** A Track or App API method was called without the credentials it needs. */
export const CioNotConfiguredError = createError<'FST_CIO_NOT_CONFIGURED', 500, [string, string]>(
  'FST_CIO_NOT_CONFIGURED', 'The Customer.io %s API is not configured: set %s', 500
)

/** Webhook refusals, answered with their status code. */
export const CioWebhookSignatureMissingError = createError('FST_CIO_WEBHOOK_SIGNATURE_MISSING', 'Missing X-CIO-Signature or X-CIO-Timestamp header', 401)
export const CioWebhookSignatureInvalidError = createError('FST_CIO_WEBHOOK_SIGNATURE_INVALID', 'Webhook signature does not match', 401)
export const CioWebhookTimestampStaleError = createError('FST_CIO_WEBHOOK_TIMESTAMP_STALE', 'Webhook timestamp is outside the accepted tolerance', 401)
export const CioWebhookMalformedError = createError<'FST_CIO_WEBHOOK_MALFORMED', 400, [string]>('FST_CIO_WEBHOOK_MALFORMED', 'Malformed webhook event: %s', 400)
export const CioWebhookTooLargeError = createError('FST_CIO_WEBHOOK_TOO_LARGE', 'Webhook body is larger than the limit', 413)
export const CioWebhookUnsupportedMediaTypeError = createError('FST_CIO_WEBHOOK_UNSUPPORTED_MEDIA_TYPE', 'Webhook body must be application/json', 415)
// 503, not 500: Customer.io retries a 503 with its normal backoff, but holds back every later
// event of the webhook for an hour after a 500.
export const CioWebhookHandlerError = createError('FST_CIO_WEBHOOK_HANDLER_FAILED', 'The webhook event handler failed; Customer.io will send it again', 503)
/** The event is still being handled (here or at another instance), or its store is unreachable: Customer.io sends it again. */
export const CioWebhookRetryLaterError = createError('FST_CIO_WEBHOOK_RETRY_LATER', 'The webhook event cannot be taken now; Customer.io will send it again', 503)

/** `fastify.cio.queue` was handed something its API cannot batch: not a Track v2 operation or Pipelines item, or a method the other API only has. */
export const CioInvalidOperationError = createError<'FST_CIO_INVALID_OPERATION', 400, [string]>(
  'FST_CIO_INVALID_OPERATION', 'Invalid Customer.io queue operation: %s', 400, TypeError
)

const ApiError = createError<'FST_CIO_API_ERROR', 502 | 504, [string, { cause: unknown }]>('FST_CIO_API_ERROR', '%s', 502)

export interface CioCallFailure {
  readonly errorType: ErrorType
  readonly api: Api
  /** The `operation` label: the method name in snake_case. */
  readonly operation: string
  /** Customer.io's HTTP status, when an answer arrived. */
  readonly upstreamStatus?: number | undefined
  /** The SDK's own error, sanitised. */
  readonly cause: unknown
}

/**
 * A Customer.io call that failed upstream. `statusCode` is what the app should answer if
 * it lets the error propagate: 504 for a timeout, 502 otherwise; never Customer.io's own
 * 401/404/422, which would become the app's answer to its own client. The SDK's error is
 * `cause`, with personal data and keys masked like everything the plugin logs.
 */
export class CioApiError extends ApiError {
  readonly errorType: ErrorType
  readonly api: Api
  readonly operation: string
  readonly upstreamStatus: number | undefined

  constructor (failure: CioCallFailure) {
    const what = failure.errorType === 'timeout' ? 'timed out' : failure.upstreamStatus === undefined ? failure.errorType : `answered ${failure.upstreamStatus}`
    super(`Customer.io ${failure.api} API call ${failure.operation} failed: ${what}`, { cause: failure.cause })
    this.errorType = failure.errorType
    this.api = failure.api
    this.operation = failure.operation
    this.upstreamStatus = failure.upstreamStatus
    if (failure.errorType === 'timeout') this.statusCode = 504
  }
}

/** A `fastify.cio` call the SDK refused before sending it (a missing or wrong argument); `cause` is the SDK's error. */
export const CioInvalidArgumentError = createError<'FST_CIO_INVALID_ARGUMENT', 500, [string, string, { cause: unknown }]>(
  'FST_CIO_INVALID_ARGUMENT', 'Invalid argument to Customer.io %s: %s', 500, TypeError
)

/** `fastify.cio.outbox` could not store an operation (Redis unreachable, hung past the bound, or the app closing): it is not safe, add it again. */
export const CioOutboxUnavailableError = createError<'FST_CIO_OUTBOX_UNAVAILABLE', 503, [string, { cause: unknown }?]>(
  'FST_CIO_OUTBOX_UNAVAILABLE', 'The Customer.io outbox could not store the operation: %s', 503
)

/** `fastify.cio.outbox` holds `maxLength` entries not yet sent: nothing more is taken until senders catch up. */
export const CioOutboxFullError = createError<'FST_CIO_OUTBOX_FULL', 503, [number]>(
  'FST_CIO_OUTBOX_FULL', 'The Customer.io outbox is full: it holds %d operations not yet sent', 503
)
