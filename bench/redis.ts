/** A real redis-server for the inbox benchmarks: the tests' fixture, stopped when `close()` is called. */
import { Redis } from 'ioredis'
import { startRedis, type RedisServer } from '../test/fixtures/redis.ts'

export interface BenchRedis extends RedisServer {
  /** redis-server's process id, for its CPU time. */
  readonly pid: number
  /** Stops the server and removes its directory. */
  close: () => Promise<void>
}

export async function benchRedis (): Promise<BenchRedis> {
  const teardowns: Array<() => unknown> = []
  const server = await startRedis({ teardown: (fn) => { teardowns.push(fn) } })
  const client = new Redis(server.url)
  const info = await client.info('server')
  client.disconnect()
  const pid = Number(/process_id:(\d+)/.exec(info)?.[1])
  return { ...server, pid, close: async () => { for (const fn of teardowns) await fn() } }
}
