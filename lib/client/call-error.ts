import { CustomerIORequestError } from 'customerio-node'
import type { ErrorType } from '../labels.ts'
import { CioApiError, CioInvalidArgumentError } from '../errors.ts'
import type { Operation } from './operations.ts'
import { sanitizeString } from '../monitoring/sanitize.ts'

/**
 * Masks personal data and keys in an SDK error, its cause chain included, in place. The
 * error was made for this one call and nobody has seen it yet; an app that lets the
 * rejection reach Fastify's default handler logs it with every cause's message and stack,
 * and Customer.io's error bodies may echo the request (emails, phones, credentials).
 */
function scrub (err: unknown, secrets: readonly string[], seen = new WeakSet<Error>()): void {
  // A cause chain may loop back on itself.
  if (!(err instanceof Error) || seen.has(err)) return
  seen.add(err)
  const { message } = err
  const clean = sanitizeString(message, secrets)
  // The stack is read (and so formatted, which is costly) only when its head, the message,
  // had something to mask: the frames are code locations.
  if (clean !== message) {
    const { stack } = err
    // An own property: some errors (DOMException) have message as a getter only.
    Object.defineProperty(err, 'message', { value: clean, writable: true, configurable: true })
    if (stack !== undefined) Object.defineProperty(err, 'stack', { value: sanitizeString(stack, secrets), writable: true, configurable: true })
  }
  if (err instanceof CustomerIORequestError) err.body = sanitizeString(err.body, secrets)
  scrub(err.cause, secrets, seen)
}

/**
 * What `fastify.cio` rejects with: the plugin's own errors as they are; an argument the SDK
 * refused as `CioInvalidArgumentError` (500); any other failure as `CioApiError` (502, 504
 * for a timeout). The SDK's error, sanitised, is the `cause` of either.
 */
export function rejectionFor (err: unknown, op: Operation, errorType: ErrorType, observedStatus: number | undefined, secrets: readonly string[]): unknown {
  if (errorType === 'not_configured') return err
  scrub(err, secrets)
  if (errorType === 'invalid_argument') {
    // The SDK refuses arguments with Error objects (MissingParamError, TypeError-like checks).
    return new CioInvalidArgumentError(op.label, (err as Error).message, { cause: err })
  }
  const upstreamStatus = err instanceof CustomerIORequestError ? err.statusCode : observedStatus
  return new CioApiError({ errorType, api: op.api, operation: op.label, upstreamStatus, cause: err })
}
