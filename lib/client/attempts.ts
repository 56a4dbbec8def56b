import diagnostics from 'node:diagnostics_channel'
import { performance } from 'node:perf_hooks'
import { AsyncLocalStorage } from 'node:async_hooks'
import type { Span } from '@opentelemetry/api'
import { statusLabel } from './classify.ts'
import type { AttemptStatus } from '../labels.ts'
import type { MetricsHandle } from '../monitoring/metrics.ts'
import type { Operation } from './operations.ts'
import type { CallSpan, Server, Tracing } from '../monitoring/tracing.ts'

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
  /** 1 for the first attempt, 2 for the first retry… */
  readonly number: number
  /** When the request was created, as `performance.now()`. */
  readonly start: number
  /** The attempt's span, once known: the undici instrumentation's or the plugin's own. */
  span: Span | undefined
  /** Whether the span is the plugin's own, to end here; the undici instrumentation ends its own. */
  own: boolean
}

/** What a traced call knows about the spans set on its context. */
interface Watch {
  /** The last span set on the call's context in this synchronous turn, not yet taken by an attempt. */
  seen: Span | undefined
  /** An attempt whose create event reached this observer before the instrumentation: it takes the next span set. */
  open: Attempt | undefined
}

interface UndiciRequest { readonly method: string }

/**
 * Observes every HTTP attempt the SDK makes, its own retries included, through undici's
 * diagnostics channels (Node's fetch publishes them). Only requests started inside a
 * `fastify.cio` call are counted: the call's scope travels in an AsyncLocalStorage, and
 * is captured when the request is created because later events run in the socket's context.
 *
 * One span per attempt, even when `@opentelemetry/instrumentation-undici` is active: its request
 * span then is the attempt span, and only gains `http.request.resend_count`. It is recognised
 * without a reference to the instrumentation, and whatever the order of registration:
 * - the instrumentation starts its span while undici publishes `undici:request:create`, and
 *   derives the request's context with `trace.setSpan(context.active(), span)`. The active
 *   context is the call's, which reports that span (tracing.ts `CallContext`);
 * - `undici:request:create` is published synchronously, to its subscribers in the order they
 *   subscribed: the instrumentation's span is set either just before this observer's create
 *   handler, in the same synchronous turn (`seen`), or after it, before the publication ends;
 * - that window closes at the end of the turn (a microtask) or at `undici:client:beforeConnect`,
 *   whichever is first, because undici connects in the same turn and instrumentations of sockets
 *   or DNS may set their own spans then. An attempt that got no span by then (instrumentation
 *   absent, disabled, ignoring the request, not recording) gets the plugin's own span, started
 *   at the request's creation.
 */
export class AttemptObserver {
  readonly #storage = new AsyncLocalStorage<CallScope>()
  readonly #attempts = new WeakMap<UndiciRequest, Attempt>()
  readonly #watches = new WeakMap<CallScope, Watch>()
  readonly #metrics: MetricsHandle
  readonly #tracing: Tracing | undefined

  constructor (metrics: MetricsHandle, tracing: Tracing | undefined) {
    this.#metrics = metrics
    this.#tracing = tracing
    diagnostics.subscribe('undici:request:create', this.#onCreate)
    diagnostics.subscribe('undici:client:beforeConnect', this.#onBeforeConnect)
    diagnostics.subscribe('undici:request:headers', this.#onHeaders)
    diagnostics.subscribe('undici:request:error', this.#onError)
  }

  run<T>(scope: CallScope, fn: () => T): T {
    if (scope.span !== undefined) {
      const watch: Watch = { seen: undefined, open: undefined }
      this.#watches.set(scope, watch)
      scope.span.onSpanSet = (span) => this.#onSpanSet(watch, span)
    }
    return this.#storage.run(scope, fn)
  }

  close (): void {
    diagnostics.unsubscribe('undici:request:create', this.#onCreate)
    diagnostics.unsubscribe('undici:client:beforeConnect', this.#onBeforeConnect)
    diagnostics.unsubscribe('undici:request:headers', this.#onHeaders)
    diagnostics.unsubscribe('undici:request:error', this.#onError)
  }

  #onSpanSet (watch: Watch, span: Span): void {
    const attempt = watch.open
    if (attempt !== undefined) {
      watch.open = undefined
      this.#adopt(attempt, span)
      return
    }
    watch.seen = span
    queueMicrotask(() => { if (watch.seen === span) watch.seen = undefined })
  }

  readonly #onCreate = (message: unknown): void => {
    const scope = this.#storage.getStore()
    if (scope === undefined) return
    const attempt: Attempt = { scope, number: ++scope.attempts, start: performance.now(), span: undefined, own: false }
    this.#attempts.set((message as { request: UndiciRequest }).request, attempt)
    const watch = this.#watches.get(scope)
    if (watch === undefined) return
    const seen = watch.seen
    watch.seen = undefined
    if (seen !== undefined) return this.#adopt(attempt, seen)
    watch.open = attempt
    queueMicrotask(() => this.#settle(watch))
  }

  readonly #onBeforeConnect = (): void => {
    const scope = this.#storage.getStore()
    const watch = scope === undefined ? undefined : this.#watches.get(scope)
    if (watch !== undefined) this.#settle(watch)
  }

  #adopt (attempt: Attempt, span: Span): void {
    attempt.span = span
    this.#tracing?.adoptAttempt(span, attempt.scope.op, attempt.number)
  }

  /** Closes the window of an open attempt: no span was set for it, so it gets the plugin's own. */
  #settle (watch: Watch): void {
    const attempt = watch.open
    if (attempt === undefined) return
    watch.open = undefined
    const { scope } = attempt
    attempt.span = this.#tracing?.startAttempt(scope.span!, scope.op, scope.server, attempt.number, attempt.start)
    attempt.own = true
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
    if (attempt !== undefined) {
      const watch = this.#watches.get(attempt.scope)
      if (watch !== undefined) this.#settle(watch)
    }
    return attempt
  }

  #record ({ scope, span, own }: Attempt, label: AttemptStatus, statusCode: number | undefined, errorType: string | undefined): void {
    this.#metrics.attempts.inc({ api: scope.op.api, status_code: label })
    if (own && span !== undefined) this.#tracing?.endAttempt(span, statusCode, errorType)
  }
}
