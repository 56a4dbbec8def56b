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

/** `promise`'s outcome, or `fallback` if it has not settled within `ms`. */
function within<T, F> (promise: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<F>((resolve) => { timer = setTimeout(resolve, Math.max(0, ms), fallback) })
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

/**
 * Runs `onEvent` for one event inside its span (here and in the inbox's worker); a failure
 * is counted and logged with the event's labels and id only, then rethrown.
 */
export function eventHandler (deps: Pick<DirectDeps, 'onEvent' | 'handlerFailed' | 'tracing' | 'log' | 'secrets'>): (read: ReadEvent, request: FastifyRequest | undefined) => Promise<void> {
  const { onEvent, handlerFailed, tracing, log, secrets } = deps
  return async ({ event, labels, eventId }, request) => {
    const span = tracing?.startWebhook(labels, eventId, event.object_type === '_other' ? undefined : event.data.delivery_id)
    try {
      if (onEvent !== undefined) await (span === undefined ? onEvent(event, request) : span.run(() => onEvent(event, request)))
    } catch (err) {
      span?.end(err)
      handlerFailed()
      log.error({ err, object_type: labels.objectType, metric: labels.metric, event_id: eventId === undefined ? undefined : sanitizeString(eventId, secrets) }, 'customer.io webhook handler failed')
      throw err
    }
    span?.end()
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
export function createDirectHandler (deps: DirectDeps): (read: ReadEvent, request: FastifyRequest, receivedAt: number) => Promise<DirectOutcome> {
  const { store, answerWithinMs, record, log } = deps
  /** Runs in this process, by event id: copies arriving here wait for them instead of polling. */
  const running = new Map<string, Promise<unknown>>()

  const handle = eventHandler(deps)

  async function execute (read: ReadEvent, request: FastifyRequest, receivedAt: number): Promise<void> {
    const { eventId } = read
    try {
      await handle(read, request)
    } catch (err) {
      if (eventId !== undefined) await store.release(eventId)
      throw err
    }
    if (eventId !== undefined) await store.confirm(eventId)
    record(read, receivedAt)
  }

  function run (read: ReadEvent, request: FastifyRequest, receivedAt: number, deadline: number): Promise<DirectOutcome> {
    const execution = execute(read, request, receivedAt)
    const { eventId } = read
    // Never rejects: both outcomes are mapped; a copy waiting on it then claims again.
    const settled = execution.then(() => 'handled' as const, () => 'failed' as const).then((outcome) => {
      if (eventId !== undefined) running.delete(eventId)
      return outcome
    })
    if (eventId !== undefined) running.set(eventId, settled)
    return within(settled, deadline - Date.now(), 'pending' as const)
  }

  /** The store's answer, or `late` past the deadline, or `unavailable` if it failed. */
  async function claim (eventId: string, deadline: number): Promise<ClaimResult | 'late' | 'unavailable'> {
    try {
      const answer = store.claim(eventId, LEASE_MS)
      // The memory store answers at once; only a store that waits on the network races the deadline.
      return typeof answer === 'string' ? answer : await within(answer, deadline - Date.now(), 'late' as const)
    } catch (err) {
      log.error({ err }, 'customer.io webhook dedupe store failed')
      return 'unavailable'
    }
  }

  return async (read, request, receivedAt) => {
    const deadline = receivedAt + answerWithinMs
    const { eventId } = read
    // Without a usable id copies cannot be told apart: each is handed on.
    if (eventId === undefined) return run(read, request, receivedAt, deadline)
    const attempt = async (poll: number): Promise<DirectOutcome> => {
      const found = await claim(eventId, deadline)
      if (found === 'unavailable') return 'unavailable'
      if (found === 'late') return 'pending'
      if (found === 'done') return 'duplicate'
      if (found === 'new') return run(read, request, receivedAt, deadline)
      const left = deadline - Date.now()
      if (left <= 0) return 'pending'
      await within(running.get(eventId) ?? delay(poll), left, undefined)
      return attempt(Math.min(poll * 2, MAX_POLL_MS))
    }
    return attempt(POLL_MS)
  }
}
