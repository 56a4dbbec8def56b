import type * as OtelApi from '@opentelemetry/api'
import type { Attributes, Context, Span } from '@opentelemetry/api'
import { sanitizeString } from './sanitize.ts'

/** What a span says of a Customer.io call: its API, operation label, HTTP method and route template. */
export interface TracedOperation {
  readonly api: string
  readonly label: string
  readonly method: string
  readonly template: string
}

/** What a span says of a webhook event: its label values. */
export interface TracedEvent {
  readonly objectType: string
  readonly metric: string
}

type Otel = typeof OtelApi

/** Attributes of an HTTP client span that carry the request's URL. */
const URL_ATTRIBUTES = ['url.full', 'url.path', 'url.query'] as const

/** Where an API's requests go: `server.address` / `server.port` on spans. */
export interface Server {
  readonly address: string
  readonly port: number
}

export function serverOf (url: string): Server {
  const { hostname, port, protocol } = new URL(url)
  return { address: hostname, port: port === '' ? (protocol === 'https:' ? 443 : 80) : Number(port) }
}

/** A recording span for one `fastify.cio` call, and the context that makes it the parent. */
export interface CallSpan {
  readonly span: Span
  readonly context: Context
  /** Runs `fn` with this span active, so the HTTP attempts inside are its children. */
  run: <T>(fn: () => T) => T
  /**
   * Called with each recording span that code inside `run` makes current on the call's context,
   * or on a context derived from it (`trace.setSpan(context.active(), span)`). That is how the
   * request spans of `@opentelemetry/instrumentation-undici` are seen: see attempts.ts.
   */
  onSpanSet: ((span: Span) => void) | undefined
}

/**
 * The context of one call: it reads as the context it wraps, and tells its call about every
 * recording span set on it or on the contexts derived from it.
 */
class CallContext implements Context {
  readonly #inner: Context
  readonly #call: Pick<CallSpan, 'onSpanSet'>
  readonly #spanKey: symbol

  constructor (inner: Context, call: Pick<CallSpan, 'onSpanSet'>, spanKey: symbol) {
    this.#inner = inner
    this.#call = call
    this.#spanKey = spanKey
  }

  getValue (key: symbol): unknown {
    return this.#inner.getValue(key)
  }

  setValue (key: symbol, value: unknown): Context {
    const next = new CallContext(this.#inner.setValue(key, value), this.#call, this.#spanKey)
    if (key === this.#spanKey && (value as Span).isRecording()) this.#call.onSpanSet?.(value as Span)
    return next
  }

  deleteValue (key: symbol): Context {
    return new CallContext(this.#inner.deleteValue(key), this.#call, this.#spanKey)
  }
}

class RecordingCall implements CallSpan {
  readonly span: Span
  readonly context: Context
  onSpanSet: ((span: Span) => void) | undefined
  readonly #api: Otel

  constructor (api: Otel, span: Span, spanKey: symbol) {
    this.#api = api
    this.span = span
    this.context = new CallContext(api.trace.setSpan(api.context.active(), span), this, spanKey)
  }

  run<T>(fn: () => T): T {
    return this.#api.context.with(this.context, fn)
  }
}

/** The key under which the API keeps the current span, read back from `trace.setSpan` itself. */
function spanKeyOf (api: Otel): symbol {
  let spanKey: symbol | undefined
  const probe = { setValue: (key: symbol) => { spanKey = key } }
  api.trace.setSpan(probe as unknown as Context, api.trace.wrapSpanContext(api.INVALID_SPAN_CONTEXT))
  return spanKey as symbol
}

/** The span of one webhook event: `onEvent` runs inside it; it ends once, failed or not. */
export interface WebhookSpan {
  run: <T>(fn: () => T) => T
  end: (error?: unknown) => void
}

export interface CallOutcome {
  errorType?: string
  statusCode?: number
  deliveryId?: string
  error?: unknown
}

/**
 * Spans through `@opentelemetry/api`, an optional peer dependency. Without it, or without
 * an SDK, every `start*` returns undefined and callers skip all tracing work.
 */
export class Tracing {
  readonly #api: Otel
  readonly #tracer: OtelApi.Tracer
  readonly #secrets: readonly string[]
  readonly #spanKey: symbol
  readonly #noopProvider: OtelApi.TracerProvider

  constructor (api: Otel, version: string, secrets: readonly string[]) {
    this.#api = api
    this.#tracer = api.trace.getTracer('fastify-customerio-observability', version)
    this.#secrets = secrets
    this.#spanKey = spanKeyOf(api)
    this.#noopProvider = new api.ProxyTracerProvider().getDelegate()
  }

  /**
   * Whether a real tracer provider (an SDK) is registered now. The API's global provider is a
   * proxy that delegates to the no-op provider until one is. For the startup log only: spans
   * check `isRecording()` per call, so a provider registered later still gets them.
   */
  providerRegistered (): boolean {
    const provider = this.#api.trace.getTracerProvider() as Partial<OtelApi.ProxyTracerProvider>
    // Not a proxy (never with API 1.x): whatever it is, it was registered.
    if (typeof provider.getDelegate !== 'function') return true
    return provider.getDelegate() !== this.#noopProvider
  }

  /** The CLIENT span of one SDK call, child of the active context (e.g. @fastify/otel's request span). */
  startCall (op: TracedOperation, server: Server): CallSpan | undefined {
    const span = this.#tracer.startSpan(`customerio.${op.api}.${op.label}`, {
      kind: this.#api.SpanKind.CLIENT,
      attributes: {
        'customerio.api': op.api,
        'customerio.operation': op.label,
        'http.request.method': op.method,
        'server.address': server.address,
        'server.port': server.port,
        'url.template': op.template
      }
    })
    // Without an SDK spans do not record: callers then skip all tracing work.
    return span.isRecording() ? new RecordingCall(this.#api, span, this.#spanKey) : undefined
  }

  /**
   * The plugin's own span for one HTTP attempt, child of the call span, so the SDK's retries
   * are visible. `startTime` is when the request was created (a `performance.now()` value).
   */
  startAttempt (call: CallSpan, op: TracedOperation, server: Server, attempt: number, startTime?: number): Span {
    const attributes: Attributes = {
      'http.request.method': op.method,
      'server.address': server.address,
      'server.port': server.port,
      'url.template': op.template
    }
    if (attempt > 1) attributes['http.request.resend_count'] = attempt - 1
    return this.#tracer.startSpan(`${op.method} ${op.template}`, { kind: this.#api.SpanKind.CLIENT, attributes, startTime }, call.context)
  }

  /**
   * Makes another instrumentation's span for one HTTP attempt (the undici instrumentation's)
   * the attempt span: it only gains `http.request.resend_count`; its owner ends it.
   */
  adoptAttempt (span: Span, op: TracedOperation, attempt: number): void {
    if (attempt > 1) span.setAttribute('http.request.resend_count', attempt - 1)
    span.setAttribute('url.template', op.template)
    // Its URL holds the customer id, often an email address: masked like everything the plugin records.
    const { attributes } = span as Span & { attributes?: Attributes }
    for (const key of URL_ATTRIBUTES) {
      const value = attributes?.[key]
      if (typeof value === 'string') span.setAttribute(key, sanitizeString(value, this.#secrets))
    }
  }

  endAttempt (span: Span, statusCode: number | undefined, errorType: string | undefined): void {
    if (statusCode !== undefined) span.setAttribute('http.response.status_code', statusCode)
    if (errorType !== undefined) {
      span.setAttribute('error.type', errorType)
      span.setStatus({ code: this.#api.SpanStatusCode.ERROR })
    }
    span.end()
  }

  endCall ({ span }: CallSpan, outcome: CallOutcome): void {
    if (outcome.statusCode !== undefined) span.setAttribute('http.response.status_code', outcome.statusCode)
    if (outcome.deliveryId !== undefined) span.setAttribute('customerio.delivery_id', outcome.deliveryId)
    if (outcome.errorType !== undefined) this.#fail(span, outcome.errorType, outcome.error)
    span.end()
  }

  /** Marks a span failed: `error.type`, status ERROR, and the exception with a sanitised message. */
  #fail (span: Span, errorType: string, error: unknown): void {
    span.setAttribute('error.type', errorType)
    // The SDK rejects with Error objects only; a foreign dispatcher or handler might not.
    const err = error instanceof Error ? error : new Error(String(error))
    const message = sanitizeString(err.message, this.#secrets)
    span.recordException({ name: err.name, message })
    span.setStatus({ code: this.#api.SpanStatusCode.ERROR, message })
  }

  /**
   * The span of one verified webhook event, under the active request span. Only ids and the
   * bounded labels go on it, never recipients, addresses or content.
   */
  startWebhook (labels: TracedEvent, eventId: string | undefined, deliveryId: unknown): WebhookSpan | undefined {
    const span = this.#tracer.startSpan(`customerio.webhook ${labels.objectType}.${labels.metric}`, {
      kind: this.#api.SpanKind.CONSUMER,
      attributes: { 'customerio.webhook.object_type': labels.objectType, 'customerio.webhook.metric': labels.metric }
    })
    if (!span.isRecording()) return undefined
    const context = this.#api.trace.setSpan(this.#api.context.active(), span)
    // The ids come from the request body: sanitised, and only when something records them.
    if (eventId !== undefined) span.setAttribute('customerio.webhook.event_id', sanitizeString(eventId, this.#secrets))
    if (typeof deliveryId === 'string') span.setAttribute('customerio.delivery_id', sanitizeString(deliveryId, this.#secrets))
    return {
      run: (fn) => this.#api.context.with(context, fn),
      end: (error?: unknown) => {
        if (error !== undefined) this.#fail(span, 'handler_error', error)
        span.end()
      }
    }
  }

  /** Exemplar labels linking a latency observation to its trace. */
  exemplar ({ span }: CallSpan): Record<string, string> {
    const { traceId, spanId } = span.spanContext()
    return { trace_id: traceId, span_id: spanId }
  }
}

/** What the start-up line says: spans are recorded only when a tracer provider is registered. */
export function tracingOn (tracing: Tracing | undefined): boolean {
  return tracing?.providerRegistered() ?? false
}

/** Loads `@opentelemetry/api` when installed; tracing is off (undefined) otherwise. */
export async function loadTracing (
  version: string,
  secrets: readonly string[],
  load: () => Promise<Otel> = () => import('@opentelemetry/api')
): Promise<Tracing | undefined> {
  try {
    return new Tracing(await load(), version, secrets)
  } catch {
    return undefined
  }
}
