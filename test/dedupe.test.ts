import t from 'tap'
import { MemoryDedupeStore } from '../lib/webhook/memory-dedupe.ts'
import { dedupeContract } from './dedupe-contract.ts'

// Memory store: one clock for every store the contract opens; a lapse moves it past the lease.
let now = 0
dedupeContract(t, 'memory', {
  open: async () => {
    const store = new MemoryDedupeStore({ size: 1_000, now: () => now })
    return [store, store]
  },
  shortLeaseMs: 100,
  afterLapse: (claim) => {
    now += 100
    return claim()
  }
})

t.test('memory: a claim is live until exactly its lease has passed', async (t) => {
  let clock = 1_000
  const store = new MemoryDedupeStore({ now: () => clock })
  t.equal(store.claim('e1', 100), 'new')
  clock += 99
  t.equal(store.claim('e1', 100), 'busy')
  clock += 1
  t.equal(store.claim('e1', 100), 'new')
})

t.test('memory: keeps the newest `size` ids; the oldest written is forgotten first', async (t) => {
  const store = new MemoryDedupeStore({ size: 3 })
  for (const id of ['a', 'b', 'c']) store.confirm(id)
  store.confirm('a')
  store.confirm('d')
  t.equal(store.claim('b', 1_000), 'new', 'b, the oldest once a was written again, was forgotten')
  t.equal(store.claim('a', 1_000), 'done')
  t.equal(store.claim('d', 1_000), 'done')
  t.equal(store.claim('c', 1_000), 'new', 'claiming b pushed out c, by then the oldest')
})

t.test('memory: live claims count towards the bound too', async (t) => {
  const store = new MemoryDedupeStore({ size: 2 })
  t.equal(store.claim('a', 60_000), 'new')
  t.equal(store.claim('b', 60_000), 'new')
  t.equal(store.claim('c', 60_000), 'new')
  t.equal(store.claim('a', 60_000), 'new', 'the oldest claim was forgotten')
})

t.test('memory: size must be a positive integer', async (t) => {
  for (const size of [0, -1, 1.5, Number.NaN]) t.throws(() => new MemoryDedupeStore({ size }), RangeError, String(size))
  t.equal(new MemoryDedupeStore().claim('e1', 1_000), 'new', 'the defaults work')
})
