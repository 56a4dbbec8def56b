import t from 'tap'
import { setTimeout as delay } from 'node:timers/promises'
import { Redis, type RedisOptions } from 'ioredis'
import type { ClaimResult } from '../../lib/webhook/dedupe.ts'
import { MemoryDedupeStore } from '../../lib/webhook/memory-dedupe.ts'
import { RedisDedupeStore } from '../../lib/webhook/redis-dedupe.ts'
import { dedupeContract } from './dedupe-contract.ts'
import { startRedis } from '../fixtures/redis.ts'
// A timeout for each test (30 s): this file does not use ../helpers.ts, which brings it.
import '../fixtures/timeouts.ts'

const SEVEN_DAYS_MS = 7 * 24 * 60 * 60 * 1000

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

t.test('memory: keeps the `size` ids claimed or confirmed most recently; the least recent is forgotten first', async (t) => {
  const store = new MemoryDedupeStore({ size: 3 })
  for (const id of ['a', 'b', 'c']) store.confirm(id)
  store.confirm('a')
  store.confirm('d')
  t.equal(store.claim('b', 1_000), 'new', 'b, the least recent, was forgotten')
  t.equal(store.claim('a', 1_000), 'done', 'confirming a again made it recent')
  t.equal(store.claim('c', 1_000), 'new', 'claiming b pushed out c')
  store.release('c')
  t.equal(store.claim('d', 1_000), 'done', 'a released claim takes no place')
})

t.test('memory: answers as a model of its contract does, over random claims, confirms, releases and lapses', async (t) => {
  /** The contract, plainly: at most `size` ids in order of last claim or confirm, each with its lease end. */
  class Model {
    entries: Array<{ id: string, until: number }> = []
    readonly size: number
    readonly now: () => number
    constructor (size: number, now: () => number) {
      this.size = size
      this.now = now
    }

    find (id: string) { return this.entries.find((e) => e.id === id) }
    put (id: string, until: number) {
      this.entries = this.entries.filter((e) => e.id !== id)
      this.entries.push({ id, until })
      if (this.entries.length > this.size) this.entries.shift()
    }

    claim (id: string, leaseMs: number): ClaimResult {
      const held = this.find(id)
      if (held?.until === Infinity) return 'done'
      if (held !== undefined && held.until > this.now()) return 'busy'
      this.put(id, this.now() + leaseMs)
      return 'new'
    }

    confirm (id: string) { this.put(id, Infinity) }

    release (id: string) {
      if (this.find(id)?.until !== Infinity) this.entries = this.entries.filter((e) => e.id !== id)
    }
  }
  // A seeded generator, so a failure names a case that can be run again.
  let seed = 42
  const random = (n: number) => {
    seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0
    return (seed >>> 8) % n
  }
  let clock = 0
  let mismatches = 0
  for (const size of [1, 2, 3, 7, 16, 100, 1_000]) {
    const store = new MemoryDedupeStore({ size, now: () => clock })
    const model = new Model(size, () => clock)
    // Ids from a pool a little larger than the store, so ids come back after they were forgotten.
    const pool = Array.from({ length: size * 2 + 3 }, (_, i) => `evt-${size}-${i}`)
    for (let step = 0; step < 20_000; step++) {
      const id = pool[random(pool.length)]!
      const op = random(10)
      if (op < 5) {
        const [got, want] = [store.claim(id, 50), model.claim(id, 50)]
        if (got !== want && mismatches++ < 5) t.fail(`size ${size}, step ${step}: claim ${id} answered ${got}, the model ${want}`)
      } else if (op < 8) {
        store.confirm(id)
        model.confirm(id)
      } else if (op < 9) {
        store.release(id)
        model.release(id)
      } else {
        clock += random(60)
      }
    }
    // Every id of the pool, at the end: what the store holds equals what the model holds.
    for (const id of pool) {
      const [got, want] = [store.claim(id, 1), model.claim(id, 1)]
      if (got !== want && mismatches++ < 5) t.fail(`size ${size}, at the end: claim ${id} answered ${got}, the model ${want}`)
    }
  }
  t.equal(mismatches, 0, 'no answer differed from the model')
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

t.test('redis', async (t) => {
  const server = await startRedis(t)
  const connect = async (options: RedisOptions = {}) => {
    const client = new Redis(server.url, options)
    // Reconnection attempts while the server is down are expected; the tests look at results.
    client.on('error', () => {})
    t.teardown(() => client.disconnect())
    await ready(client)
    return client
  }
  const [one, two] = [await connect(), await connect()]
  let stores = 0

  dedupeContract(t, 'redis', {
    // A fresh prefix is a fresh store; two clients are two app instances.
    open: async () => {
      const prefix = `contract:${++stores}:`
      return [new RedisDedupeStore(one, { prefix }), new RedisDedupeStore(two, { prefix })]
    },
    shortLeaseMs: 50,
    afterLapse: (claim) => until(claim, (answer) => answer !== 'busy')
  })

  t.test('one key per id, prefix + id; busy for the lease, done for at least 7 days', async (t) => {
    const store = new RedisDedupeStore(one)
    t.equal(await store.claim('ttl', 30_000), 'new')
    const busy = await one.pttl('cio:webhook:ttl')
    t.ok(busy > 0 && busy <= 30_000, `busy TTL ${busy} ms is the lease`)
    await store.confirm('ttl')
    t.equal(await one.get('cio:webhook:ttl'), 'done')
    const done = await one.pttl('cio:webhook:ttl')
    t.ok(done >= SEVEN_DAYS_MS, `done TTL ${done} ms covers Customer.io's 7-day retry window`)
  })

  t.test('doneTtlMs sets how long a confirmed id is kept, and must be a positive integer', async (t) => {
    const store = new RedisDedupeStore(one, { prefix: 'ttl-option:', doneTtlMs: 60_000 })
    await store.confirm('e1')
    const ttl = await one.pttl('ttl-option:e1')
    t.ok(ttl > 0 && ttl <= 60_000, `done TTL ${ttl} ms`)
    for (const doneTtlMs of [0, 1.5, -1]) t.throws(() => new RedisDedupeStore(one, { doneTtlMs }), RangeError, String(doneTtlMs))
  })

  t.test('stores with different prefixes never see each other’s ids', async (t) => {
    const blue = new RedisDedupeStore(one, { prefix: 'blue:' })
    const green = new RedisDedupeStore(two, { prefix: 'green:' })
    t.equal(await blue.claim('shared', 30_000), 'new')
    await blue.confirm('shared')
    t.equal(await green.claim('shared', 30_000), 'new')
    await green.release('shared')
    t.equal(await blue.claim('shared', 30_000), 'done')
  })

  t.test('a release after the lease lapsed leaves the claim another instance took since', async (t) => {
    const slow = new RedisDedupeStore(one, { prefix: 'overrun:' })
    const next = new RedisDedupeStore(two, { prefix: 'overrun:' })
    t.equal(await slow.claim('e1', 50), 'new')
    t.equal(await until(() => Promise.resolve(next.claim('e1', 30_000)), (answer) => answer !== 'busy'), 'new')
    await slow.release('e1')
    t.equal(await slow.claim('e1', 30_000), 'busy', 'the second claim still holds the id')
  })

  t.test('while Redis is down every call rejects (the route answers 503); once it is back, claims work again', async (t) => {
    const outage = await startRedis(t)
    // Fails fast instead of queueing commands until Redis returns: what the store's client should do.
    const client = new Redis(outage.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 })
    client.on('error', () => {})
    t.teardown(() => client.disconnect())
    await ready(client)
    const store = new RedisDedupeStore(client)
    t.equal(await store.claim('e1', 30_000), 'new')

    await outage.stop()
    await t.rejects(store.claim('e2', 30_000))
    await t.rejects(store.confirm('e1'))
    await t.rejects(store.release('e1'))

    await outage.start()
    await ready(client)
    t.equal(await store.claim('e1', 30_000), 'new', 'a Redis without persistence comes back empty')
  })
})

/** Resolves once `client` is connected; unlike events.once(), a failed reconnection attempt on the way does not reject. */
async function ready (client: Redis): Promise<void> {
  if (client.status !== 'ready') await new Promise((resolve) => client.once('ready', resolve))
}

/** Calls `fn` until `done` accepts its answer: the event a poll waits for, with a generous bound. */
async function until (fn: () => Promise<ClaimResult>, done: (answer: ClaimResult) => boolean, timeoutMs = 10_000): Promise<ClaimResult> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const answer = await fn()
    if (done(answer)) return answer
    if (Date.now() > deadline) throw new Error(`still ${answer} after ${timeoutMs} ms`)
    await delay(10)
  }
}
