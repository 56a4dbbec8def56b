/** Heap retained per app registered and closed, after GC: the tests' register/close fixture, in a process of its own. */
import { spawnSync } from 'node:child_process'
import { row, type Row } from './harness.ts'

const CYCLES = 400

export async function benchMemory (): Promise<Row[]> {
  const fixture = new URL('../test/fixtures/register-close.ts', import.meta.url).pathname
  const child = spawnSync(process.execPath, ['--expose-gc', fixture, String(CYCLES)], { encoding: 'utf8' })
  if (child.status !== 0) throw new Error(`register-close fixture failed:\n${child.stderr}`)
  const { bytesPerCycle } = JSON.parse(child.stdout) as { bytesPerCycle: number }
  const kib = bytesPerCycle / 1024
  return [row('per-app memory', `heap retained per register/close cycle, every feature on, after GC (${CYCLES} cycles)`, null, kib, 'KiB', '≤ 5 KiB', kib <= 5)]
}
