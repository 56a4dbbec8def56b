/**
 * An open-loop load generator for latency: requests leave at a steady rate whatever the server's
 * speed, over a fixed pool of keep-alive connections, so a slow server shows as latency (queued
 * requests included) instead of as fewer requests. autocannon's rate limit sends each second's
 * budget in one burst, which would measure a saturated server again.
 */
import { Pool } from 'undici'

export interface PacedOptions {
  readonly origin: string
  readonly path: string
  /** Requests per second. */
  readonly rate: number
  readonly seconds: number
  readonly connections: number
  readonly next: () => { readonly body: string, readonly headers: Readonly<Record<string, string>> }
}

export interface PacedResult {
  /** Milliseconds. */
  readonly p50: number
  readonly p99: number
  /** Every recorded request's latency, ascending, for percentiles over several rounds. */
  readonly latencies: readonly number[]
  readonly sent: number
  readonly failed: number
}

export async function paced ({ origin, path, rate, seconds, connections, next }: PacedOptions): Promise<PacedResult> {
  const pool = new Pool(origin, { connections, pipelining: 1 })
  const latencies: number[] = []
  let failed = 0
  const send = async (recorded: boolean) => {
    const { body, headers } = next()
    // Timed from dispatch: the 1 ms timer's own lateness is the generator's, not the server's.
    const dispatched = performance.now()
    try {
      const response = await pool.request({ path, method: 'POST', headers, body })
      await response.body.dump()
      if (response.statusCode !== 200) failed++
      else if (recorded) latencies.push(performance.now() - dispatched)
    } catch {
      failed++
    }
  }
  // A first tenth unrecorded, so opening the connections is not part of the figures.
  const total = Math.round(rate * seconds)
  const warmUp = Math.round(total / 10)
  const inFlight: Array<Promise<void>> = []
  const start = performance.now()
  let sent = 0
  await new Promise<void>((resolve) => {
    // A 1 ms timer rather than a busy loop, which would slow the server on a sibling core.
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - start) * rate) / 1000))
      for (; sent < due; sent++) inFlight.push(send(sent >= warmUp))
      if (sent < total) setTimeout(tick, 1)
      else resolve()
    }
    tick()
  })
  await Promise.all(inFlight)
  await pool.close()
  latencies.sort((a, b) => a - b)
  return { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), latencies, sent, failed }
}

/** The `q` quantile of ascending `sorted`. */
const percentile = (sorted: readonly number[], q: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN

/** The `q` quantile of every request of several rounds. */
export const pooledPercentile = (rounds: ReadonlyArray<{ readonly latencies: readonly number[] }>, q: number): number =>
  percentile(rounds.flatMap((r) => r.latencies).sort((a, b) => a - b), q)
