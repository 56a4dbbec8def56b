/** Shared pieces of the benchmarks: alternating rounds, medians, and the result rows. */

export interface Row {
  benchmark: string
  measure: string
  baseline: number | null
  result: number
  unit: string
  /** result / baseline, or null where there is no baseline. */
  ratio: number | null
  goal: string
  met: boolean
}

export function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

export const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)

/**
 * Runs `baseline` and `candidate` alternately (after one warm-up of each), `rounds` times,
 * so drift in the machine's speed hits both equally; returns the per-round samples.
 */
export async function alternate<T> (baseline: () => Promise<T>, candidate: () => Promise<T>, rounds = ROUNDS): Promise<{ baseline: T[], candidate: T[] }> {
  await baseline()
  await candidate()
  const out = { baseline: [] as T[], candidate: [] as T[] }
  for (let i = 0; i < rounds; i++) {
    // Swap the order every round, so neither side always runs on a warmer machine.
    if (i % 2 === 0) {
      out.baseline.push(await baseline())
      out.candidate.push(await candidate())
    } else {
      out.candidate.push(await candidate())
      out.baseline.push(await baseline())
    }
  }
  return out
}

/** `ratio` defaults to result / baseline; pass the median of per-round ratios where rounds drift. */
export function row (benchmark: string, measure: string, baseline: number | null, result: number, unit: string, goal: string, met: boolean, ratio = baseline === null ? null : result / baseline): Row {
  return { benchmark, measure, baseline, result, unit, ratio, goal, met }
}

/** Wall time and CPU time of `fn`, in milliseconds. */
export async function timed (fn: () => Promise<void>): Promise<{ wallMs: number, cpuMs: number }> {
  const cpu = process.cpuUsage()
  const start = performance.now()
  await fn()
  const wallMs = performance.now() - start
  const used = process.cpuUsage(cpu)
  return { wallMs, cpuMs: (used.user + used.system) / 1000 }
}
