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
 * Runs every function of `runs` in turn (after one warm-up of each), `rounds` times, rotating
 * the order every round so drift in the machine's speed hits each equally; returns the
 * per-round samples of each, by name.
 */
export async function rotate<K extends string, T> (runs: Readonly<Record<K, () => Promise<T>>>, rounds = ROUNDS): Promise<Record<K, T[]>> {
  const names = Object.keys(runs) as K[]
  const out = {} as Record<K, T[]>
  for (const name of names) {
    await runs[name]()
    out[name] = []
  }
  for (let i = 0; i < rounds; i++) {
    // Rotated every other round and reversed in between, so no run always follows the same one.
    const order = names.map((_, j) => names[(Math.floor(i / 2) + j) % names.length]!)
    for (const name of i % 2 === 0 ? order : order.reverse()) out[name].push(await runs[name]())
  }
  return out
}

/** {@link rotate} for a baseline and a candidate. */
export async function alternate<T> (baseline: () => Promise<T>, candidate: () => Promise<T>, rounds = ROUNDS): Promise<{ baseline: T[], candidate: T[] }> {
  return rotate({ baseline, candidate }, rounds)
}

/** The median over rounds of candidate ÷ baseline, each ratio from samples of the same round. */
export function medianRatio<T> (baseline: T[], candidate: T[], of: (sample: T) => number): number {
  return median(candidate.map((c, i) => of(c) / of(baseline[i]!)))
}

/** Per-round differences candidate − baseline of a sample's figure, as a median. */
export const medianDifference = <T>(baseline: T[], candidate: T[], of: (s: T) => number): number =>
  median(candidate.map((c, i) => of(c) - of(baseline[i]!)))

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
