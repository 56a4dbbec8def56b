import { randomUUID } from 'node:crypto'
import type { Channel } from '../../labels.ts'
import { keepFor, type DeliveryEvent, type DeliveryRecorded, type DeliveryStore } from './store.ts'

/** The ioredis commands the store uses: an ioredis instance (the app's) fits. */
export interface RedisDeliveryClient {
  eval: (script: string, keys: number, ...args: Array<string | number>) => Promise<unknown>
}

export interface RedisDeliveryOptions {
  /** Prefix of every key. Default `cio:delivery:`. */
  prefix?: string
}

/**
 * One delivery's record, in one step: a hash (`b` began at, `c` channel, `m:<metric>` seen,
 * `ok` settled, `u` counted unconfirmed) that expires, and its window's end in a sorted set while it awaits an outcome.
 */
const RECORD = `local key, deadlines = KEYS[1], KEYS[2]
local id, channel, metric, at, begins, outcome, awaits, window, keep = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
local began = tonumber(redis.call('HGET', key, 'b') or '-1')
local started = 0
if begins == '1' and (began < 0 or at < began) then
  if began < 0 then started = 1 end
  began = at
  redis.call('HSET', key, 'b', began)
end
redis.call('HSETNX', key, 'c', channel)
local first = redis.call('HSETNX', key, 'm:' .. metric, 1)
if outcome == '1' then
  redis.call('HSET', key, 'ok', 1)
  redis.call('ZREM', deadlines, id)
elseif awaits == '1' and began >= 0 and redis.call('HEXISTS', key, 'ok') == 0 then
  redis.call('ZADD', deadlines, began + window, id)
end
local ttl = redis.call('PTTL', key)
if ttl < keep then redis.call('PEXPIRE', key, keep) end
return {started, began, first}`

/**
 * The deliveries whose window ended, each taken off the sorted set by exactly one caller (the
 * script runs alone), marked settled, and appended with a sequence number to the caller's own
 * list. The list is answered whole and trimmed up to what the caller says it has counted, so an
 * answer lost on the way (a timeout while Redis hung) is answered again, and never counted twice.
 */
const EXPIRE = `local deadlines, list, sequence = KEYS[1], KEYS[2], KEYS[3]
local now, prefix, counted, keep = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
while true do
  local head = redis.call('LINDEX', list, 0)
  if not head or tonumber(string.match(head, '^(%d+):')) > counted then break end
  redis.call('LPOP', list)
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', deadlines, '-inf', now, 'LIMIT', 0, 1000)) do
  redis.call('ZREM', deadlines, id)
  local key = prefix .. id
  if redis.call('EXISTS', key) == 1 then redis.call('HSET', key, 'ok', 1, 'u', 1) end
  redis.call('RPUSH', list, redis.call('INCR', sequence) .. ':' .. (redis.call('HGET', key, 'c') or '_other'))
end
redis.call('PEXPIRE', list, keep)
redis.call('PEXPIRE', sequence, keep)
return redis.call('LRANGE', list, 0, -1)`

/** How long an instance's list of expired deliveries outlives its last sweep. */
const LIST_KEEP_MS = 86_400_000

/**
 * The {@link DeliveryStore} for several instances, on the app's ioredis client: a send on one
 * instance joins its webhook events on another, and exactly one instance counts each
 * unconfirmed delivery. Records expire {@link keepFor} after their latest event.
 */
export class RedisDeliveryStore implements DeliveryStore {
  readonly #client: RedisDeliveryClient
  readonly #prefix: string
  /** This store's own list and sequence of expired deliveries. */
  readonly #instance = randomUUID()
  /** The highest sequence number counted so far. */
  #counted = 0

  constructor (client: RedisDeliveryClient, { prefix = 'cio:delivery:' }: RedisDeliveryOptions = {}) {
    this.#client = client
    this.#prefix = prefix
  }

  async record (event: DeliveryEvent): Promise<DeliveryRecorded> {
    const flag = (value: boolean) => value ? '1' : '0'
    const [started, began, first] = await this.#client.eval(RECORD, 2, `${this.#prefix}d:${event.deliveryId}`, `${this.#prefix}deadlines`,
      event.deliveryId, event.channel, event.metric, event.at, flag(event.begins), flag(event.outcome), flag(event.awaitsOutcome),
      event.confirmWithinMs, keepFor(event.confirmWithinMs)) as [number, number, number]
    return { started: started === 1, beganAt: began < 0 ? undefined : began, first: first === 1 }
  }

  async expire (now: number): Promise<Channel[]> {
    const p = this.#prefix
    const listed = await this.#client.eval(EXPIRE, 3, `${p}deadlines`, `${p}expired:${this.#instance}`, `${p}sequence:${this.#instance}`,
      now, `${p}d:`, this.#counted, LIST_KEEP_MS) as string[]
    // The script dropped what was counted before: every entry listed is new to the caller.
    return listed.map((entry) => {
      const colon = entry.indexOf(':')
      this.#counted = Number(entry.slice(0, colon))
      return entry.slice(colon + 1) as Channel
    })
  }
}
