import type * as OtelApi from '@opentelemetry/api'
import type { Attributes, Context, Span } from '@opentelemetry/api'
import type { Operation } from './operations.ts'
import type { EventLabels } from './webhook/events.ts'
import { sanitizeString } from './redact.ts'

type Otel = typeof OtelApi

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
  readonly #noopProvider: OtelApi.TracerProvider

  constructor (api: Otel, version: string, secrets: readonly string[]) {
    this.#api = api
    this.#tracer = api.trace.getTracer('fastify-customerio-observability', version)
    this.#secrets = secrets
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
  startCall (op: Operation, server: Server): CallSpan | undefined {
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
    return this.#recording(span)
  }

  /** Without an SDK spans do not record: callers then skip all tracing work. */
  #recording (span: Span): CallSpan | undefined {
    if (!span.isRecording()) return undefined
    const context = this.#api.trace.setSpan(this.#api.context.active(), span)
    return { span, context, run: (fn) => this.#api.context.with(context, fn) }
  }

  /** One child span per HTTP attempt, so the SDK's retries are visible. */
  startAttempt (call: CallSpan, op: Operation, server: Server, attempt: number): Span {
    const attributes: Attributes = {
      'http.request.method': op.method,
      'server.address': server.address,
      'server.port': server.port,
      'url.template': op.template
    }
    if (attempt > 1) attributes['http.request.resend_count'] = attempt - 1
    return this.#tracer.startSpan(`${op.method} ${op.template}`, { kind: this.#api.SpanKind.CLIENT, attributes }, call.context)
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
  startWebhook (labels: EventLabels, eventId: string, deliveryId: unknown): WebhookSpan | undefined {
    const span = this.#tracer.startSpan(`customerio.webhook ${labels.objectType}.${labels.metric}`, {
      kind: this.#api.SpanKind.CONSUMER,
      attributes: { 'customerio.webhook.object_type': labels.objectType, 'customerio.webhook.metric': labels.metric }
    })
    const call = this.#recording(span)
    if (call === undefined) return undefined
    // The ids come from the request body: sanitised, and only when something records them.
    span.setAttribute('customerio.webhook.event_id', sanitizeString(eventId, this.#secrets))
    if (typeof deliveryId === 'string') span.setAttribute('customerio.delivery_id', sanitizeString(deliveryId, this.#secrets))
    return {
      run: call.run,
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
