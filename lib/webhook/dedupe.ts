/** What {@link DedupeStore.claim} found. */
export const CLAIM_RESULTS = ['new', 'busy', 'done'] as const
export type ClaimResult = (typeof CLAIM_RESULTS)[number]

/** The store's methods, as the `call` label of `cio_webhook_store_errors_total`. */
export const STORE_OPERATIONS = ['claim', 'confirm', 'release'] as const
export type StoreOperation = (typeof STORE_OPERATIONS)[number]

/**
 * Where the webhook route keeps the `event_id`s it has handled, so that Customer.io's
 * retries (which may reach any instance) run `onEvent` once. A claim, not a has/add pair:
 * two instances asking "seen?" at once would both hear "no".
 *
 * The contract every store keeps (the shipped stores and the tests in
 * `test/dedupe-contract.ts` hold to it):
 * - `claim(id, leaseMs)` is atomic across every instance sharing the store and answers:
 *   - `'new'`: nobody held the id; the caller now holds it for `leaseMs` and must end the
 *     claim with `confirm` or `release`. A claim not ended within `leaseMs` lapses (its
 *     holder crashed), and the next `claim` answers `'new'` again.
 *   - `'busy'`: another claim on the id is live; the caller neither runs nor records it.
 *   - `'done'`: the id was confirmed; the event is a duplicate.
 * - `confirm(id)` marks the id done, for as long as the store keeps ids (the Redis store:
 *   at least 7 days, Customer.io's retry window; the memory store: the ids of its newest `size` claims).
 * - `release(id)` ends a claim without confirming it (the handler failed), so a later copy
 *   of the event is `'new'`. It never forgets a confirmed id.
 * - Each method may return its answer or a promise of it; a rejection is a store failure,
 *   which the route answers 503 so Customer.io keeps the event.
 */
export interface DedupeStore {
  claim: (id: string, leaseMs: number) => ClaimResult | Promise<ClaimResult>
  confirm: (id: string) => void | Promise<void>
  release: (id: string) => void | Promise<void>
}
