import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import { sanitizeString } from '../monitoring/sanitize.ts'
import { deadline, LATE, within } from '../timers.ts'
import type { Tracing } from '../monitoring/tracing.ts'
import type { ClaimResult, DedupeStore, StoreOperation } from './dedupe.ts'
import type { CioWebhookEvent, ReadEvent } from './events.ts'

/**
 * How the route answers a copy of an event it handles itself (not in inbox mode).
 * `unconfirmed`: onEvent succeeded but the store would not mark the id done in time.
 */
export type DirectOutcome = 'handled' | 'duplicate' | 'failed' | 'pending' | 'unavailable' | 'unconfirmed'

export interface DirectDeps {
  readonly store: DedupeStore
  readonly onEvent: ((event: CioWebhookEvent, request: FastifyRequest | undefined) => void | Promise<void>) | undefined
  readonly answerWithinMs: number
  readonly record: (read: ReadEvent, receivedAt: number) => void
  readonly handlerFailed: () => void
  readonly storeFailed: (operation: StoreOperation) => void
  readonly tracing: Tracing | undefined
  readonly log: FastifyBaseLogger
  readonly secrets: readonly string[]
  /** How long a claim lives. Default 60 s. */
  readonly leaseMs?: number
}

/**
 * A claim outlives any answer (`answerWithinMs` is under 4 s) and the run it covers, which may
 * go on after the answer; a claim whose holder died lapses after this, so a later copy runs.
 */
const LEASE_MS = 60_000
/** A copy held by another instance looks again after this, doubling up to the cap; a failed confirm is tried again likewise. */
const POLL_MS = 20
const MAX_POLL_MS = 250

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
      span?.end()
    } catch (err) {
      span?.end(err)
      handlerFailed()
      log.error({ err, object_type: labels.objectType, metric: labels.metric, event_id: eventId === undefined ? undefined : sanitizeString(eventId, secrets) }, 'customer.io webhook handler failed')
      throw err
    }
  }
}

class Unconfirmed extends Error {}

type Deadline = ReturnType<typeof deadline>

/**
 * Runs `onEvent` for each new event, at most once at a time per `event_id` across every
 * instance sharing the store, also after a failed run: a copy that finds the id claimed
 * waits for that run (this process's, or by polling the store for another instance's), then
 * claims again, so after a failure exactly one waiting copy runs it next. The route answers
 * within `answerWithinMs`: a run still going then answers `pending` (503) and goes on; a
 * later copy finds its outcome.
 *
 * A store that fails is never a reason for a second run while the claim is alive: a failed
 * confirm is tried again until the lease ends (the answer meanwhile is 503, so Customer.io
 * keeps the event), and nothing is released that would let a copy run at once.
 */
export function createDirectHandler (deps: DirectDeps): (read: ReadEvent, request: FastifyRequest, receivedAt: number) => Promise<DirectOutcome> {
  const { store, answerWithinMs, record, storeFailed, log, secrets, leaseMs = LEASE_MS } = deps
  /** Runs in this process, by event id: copies arriving here wait for them instead of polling. */
  const running = new Map<string, Promise<DirectOutcome>>()
  const handle = eventHandler(deps)

  const failed = (operation: StoreOperation, err: unknown, eventId: string): void => {
    storeFailed(operation)
    log.error({ err, operation, event_id: sanitizeString(eventId, secrets) }, 'customer.io webhook dedupe store failed')
  }

  /** Marks the id done, trying again until the lease ends; throws {@link Unconfirmed} if it never could. */
  async function confirm (eventId: string, leaseEnd: number): Promise<void> {
    let cause: unknown
    for (let wait = POLL_MS; Date.now() < leaseEnd; wait = Math.min(wait * 2, MAX_POLL_MS)) {
      try {
        const answer = store.confirm(eventId)
        // A store that answers at once (the memory store) needs no timer.
        if (!(answer instanceof Promise) || await within(answer, leaseEnd - Date.now()) !== LATE) return
        cause = new Error('the dedupe store did not answer')
      } catch (err) {
        cause = err
      }
      failed('confirm', cause, eventId)
      await sleep(Math.max(0, Math.min(wait, leaseEnd - Date.now())), undefined, { ref: false })
    }
    throw new Unconfirmed('the claim lapsed unconfirmed: a later copy may run onEvent again', { cause })
  }

  async function execute (read: ReadEvent, request: FastifyRequest, receivedAt: number, leaseEnd: number): Promise<DirectOutcome> {
    const { eventId } = read
    try {
      await handle(read, request)
    } catch {
      // A copy may run it next: the claim is handed back (if the store can take that now).
      if (eventId !== undefined) await Promise.resolve().then(() => store.release(eventId)).catch((err: unknown) => { failed('release', err, eventId) })
      return 'failed'
    }
    if (eventId !== undefined) {
      try {
        await confirm(eventId, leaseEnd)
      } catch (err) {
        log.error({ err, event_id: sanitizeString(eventId, secrets) }, 'customer.io webhook event handled but not confirmed')
        return 'unconfirmed'
      }
    }
    record(read, receivedAt)
    return 'handled'
  }

  async function run (read: ReadEvent, request: FastifyRequest, receivedAt: number, answer: Deadline): Promise<DirectOutcome> {
    const { eventId } = read
    const execution = execute(read, request, receivedAt, Date.now() + leaseMs)
    if (eventId !== undefined) running.set(eventId, execution.finally(() => running.delete(eventId)))
    const outcome = await answer.race(execution)
    return outcome === LATE ? 'pending' : outcome
  }

  /** The store's answer, `late` past the deadline, or `unavailable` if it failed. */
  async function claim (eventId: string, answer: Deadline): Promise<'new' | 'busy' | 'done' | 'late' | 'unavailable'> {
    let granted: ClaimResult | Promise<ClaimResult>
    try {
      granted = store.claim(eventId, leaseMs)
      // A store that answers at once (the memory store) needs no timer.
      if (!(granted instanceof Promise)) return granted
      const found = await answer.race(granted)
      if (found !== LATE) return found
      // A claim granted after the answer was given is handed back, so the next copy runs
      // instead of waiting out its lease.
      granted.then((late) => late === 'new' ? store.release(eventId) : undefined).catch((err: unknown) => { failed('release', err, eventId) })
      return 'late'
    } catch (err) {
      failed('claim', err, eventId)
      return 'unavailable'
    }
  }

  return async (read, request, receivedAt) => {
    const answer = deadline(receivedAt + answerWithinMs - Date.now())
    try {
      return await decide(read, request, receivedAt, answer)
    } finally {
      answer.clear()
    }
  }

  async function decide (read: ReadEvent, request: FastifyRequest, receivedAt: number, answer: Deadline): Promise<DirectOutcome> {
    const { eventId } = read
    // Without a usable id copies cannot be told apart: each is handed on.
    if (eventId === undefined) return await run(read, request, receivedAt, answer)
    let found = await claim(eventId, answer)
    for (let poll = POLL_MS; found === 'busy'; poll = Math.min(poll * 2, MAX_POLL_MS)) {
      // Wait for the run holding it, here or elsewhere, then claim again.
      if (await answer.race(running.get(eventId) ?? sleep(poll, undefined, { ref: false })) === LATE) return 'pending'
      found = await claim(eventId, answer)
    }
    if (found === 'new') return await run(read, request, receivedAt, answer)
    return found === 'done' ? 'duplicate' : found === 'late' ? 'pending' : 'unavailable'
  }
}
