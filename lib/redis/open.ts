import type { Redis, RedisOptions } from 'ioredis'
import type { RedisConnection } from './connection.ts'

/** An ioredis instance the app made: the plugin never sends a command on it nor closes it, it duplicates it. */
interface RedisTemplate {
  duplicate: (override: RedisOptions) => Redis
}

/**
 * A connection of the plugin's own, with `options` on top of the app's settings: a duplicate of
 * the app's instance (same host, auth, TLS, db), or a new client for a URL or options.
 */
export async function openRedis (connection: RedisConnection, options: RedisOptions): Promise<Redis> {
  const template = connection as Partial<RedisTemplate>
  if (typeof template.duplicate === 'function') return template.duplicate(options)
  // Loaded only now: an app that uses no Redis-backed feature needs no ioredis.
  const { Redis } = await import('ioredis')
  return typeof connection === 'string' ? new Redis(connection, options) : new Redis({ ...connection, ...options })
}

/**
 * Logs each error once until `reset()` (call it when the connection is ready again): an outage
 * repeats its error at every reconnection attempt, which must not become a line per attempt.
 */
export function oncePerOutage (log: (err: Error) => void): { report: (err: Error) => void, reset: () => void } {
  let last: string | undefined
  return {
    report: (err) => {
      if (err.message === last) return
      last = err.message
      log(err)
    },
    reset: () => { last = undefined }
  }
}
