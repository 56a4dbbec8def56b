import diagnostics from 'node:diagnostics_channel'
import { AsyncLocalStorage } from 'node:async_hooks'
import type { Span } from '@opentelemetry/api'
import { statusLabel, type AttemptStatus } from './classify.ts'
import type { MetricsHandle } from './metrics.ts'
import type { Operation } from './operations.ts'
import type { CallSpan, Server, Tracing } from './tracing.ts'

/** State of one `fastify.cio` call, visible to the HTTP attempts it makes. */
export interface CallScope {
  readonly op: Operation
  readonly server: Server
  readonly span: CallSpan | undefined
  attempts: number
  /** Status of the last HTTP answer, if any arrived. */
  statusCode: number | undefined
}

interface Attempt {
  readonly scope: CallScope
  readonly span: Span | undefined
}

interface UndiciRequest { readonly method: string }

/**
 * Observes every HTTP attempt the SDK makes, its own retries included, through undici's
 * diagnostics channels (Node's fetch publishes them). Only requests started inside a
 * `fastify.cio` call are counted: the call's scope travels in an AsyncLocalStorage, and
 * is captured when the request is created because later events run in the socket's context.
 */
export class AttemptObserver {
  readonly #storage = new AsyncLocalStorage<CallScope>()
  readonly #attempts = new WeakMap<UndiciRequest, Attempt>()
  readonly #metrics: MetricsHandle
  readonly #tracing: Tracing | undefined

  constructor (metrics: MetricsHandle, tracing: Tracing | undefined) {
    this.#metrics = metrics
    this.#tracing = tracing
    diagnostics.subscribe('undici:request:create', this.#onCreate)
    diagnostics.subscribe('undici:request:headers', this.#onHeaders)
    diagnostics.subscribe('undici:request:error', this.#onError)
  }

  run<T>(scope: CallScope, fn: () => T): T {
    return this.#storage.run(scope, fn)
  }

  close (): void {
    diagnostics.unsubscribe('undici:request:create', this.#onCreate)
    diagnostics.unsubscribe('undici:request:headers', this.#onHeaders)
    diagnostics.unsubscribe('undici:request:error', this.#onError)
  }

  readonly #onCreate = (message: unknown): void => {
    const scope = this.#storage.getStore()
    if (scope === undefined) return
    scope.attempts++
    const span = scope.span === undefined ? undefined : this.#tracing?.startAttempt(scope.span, scope.op, scope.server, scope.attempts)
    this.#attempts.set((message as { request: UndiciRequest }).request, { scope, span })
  }

  readonly #onHeaders = (message: unknown): void => {
    const { request, response } = message as { request: UndiciRequest, response: { statusCode: number } }
    const attempt = this.#finish(request)
    if (attempt === undefined) return
    attempt.scope.statusCode = response.statusCode
    const label = statusLabel(response.statusCode)
    this.#record(attempt, label, response.statusCode, label === '2xx' ? undefined : label)
  }

  readonly #onError = (message: unknown): void => {
    const { request, error } = message as { request: UndiciRequest, error: Error }
    const attempt = this.#finish(request)
    if (attempt === undefined) return
    const label = error.name === 'TimeoutError' ? 'timeout' : 'network'
    this.#record(attempt, label, undefined, label)
  }

  /** An attempt ends once: at its response headers or at its error, whichever comes first. */
  #finish (request: UndiciRequest): Attempt | undefined {
    const attempt = this.#attempts.get(request)
    this.#attempts.delete(request)
    return attempt
  }

  #record ({ scope, span }: Attempt, label: AttemptStatus, statusCode: number | undefined, errorType: string | undefined): void {
    this.#metrics.attempts.inc({ api: scope.op.api, status_code: label })
    if (span !== undefined) this.#tracing?.endAttempt(span, statusCode, errorType)
  }
}
