/**
 * Where a Redis-backed feature connects: a Redis URL (`redis://…`, `rediss://…`), ioredis options
 * or an ioredis instance, typed loosely so that the plugin's types compile in apps without ioredis.
 */
export type RedisConnection = string | object

/** Whether `value` can be a {@link RedisConnection}; the message for an option that is not. */
export const isRedisConnection = (value: unknown): value is RedisConnection => typeof value === 'string' || (typeof value === 'object' && value !== null && !Array.isArray(value))
export const REDIS_CONNECTION_EXPECTED = 'must be a Redis URL, ioredis options or an ioredis instance'
