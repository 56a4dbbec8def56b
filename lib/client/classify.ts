import { CustomerIORequestError, MissingParamError } from 'customerio-node'
import { CioApiError, CioInvalidArgumentError, CioNotConfiguredError } from '../errors.ts'
import { LISTED_STATUSES, type AttemptStatus, type ErrorType } from '../labels.ts'

const listed: ReadonlySet<string> = new Set(LISTED_STATUSES)

/** Maps an HTTP status code onto the closed label set. */
export function statusLabel (statusCode: number): AttemptStatus {
  const code = String(statusCode)
  if (listed.has(code)) return code as AttemptStatus
  if (statusCode >= 200 && statusCode < 300) return '2xx'
  if (statusCode >= 400 && statusCode < 500) return '4xx'
  if (statusCode >= 500 && statusCode < 600) return '5xx'
  return '_other'
}

/**
 * What went wrong with a Customer.io call, as one of {@link ERROR_TYPES}. The SDK reports
 * non-2xx answers as `CustomerIORequestError`, transport failures as fetch's `TypeError`,
 * timeouts as a `TimeoutError` DOMException, and unreadable answers (non-JSON body,
 * redirect without Location) as plain `Error`s raised before any status check.
 */
export function classify (err: unknown): ErrorType {
  // What fastify.cio rejects with already says (the queue classifies its batch failures here).
  if (err instanceof CioApiError) return err.errorType
  if (err instanceof CioInvalidArgumentError) return 'invalid_argument'
  if (err instanceof CustomerIORequestError) {
    const label = statusLabel(err.statusCode)
    return label === '2xx' ? '_other' : label
  }
  if (err instanceof CioNotConfiguredError) return 'not_configured'
  if (err instanceof MissingParamError) return 'invalid_argument'
  if (!(err instanceof Error)) return '_other'
  if (err.name === 'TimeoutError') return 'timeout'
  if (err instanceof TypeError && err.message === 'fetch failed') return 'network'
  if (/^(Unable to parse JSON|Received a \d+ status, but no Location)/.test(err.message)) return 'invalid_response'
  return '_other'
}
