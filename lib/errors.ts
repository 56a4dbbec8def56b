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
