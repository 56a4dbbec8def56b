import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import { sanitizeString } from '../redact.ts'
import type { Tracing } from '../tracing.ts'
import type { ClaimResult, DedupeStore } from './dedupe.ts'
import type { CioWebhookEvent, ReadEvent } from './events.ts'

/** How the route answers a copy of an event it handles itself (not in inbox mode). */
export type DirectOutcome = 'handled' | 'duplicate' | 'failed' | 'pending' | 'unavailable'

export interface DirectDeps {
  readonly store: DedupeStore
  readonly onEvent: ((event: CioWebhookEvent, request: FastifyRequest | undefined) => void | Promise<void>) | undefined
  readonly answerWithinMs: number
  readonly record: (read: ReadEvent, receivedAt: number) => void
  readonly handlerFailed: () => void
  readonly tracing: Tracing | undefined
  readonly log: FastifyBaseLogger
  readonly secrets: readonly string[]
}

/**
 * A claim outlives any answer (`answerWithinMs` is under 4 s) and the run it covers, which may
 * go on after the answer; a claim whose holder died lapses after this, so a later copy runs.
 */
const LEASE_MS = 60_000
/** A copy held by another instance looks again after this, doubling up to the cap. */
const POLL_MS = 20
const MAX_POLL_MS = 250

const delay = (ms: number) => new Promise<void>((resolve) => { setTimeout(resolve, ms) })

/**
 * `promise`'s outcome, or `fallback` if it has not settled within `ms`: one promise and one
 * timer (a `Promise.race` with `finally` made four promises per request on the route's path).
 */
function within<T, F> (promise: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, Math.max(0, ms), fallback)
    promise.then((value) => { clearTimeout(timer); resolve(value) }, (err: unknown) => { clearTimeout(timer); reject(err) })
  })
}

/** A step's outcome: `undefined` when it finished at once, else a promise (a throw becomes a rejection). */
function outcomeOf (step: () => unknown): Promise<unknown> | undefined {
  try {
    // Inside the try: a custom store's answer whose `then` getter throws is a failure too.
    const result = step()
    return typeof (result as PromiseLike<unknown> | undefined)?.then === 'function' ? Promise.resolve(result) : undefined
  } catch (err) {
    return Promise.reject(err)
  }
}

/**
 * Runs `onEvent` for one event inside its span (here and in the inbox's worker); a failure
 * is counted and logged with the event's labels and id only, then rethrown. Returns a promise
 * only if `onEvent` did, so an event nobody waits on is handled without one.
 */
export function eventHandler (deps: Pick<DirectDeps, 'onEvent' | 'handlerFailed' | 'tracing' | 'log' | 'secrets'>): (read: ReadEvent, request: FastifyRequest | undefined) => Promise<void> | undefined {
  const { onEvent, handlerFailed, tracing, log, secrets } = deps
  return ({ event, labels, eventId }, request) => {
    const span = tracing?.startWebhook(labels, eventId, event.object_type === '_other' ? undefined : event.data.delivery_id)
    const failed = (err: unknown): never => {
      span?.end(err)
      handlerFailed()
      log.error({ err, object_type: labels.objectType, metric: labels.metric, event_id: eventId === undefined ? undefined : sanitizeString(eventId, secrets) }, 'customer.io webhook handler failed')
      throw err
    }
    const running = onEvent === undefined ? undefined : outcomeOf(span === undefined ? () => onEvent(event, request) : () => span.run(() => onEvent(event, request)))
    if (running !== undefined) return running.then(() => { span?.end() }, failed)
    span?.end()
    return undefined
  }
}

/**
 * Runs `onEvent` for each new event, at most once at a time per `event_id` across every
 * instance sharing the store, also after a failed run: a copy that finds the id claimed
 * waits for that run (this process's, or by polling the store for another instance's), then
 * claims again, so after a failure exactly one waiting copy runs it next. The route answers
 * within `answerWithinMs`: a run still going then answers `pending` (503) and goes on; a
 * later copy finds its outcome.
 */
export function createDirectHandler (deps: DirectDeps): (read: ReadEvent, request: FastifyRequest, receivedAt: number) => DirectOutcome | Promise<DirectOutcome> {
  const { store, answerWithinMs, record, log } = deps
  /** Runs in this process, by event id: copies arriving here wait for them instead of polling. */
  const running = new Map<string, Promise<unknown>>()

  const handle = eventHandler(deps)

  /**
   * Runs the event, confirms its id, counts it: `undefined` when all of it finished at once
   * (no `onEvent`, or a synchronous one, and a store that answers at once), else a promise.
   * Promise chains rather than async functions, and none at all when nothing waits: this is
   * the route's hot path.
   */
  function execute (read: ReadEvent, request: FastifyRequest, receivedAt: number): Promise<void> | undefined {
    const { eventId } = read
    const count = (): undefined => { record(read, receivedAt) }
    const handled = outcomeOf(() => handle(read, request))
    if (eventId === undefined) return handled === undefined ? count() : handled.then(count)
    const confirmed = handled === undefined
      ? outcomeOf(() => store.confirm(eventId))
      : handled.then(() => store.confirm(eventId), async (err: unknown) => {
        await store.release(eventId)
        throw err
      })
    return confirmed === undefined ? count() : confirmed.then(count)
  }

  function run (read: ReadEvent, request: FastifyRequest, receivedAt: number, deadline: number): DirectOutcome | Promise<DirectOutcome> {
    const execution = execute(read, request, receivedAt)
    // Finished at once: no copy can have seen it running, and there is no deadline to race.
    if (execution === undefined) return 'handled'
    const { eventId } = read
    const settle = (outcome: DirectOutcome) => {
      if (eventId !== undefined) running.delete(eventId)
      return outcome
    }
    // Never rejects: both outcomes are mapped; a copy waiting on it then claims again.
    const settled = execution.then(() => settle('handled'), () => settle('failed'))
    if (eventId !== undefined) running.set(eventId, settled)
    return within(settled, deadline - Date.now(), 'pending' as const)
  }

  const unavailable = (err: unknown) => {
    log.error({ err }, 'customer.io webhook dedupe store failed')
    return 'unavailable' as const
  }

  /** The store's answer, or `late` past the deadline, or `unavailable` if it failed. */
  function claim (eventId: string, deadline: number): ClaimResult | 'unavailable' | Promise<ClaimResult | 'late' | 'unavailable'> {
    let answer: ClaimResult | Promise<ClaimResult>
    try {
      answer = store.claim(eventId, LEASE_MS)
    } catch (err) {
      return unavailable(err)
    }
    // The memory store answers at once; only a store that waits on the network races the deadline.
    if (typeof answer === 'string') return answer
    // As a native promise: a custom store's thenable may have no `catch`.
    const granted = Promise.resolve(answer)
    return within(granted, deadline - Date.now(), 'late' as const).then((found) => {
      // A claim granted after the answer was given is handed back, so the next copy runs
      // instead of waiting out its lease.
      if (found === 'late') granted.then((late) => late === 'new' ? store.release(eventId) : undefined).catch(unavailable)
      return found
    }, unavailable)
  }

  return (read, request, receivedAt) => {
    const deadline = receivedAt + answerWithinMs
    const { eventId } = read
    // Without a usable id copies cannot be told apart: each is handed on.
    if (eventId === undefined) return run(read, request, receivedAt, deadline)
    const decide = (found: ClaimResult | 'late' | 'unavailable', poll: number): DirectOutcome | Promise<DirectOutcome> => {
      if (found === 'unavailable') return 'unavailable'
      if (found === 'late') return 'pending'
      if (found === 'done') return 'duplicate'
      if (found === 'new') return run(read, request, receivedAt, deadline)
      const left = deadline - Date.now()
      if (left <= 0) return 'pending'
      return within(running.get(eventId) ?? delay(poll), left, undefined).then(() => attempt(Math.min(poll * 2, MAX_POLL_MS)))
    }
    const attempt = (poll: number): DirectOutcome | Promise<DirectOutcome> => {
      const found = claim(eventId, deadline)
      return typeof found === 'string' ? decide(found, poll) : found.then((answer) => decide(answer, poll))
    }
    return attempt(POLL_MS)
  }
}
