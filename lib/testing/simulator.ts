import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { Region } from 'customerio-node'
import { operations, type Operation, type OperationName } from '../client/operations.ts'
import type { Api } from '../labels.ts'
import { unrecognisedWebhookEvent } from './events.ts'
import { signWebhook } from './sign.ts'
import { EventHistory, type RecordedEvent } from './event-history.ts'

export type { EventType, RecordedEvent } from './event-history.ts'

/** What goes wrong for matching requests. Without `status`, `hang`, `reset` or `lose`, a fault only delays the normal answer. */
export interface Fault {
  /** Match by operation (its route; e.g. `identify`, `pipelines.batch`), API, or path prefix; no matcher matches every request. */
  operation?: OperationName
  api?: Api
  path?: string
  status?: number
  /** Sent as `Retry-After` (seconds or HTTP date). */
  retryAfter?: number | string
  /** Answer body: an object is sent as JSON, a string as-is (e.g. HTML from a proxy). */
  body?: unknown
  latencyMs?: number
  /** Never answer: the client times out. */
  hang?: boolean
  /** Destroy the connection without an answer. */
  reset?: boolean
  /**
   * Lose the answer: process the request as usual (auth, batch checks, events applied to the
   * history) and then, instead of answering, destroy the connection (`'reset'`) or never
   * answer (`'hang'`). The request is recorded with that status and `applied` true (when the
   * answer it lost was a success). Ignored when `hang`, `reset` or `status` is set.
   */
  lose?: 'reset' | 'hang'
  /** Only the next `times` matching requests. */
  times?: number
  /** Share of matching requests affected, 0–1 (seeded, repeatable). */
  ratio?: number
}

export interface RecordedRequest {
  readonly method: string
  readonly path: string
  /** The operation whose route matched (the first, where several share one); Pipelines ones are `pipelines.<method>`. */
  readonly operation: OperationName | undefined
  readonly api: Api | undefined
  /** `X-Retry-Count` of the SDK's retries; 0 for a first attempt. */
  readonly retryCount: number
  readonly body: unknown
  /** What the client got; `reset`/`hang` for a connection destroyed or never answered. */
  readonly status: number | 'reset' | 'hang'
  /**
   * Whether the simulator applied the request (its events reached the history): true for a
   * success (200, or 207 for the accepted operations) and for a success lost by `Fault.lose`;
   * false for error answers, fault statuses, the plain `hang`/`reset` faults and a Pipelines
   * request answered 200 but dropped whole (malformed or oversized, without strict mode).
   */
  readonly applied: boolean
}

export interface SimulatorOptions {
  siteId?: string
  trackApiKey?: string
  appApiKey?: string
  /** The Pipelines source write key (HTTP Basic user, empty password). */
  pipelinesWriteKey?: string
  port?: number
  /** Seed for `Fault.ratio`. */
  seed?: number
  /** Reason a Track v2 batch operation is rejected (answered in a 207), or undefined to accept it. */
  rejectBatchOperation?: (operation: unknown, index: number) => string | undefined
}

/** Where {@link CioSimulator.deliver} sends a delivery's events. */
export interface DeliverOptions {
  /** The app's webhook route. */
  readonly url: string
  readonly signingKey: string
  /** Default `email`. */
  readonly objectType?: string
  /** Unix seconds the steps' `after` counts from. Default now. */
  readonly start?: number
}

/** What the Pipelines API was sent, one entry per call or batch item it accepted. */
export interface PipelinesCall {
  /** The route of a single call, or a batch item's `type`. */
  readonly type: PipelinesType
  /** The payload as sent (a batch item includes its `type`). */
  readonly payload: Readonly<Record<string, unknown>>
}

export type PipelinesType = 'identify' | 'track' | 'page' | 'screen' | 'group' | 'alias'

interface Route { readonly op: Operation, readonly pattern: RegExp }

const BATCH_LIMIT = 500 * 1024
const BATCH_OPERATION_LIMIT = 32 * 1024
/** Pipelines: a single call and each batch item up to 32 KB, a batch up to 500 KB. */
const PIPELINES_CALL_LIMIT = 32 * 1024
const PIPELINES_TYPES: ReadonlySet<unknown> = new Set<PipelinesType>(['identify', 'track', 'page', 'screen', 'group', 'alias'])

const routes: readonly Route[] = operations.map((op) => ({
  op,
  pattern: new RegExp(`^${op.template.replace(/\{[^}]+\}/g, '[^/]+')}$`)
}))

const byName: ReadonlyMap<string, Operation> = new Map(operations.map((op) => [op.name, op]))

/** Methods that share a route (`track`, `trackPageView`) are told apart by nothing on the wire. */
function sameRoute (a: Operation | undefined, b: Operation): boolean {
  return a !== undefined && a.method === b.method && a.template === b.template
}

function route (method: string, path: string): Operation | undefined {
  return routes.find((r) => r.op.method === method && r.pattern.test(path))?.op
}

/** The `{customerId}` of `/api/v1/customers/{customerId}/...`, which the SDK URI-encodes. */
function customerId (path: string): string {
  const segment = path.split('/')[4]
  try { return decodeURIComponent(segment) } catch { return segment }
}

/** A small seeded PRNG (mulberry32), so fault ratios are repeatable. */
export function seeded (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function isBody (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The SDK's own notion of a missing parameter: anything but a non-blank string or a finite number. */
function present (value: unknown): boolean {
  return typeof value === 'string' ? value.trim() !== '' : typeof value === 'number' && Number.isFinite(value)
}

/** Why a Pipelines payload of `type` is malformed (the checks the SDK makes before sending), or undefined. */
function pipelinesProblem (type: unknown, payload: unknown): string | undefined {
  if (!PIPELINES_TYPES.has(type)) return `unknown type ${JSON.stringify(type)}`
  if (!isBody(payload)) return 'payload must be an object'
  if (type === 'alias') {
    if (!present(payload.userId)) return 'userId is required'
    return present(payload.previousId) ? undefined : 'previousId is required'
  }
  if (!present(payload.userId) && !present(payload.anonymousId)) return 'userId or anonymousId is required'
  if (type === 'track' && !present(payload.event)) return 'event is required'
  if (type === 'group' && !present(payload.groupId)) return 'groupId is required'
  return undefined
}

function same (a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/**
 * A Customer.io stand-in on loopback: the Track v1, Track v2, App and Pipelines API routes
 * that customerio-node calls, Basic/Bearer auth, Customer.io's success bodies and error shapes,
 * a 207 for partly rejected batches, Pipelines' permissive and strict modes, a record of every
 * request, and injectable faults.
 */
export class CioSimulator {
  readonly siteId: string
  readonly trackApiKey: string
  readonly appApiKey: string
  readonly pipelinesWriteKey: string
  /** Every request received, in order. */
  readonly requests: RecordedRequest[] = []
  /**
   * Every Pipelines call and batch item accepted, in arrival order, re-sends included (the
   * history's `messageId` de-duplication applies to `events` only).
   */
  readonly pipelinesCalls: PipelinesCall[] = []
  readonly #history = new EventHistory()
  readonly #waiters = new Set<() => void>()
  readonly #sockets = new Set<Socket>()
  #faults: Array<Fault & { remaining: number }> = []
  readonly #server: http.Server
  readonly #random: () => number
  readonly #rejectBatchOperation: SimulatorOptions['rejectBatchOperation']
  #url = ''

  constructor (options: SimulatorOptions = {}) {
    this.siteId = options.siteId ?? 'sim-site'
    this.trackApiKey = options.trackApiKey ?? 'sim-track-key'
    this.appApiKey = options.appApiKey ?? 'sim-app-key'
    this.pipelinesWriteKey = options.pipelinesWriteKey ?? 'sim-pipelines-key'
    this.#random = seeded(options.seed ?? 1)
    this.#rejectBatchOperation = options.rejectBatchOperation
    this.#server = http.createServer((req, res) => { this.#handle(req, res) })
    this.#server.on('connection', (socket) => {
      this.#sockets.add(socket)
      socket.on('close', () => {
        this.#sockets.delete(socket)
        this.#notify()
      })
    })
  }

  /** Base URL, e.g. `http://127.0.0.1:40123`. */
  get url (): string { return this.#url }

  /** A customerio-node `Region` pointing at this simulator (Track `/api/v1`, App `/v1`, Pipelines `/cdp/v1`). */
  get region (): Region {
    return new Region(`${this.#url}/api/v1`, `${this.#url}/v1`, `${this.#url}/cdp/v1`)
  }

  async listen (port = 0): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(port, '127.0.0.1', resolve))
    this.#url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`
    return this
  }

  /** Adds a fault; returns a function that removes it. */
  fault (fault: Fault): () => void {
    const entry = { ...fault, remaining: fault.times ?? Infinity }
    this.#faults.push(entry)
    return () => { this.#faults = this.#faults.filter((f) => f !== entry) }
  }

  clearFaults (): void { this.#faults = [] }

  /** Requests recorded for one SDK method's route. */
  requestsFor (operation: OperationName): RecordedRequest[] {
    return this.requests.filter((r) => r.operation === operation)
  }

  /**
   * Events Customer.io would hold, in arrival order, from Track v1 (`track`, `trackPageView`,
   * `trackAnonymous`), v2 (`batch`, `entity`: person `event`/`page`/`screen` operations) and
   * Pipelines (`track`, `page`, `screen`, alone or in a batch; `messageId` is their `id`).
   * An event whose `id` was already seen is not added (see `discardedEvents`); one without an
   * `id` always is. Only applied requests count (see `RecordedRequest.applied`).
   */
  get events (): readonly RecordedEvent[] { return this.#history.events }

  /** The recorded events of one person (`RecordedEvent.customerId`), in arrival order. */
  eventsFor (customerId: string): RecordedEvent[] {
    return this.#history.events.filter((e) => e.customerId === customerId)
  }

  /** Events of applied requests that were discarded because their `id` had been seen before, in arrival order. */
  get discardedEvents (): readonly RecordedEvent[] { return this.#history.discarded }

  /** POSTs `event` to a reporting-webhook endpoint the way Customer.io does: JSON, signed with `key`. */
  async sendWebhook (url: string, event: object, key: string, timestamp?: number): Promise<Response> {
    const body = JSON.stringify(event)
    return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...signWebhook(body, key, timestamp) }, body })
  }

  /**
   * Plays a delivery's life: one signed `objectType` event (default `email`) per step, with
   * `delivery_id` and the timestamp `start + after` seconds (default start: now), sent to the
   * webhook at `url` in the order given, one after the other. Answers the responses.
   */
  async deliver (deliveryId: string, steps: ReadonlyArray<{ metric: string, after: number }>, { url, signingKey, objectType = 'email', start = Math.floor(Date.now() / 1000) }: DeliverOptions): Promise<Response[]> {
    const responses: Response[] = []
    for (const { metric, after } of steps) {
      const event = { ...unrecognisedWebhookEvent(objectType, metric, { delivery_id: deliveryId }), timestamp: start + after }
      responses.push(await this.sendWebhook(url, event, signingKey))
    }
    return responses
  }

  /** Client connections open now (a client that gave up on a hanging request closes its one). */
  get openConnections (): number { return this.#sockets.size }

  /**
   * Resolves once `condition` holds, checking it now, after every request the simulator
   * records and whenever a connection closes: a test waits for what it expects to happen,
   * never for a fixed time.
   */
  async until (condition: (sim: this) => boolean): Promise<void> {
    if (condition(this)) return
    await new Promise<void>((resolve) => {
      const check = () => {
        if (!condition(this)) return
        this.#waiters.delete(check)
        resolve()
      }
      this.#waiters.add(check)
    })
  }

  #notify (): void {
    for (const check of [...this.#waiters]) check()
  }

  async close (): Promise<void> {
    this.#server.closeAllConnections()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }

  #matchFault (op: Operation | undefined, path: string): Fault | undefined {
    const fault = this.#faults.find((f) =>
      f.remaining > 0 &&
      (f.operation === undefined || (op !== undefined && sameRoute(byName.get(f.operation), op))) &&
      (f.api === undefined || op?.api === f.api) &&
      (f.path === undefined || path.startsWith(f.path)))
    if (fault === undefined || (fault.ratio !== undefined && this.#random() >= fault.ratio)) return undefined
    fault.remaining--
    return fault
  }

  #authorized (api: Api, header: string | undefined): boolean {
    const expected = api === 'track'
      ? `Basic ${Buffer.from(`${this.siteId}:${this.trackApiKey}`).toString('base64')}`
      : api === 'pipelines'
        ? `Basic ${Buffer.from(`${this.pipelinesWriteKey}:`).toString('base64')}`
        : `Bearer ${this.appApiKey}`
    return same(header ?? '', expected)
  }

  #handle (req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      // An http.Server request always has both.
      const url = new URL(req.url!, 'http://simulator')
      const method = req.method!
      const op = route(method, url.pathname)
      const raw = Buffer.concat(chunks)
      let body: unknown = raw.length === 0 ? undefined : raw.toString('utf8')
      if (String(req.headers['content-type']).startsWith('application/json') && raw.length > 0) {
        try { body = JSON.parse(raw.toString('utf8')) } catch { /* recorded as text */ }
      }
      const fault = this.#matchFault(op, url.pathname)
      const answer = (status: RecordedRequest['status'], applied = false) => {
        this.requests.push({
          method,
          path: url.pathname,
          operation: op?.name,
          api: op?.api,
          retryCount: Number(req.headers['x-retry-count'] ?? 0),
          body,
          status,
          applied
        })
        this.#notify()
      }
      const respond = () => {
        if (fault?.hang === true) return answer('hang')
        if (fault?.reset === true) { answer('reset'); req.socket.destroy(); return }
        if (fault?.status !== undefined) {
          answer(fault.status)
          return this.#send(res, fault.status, fault.body ?? this.#errorBody(url.pathname, fault.status), fault.retryAfter)
        }
        const [status, payload, applied = status < 300] = this.#answer(op, url.pathname, req.headers, raw.length, body)
        if (fault?.lose === 'hang') return answer('hang', applied)
        if (fault?.lose === 'reset') { answer('reset', applied); req.socket.destroy(); return }
        answer(status, applied)
        this.#send(res, status, payload)
      }
      if (fault?.latencyMs !== undefined) setTimeout(respond, fault.latencyMs)
      else respond()
    })
  }

  #errorBody (path: string, status: number): unknown {
    const message = `simulated ${status}`
    if (path.startsWith('/api/v2/')) return { errors: [{ reason: 'simulated', message }] }
    return path.startsWith('/cdp/') ? { meta: { errors: [message] } } : { meta: { error: message } }
  }

  /** Status, body and, where it differs from "status below 300", whether the request was applied. */
  #answer (op: Operation | undefined, path: string, headers: http.IncomingHttpHeaders, size: number, body: unknown): [number, unknown, boolean?] {
    if (op === undefined) return [404, { meta: { error: 'Not found' } }]
    // Track answers a bad credential in plain text (customerio-node issue #71), the App API in
    // JSON, Pipelines in Track v1's `meta.errors` shape.
    if (!this.#authorized(op.api, headers.authorization)) {
      if (op.api === 'pipelines') return [401, { meta: { errors: ['Unauthorized request'] } }]
      return [401, op.api === 'track' ? 'Unauthorized request' : { meta: { error: 'Unauthorized request' } }]
    }
    if (op.api === 'pipelines') return this.#pipelines(op.call, size, body, headers['x-strict-mode'] === '1')
    if (op.name === 'batch') return this.#batch(size, body)
    if (op.name === 'entity') this.#history.v2(body)
    // `track` and `trackPageView` share /api/v1/customers/{customerId}/events.
    if (op.name === 'track') this.#history.v1(body, customerId(path))
    if (op.name === 'trackAnonymous') this.#history.v1(body)
    if (op.name.startsWith('send')) return [200, { delivery_id: randomBytes(18).toString('base64url'), queued_at: Math.floor(Date.now() / 1000) }]
    if (op.name === 'getAccountRegion') return [200, { url: this.#url, region: 'us', environment_id: 1 }]
    return [200, {}]
  }

  #batch (size: number, body: unknown): [number, unknown] {
    if (size > BATCH_LIMIT) return [400, { errors: [{ reason: 'too_large', message: 'request body is larger than 500 KB' }] }]
    const batch = (body as { batch?: unknown } | undefined)?.batch
    if (!Array.isArray(batch)) return [400, { errors: [{ reason: 'required', field: 'batch', message: 'batch is required' }] }]
    const errors = batch.flatMap((operation, index) => {
      const reason = JSON.stringify(operation).length > BATCH_OPERATION_LIMIT
        ? 'too_large'
        : this.#rejectBatchOperation?.(operation, index)
      return reason === undefined ? [] : [{ batch_index: index, reason, field: 'batch', message: `operation ${index} rejected: ${reason}` }]
    })
    const rejected = new Set(errors.map((e) => e.batch_index))
    batch.forEach((operation, index) => { if (!rejected.has(index)) this.#history.v2(operation) })
    return errors.length === 0 ? [200, {}] : [207, { errors }]
  }

  /**
   * Pipelines answers 200 `{}` to anything authorised and silently drops what is malformed or
   * oversized, unless the client asked for strict mode, where that is a 400. In a batch, only
   * the bad items are dropped; strict mode rejects the whole batch.
   */
  #pipelines (call: string, size: number, body: unknown, strict: boolean): [number, unknown, boolean?] {
    const reject = (errors: string[]): [number, unknown, boolean] => strict ? [400, { meta: { errors } }, false] : [200, {}, false]
    const limit = call === 'batch' ? BATCH_LIMIT : PIPELINES_CALL_LIMIT
    if (size > limit) return reject([`request body is larger than ${limit / 1024} KB`])
    if (call !== 'batch') {
      const problem = pipelinesProblem(call, body)
      if (problem !== undefined) return reject([problem])
      this.#acceptPipelines(call, body)
      return [200, {}]
    }
    const batch = isBody(body) ? body.batch : undefined
    if (!Array.isArray(batch) || batch.length === 0) return reject(['batch must be a non-empty array'])
    const problems = batch.map((item: unknown) => Buffer.byteLength(JSON.stringify(item)) > PIPELINES_CALL_LIMIT
      ? `larger than ${PIPELINES_CALL_LIMIT / 1024} KB`
      : pipelinesProblem(isBody(item) ? item.type : undefined, item))
    const errors = problems.flatMap((problem, index) => problem === undefined ? [] : [`batch[${index}]: ${problem}`])
    if (strict && errors.length > 0) return reject(errors)
    batch.forEach((item: unknown, index) => { if (problems[index] === undefined) this.#acceptPipelines((item as { type: unknown }).type, item) })
    return [200, {}, errors.length < batch.length]
  }

  #acceptPipelines (type: unknown, payload: unknown): void {
    this.pipelinesCalls.push(Object.freeze({ type: type as PipelinesType, payload: payload as Record<string, unknown> }))
    this.#history.pipelines(type, payload)
  }

  #send (res: http.ServerResponse, status: number, body: unknown, retryAfter?: number | string): void {
    const text = typeof body === 'string' ? body : JSON.stringify(body)
    const headers: http.OutgoingHttpHeaders = { 'content-type': typeof body === 'string' ? 'text/html' : 'application/json' }
    if (retryAfter !== undefined) headers['retry-after'] = String(retryAfter)
    res.writeHead(status, headers).end(text)
  }
}

/** Starts a simulator on 127.0.0.1 (port 0 = any free port). */
export async function createCioSimulator (options: SimulatorOptions = {}): Promise<CioSimulator> {
  return new CioSimulator(options).listen(options.port)
}
