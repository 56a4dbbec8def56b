import createError from '@fastify/error'

// Messages name the option, variable or operation at fault, never a value: values may be secrets.

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
export const CioWebhookHandlerError = createError('FST_CIO_WEBHOOK_HANDLER_FAILED', 'The webhook event handler failed; Customer.io will retry', 500)

/** `fastify.cio.queue` was handed something that is not a Track v2 operation. */
export const CioInvalidOperationError = createError<'FST_CIO_INVALID_OPERATION', 400, [string]>(
  'FST_CIO_INVALID_OPERATION', 'Invalid Customer.io queue operation: %s', 400, TypeError
)
