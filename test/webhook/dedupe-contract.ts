import type { Test } from 'tap'
import type { ClaimResult, DedupeStore } from '../../lib/webhook/dedupe.ts'

/** How the contract reaches one kind of store. */
export interface DedupeSubject {
  /** Two handles on one fresh, empty store, as two app instances sharing it see it. */
  open: (t: Test) => Promise<[DedupeStore, DedupeStore]>
  /** The lease the lapse checks take; the others take one no test outlives. */
  shortLeaseMs: number
  /**
   * Runs `claim` once a claim of `shortLeaseMs` taken just before has had time to lapse, and
   * answers what it answered: the memory store moves its clock, the Redis store polls `claim`.
   */
  afterLapse: (claim: () => Promise<ClaimResult>) => Promise<ClaimResult>
}

const LONG_LEASE_MS = 600_000

/** Checks the {@link DedupeStore} contract (lib/webhook/dedupe.ts) against one kind of store. */
export function dedupeContract (t: Test, name: string, subject: DedupeSubject): void {
  const { open, shortLeaseMs, afterLapse } = subject
  const claim = (store: DedupeStore, id: string, leaseMs = LONG_LEASE_MS) => Promise.resolve(store.claim(id, leaseMs))

  t.test(`${name}: the first claim is new; while it is live every other claim is busy`, async (t) => {
    const [a, b] = await open(t)
    t.equal(await claim(a, 'e1'), 'new')
    t.equal(await claim(a, 'e1'), 'busy')
    t.equal(await claim(b, 'e1'), 'busy')
    t.equal(await claim(b, 'e2'), 'new', 'ids are independent')
  })

  t.test(`${name}: concurrent claims of one id from two instances: exactly one is new`, async (t) => {
    const [a, b] = await open(t)
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => claim(i % 2 === 0 ? a : b, 'race')))
    t.equal(answers.filter((answer) => answer === 'new').length, 1)
    t.equal(answers.filter((answer) => answer === 'busy').length, 49)
  })

  t.test(`${name}: confirm, then every claim is done`, async (t) => {
    const [a, b] = await open(t)
    t.equal(await claim(a, 'e1'), 'new')
    await a.confirm('e1')
    t.equal(await claim(a, 'e1'), 'done')
    t.equal(await claim(b, 'e1'), 'done')
    await b.confirm('e2')
    t.equal(await claim(a, 'e2'), 'done', 'confirm without a claim marks the id done too')
  })

  t.test(`${name}: release, then the next claim is new`, async (t) => {
    const [a, b] = await open(t)
    t.equal(await claim(a, 'e1'), 'new')
    await a.release('e1')
    t.equal(await claim(b, 'e1'), 'new')
    await a.release('never-claimed')
    t.equal(await claim(a, 'never-claimed'), 'new', 'releasing an unknown id changes nothing')
  })

  t.test(`${name}: release after confirm keeps the id done`, async (t) => {
    const [a, b] = await open(t)
    t.equal(await claim(a, 'e1'), 'new')
    await a.confirm('e1')
    await a.release('e1')
    await b.release('e1')
    t.equal(await claim(a, 'e1'), 'done')
  })

  t.test(`${name}: a claim nobody ends lapses after its lease; the next one is new and live`, async (t) => {
    const [a, b] = await open(t)
    t.equal(await claim(a, 'crashed', shortLeaseMs), 'new')
    t.equal(await afterLapse(() => claim(b, 'crashed')), 'new')
    t.equal(await claim(a, 'crashed'), 'busy', 'the new claim holds the id')
  })

  t.test(`${name}: a confirmed id never lapses`, async (t) => {
    const [a] = await open(t)
    t.equal(await claim(a, 'e1', shortLeaseMs), 'new')
    await a.confirm('e1')
    t.equal(await afterLapse(() => claim(a, 'e1')), 'done')
  })
}
