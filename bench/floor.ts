/**
 * The webhook route's floor: what any receiver of a signed event must do, HMAC-SHA256 of
 * `v0:<ts>:<body>` and JSON.parse of the body, in µs of CPU per event. Measured in-process, or
 * in a process of its own on the servers' core between rounds (`floorProcess`), so each round's
 * figures are read against the speed of that core at that time: on a shared VM it drifts by tens
 * of percent over minutes, and a load generator's leftover work would skew it in its own process.
 * Run as a program, it measures once per line read on stdin and writes the figure back.
 */
import { createHmac } from 'node:crypto'
import { createInterface } from 'node:readline'
import { median, ROUNDS, timed } from './harness.ts'
import { KEY, signedRequests, spawnOnServerCore, stopChild, type SignedRequest } from './servers.ts'

const EVENTS = 50_000

/** Each call measures the floor once. */
export function floorMeter (next: () => SignedRequest): () => Promise<number> {
  const requests = Array.from({ length: 1_000 }, next)
  let sink = 0
  return async () => {
    const { cpuMs } = await timed(async () => {
      for (let i = 0; i < EVENTS; i++) {
        const { body, headers } = requests[i % requests.length]!
        const mac = createHmac('sha256', KEY).update(`v0:${headers['x-cio-timestamp']}:${body}`).digest()
        sink += mac[0]! + (JSON.parse(body) as { timestamp: number }).timestamp
      }
    })
    if (sink === 0) throw new Error('unreachable')
    return cpuMs * 1000 / EVENTS
  }
}

/** The floor in this process: the median of a few measurements after a warm-up. */
export async function floorMicros (next: () => SignedRequest): Promise<number> {
  const measure = floorMeter(next)
  await measure()
  const rounds: number[] = []
  for (let i = 0; i < ROUNDS; i++) rounds.push(await measure())
  return median(rounds)
}

/** This file as a child on core 0 (the servers'), measuring on demand. */
export async function floorProcess (): Promise<{ measure: () => Promise<number>, stop: () => Promise<void> }> {
  const child = spawnOnServerCore([new URL(import.meta.url).pathname], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
  // A child that died answers no more lines; the write's own error adds nothing to that.
  child.stdin!.on('error', () => {})
  const measure = async () => {
    child.stdin!.write('measure\n')
    const { value, done } = await lines.next()
    const micros = Number(value)
    if (done === true || !Number.isFinite(micros) || micros <= 0) throw new Error(`the floor process answered ${done === true ? 'nothing' : JSON.stringify(value)}`)
    return micros
  }
  const stop = () => stopChild(child, (c) => { c.stdin!.end() })
  try {
    await measure()
  } catch (err) {
    child.kill()
    throw err
  }
  return { measure, stop }
}

if (import.meta.main) {
  const measure = floorMeter(signedRequests())
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'measure') process.stdout.write(`${await measure()}\n`)
  }
}
