/**
 * The HTTP side of the webhook benchmarks: server processes (bench/webhook-server.ts) on core 0
 * with their CPU time read from /proc, this process (the load generator) on the other cores,
 * signed bodies with a fresh event id each, and closed-loop load at saturation.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import os from 'node:os'
import autocannon from 'autocannon'
import { signWebhook, webhookEvent } from '../lib/testing/index.ts'
import { WEBHOOK_DEFAULTS } from '../lib/webhook/options.ts'

export const KEY = 'bench-signing-key'
export const WEBHOOK = '/webhooks/customerio'
export const CONNECTIONS = 50
export const SECONDS = Number(process.env.BENCH_WEBHOOK_SECONDS ?? 1.5)

/**
 * On Linux, the servers get core 0 and this process, the load generator, the other cores, so the
 * two never take turns on one core and a server's throughput is its own.
 */
const PIN = process.platform === 'linux' && os.availableParallelism() >= 2 && spawnSync('taskset', ['-V']).status === 0
const CLOCK_TICKS = process.platform === 'linux' ? Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100 : 0
export const HAS_PROC = CLOCK_TICKS > 0

/** Pins `pid` (default: this process, all its threads) to `cores`, e.g. `'1-3'`. */
export function pin (cores: string, pid = process.pid): void {
  if (PIN) spawnSync('taskset', ['-a', '-p', '-c', cores, String(pid)], { stdio: 'ignore' })
}
export const LOAD_CORES = `1-${os.availableParallelism() - 1}`
export const ALL_CORES = `0-${os.availableParallelism() - 1}`

/** User + system CPU time of process `pid` so far, in µs (NaN off Linux). */
export function processCpuMicros (pid: number): number {
  if (!HAS_PROC) return Number.NaN
  // Fields 14 and 15 of /proc/<pid>/stat (after the command name): user and system time in ticks.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 1e6 / CLOCK_TICKS
}

/** Runs a Node program on core 0, the servers' (taskset execs node, so the child's pid is the program's). */
export function spawnOnServerCore (args: readonly string[], options: SpawnOptions): ChildProcess {
  return PIN ? spawn('taskset', ['-c', '0', process.execPath, ...args], options) : spawn(process.execPath, args, options)
}

/** Ends `child` with `end` (a signal, or closing its stdin) and waits for it to exit, unless it already has. */
export async function stopChild (child: ChildProcess, end: (child: ChildProcess) => void): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  end(child)
  await exited
}

export interface Server { url: string, child: ChildProcess, cpuMicros: () => number, stop: () => Promise<void> }

export type Mode = 'plain' | 'metrics' | 'signed' | 'inbox'

/** Starts bench/webhook-server.ts in `mode` on core 0; `env` is added to its environment. */
export async function server (mode: Mode, { redisUrl = '', env = {} as Record<string, string> } = {}): Promise<Server> {
  const args = [new URL('webhook-server.ts', import.meta.url).pathname, mode, KEY, redisUrl]
  const child = spawnOnServerCore(args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } })
  const [chunk] = await once(child.stdout!, 'data') as [Buffer]
  const stop = () => stopChild(child, (c) => c.kill('SIGTERM'))
  return { url: chunk.toString().trim(), child, cpuMicros: () => processCpuMicros(child.pid!), stop }
}

export interface SignedRequest { readonly body: string, readonly headers: Readonly<Record<string, string>> }

/**
 * A realistic ~1 KB email event, with a fresh event id, delivery id and signature on every call,
 * so the dedupe and delivery stores see a new one each time (a duplicate is the cheaper path). Every body has the
 * same length. The bare routes get the same bodies.
 */
export function signedRequests (): () => SignedRequest {
  const template = JSON.stringify(webhookEvent('email', 'delivered', { subject: 'Your order has shipped', content_id: 3, href: `https://example.com/${'x'.repeat(600)}` }))
  const { event_id: id, data: { delivery_id: delivery } } = JSON.parse(template) as { event_id: string, data: { delivery_id: string } }
  const [before, middle, after] = template.split(new RegExp(`${id}|${delivery}`)) as [string, string, string]
  let sequence = 0
  return () => {
    const n = (sequence++).toString(32).toUpperCase()
    const body = `${before}${n.padStart(id.length, '0')}${middle}${n.padStart(delivery.length, '0')}${after}`
    return { body, headers: { 'content-type': 'application/json', ...signWebhook(body, KEY) } }
  }
}

/** Requests per second at saturation, and the server's CPU per request. */
export interface Sample { rps: number, cpuPerRequest: number }

/** `CONNECTIONS` closed-loop connections for `SECONDS` against `target` at `path`. */
export function saturate (target: Server, path: string, next: () => SignedRequest): () => Promise<Sample> {
  return async () => {
    const cpuBefore = target.cpuMicros()
    const result = await autocannon({
      url: `${target.url}${path}`,
      method: 'POST',
      connections: CONNECTIONS,
      duration: SECONDS,
      requests: [{ setupRequest: (request: any) => ({ ...request, ...next() }) }]
    })
    if (result.non2xx > 0 || result.errors > 0) throw new Error(`${path}: ${result.non2xx} non-2xx, ${result.errors} errors`)
    // Over the run's own duration: connecting and draining make it longer than asked.
    return { rps: result.requests.total / result.duration, cpuPerRequest: (target.cpuMicros() - cpuBefore) / result.requests.total }
  }
}

/**
 * Sends the webhook route more fresh events than its default dedupe store holds, so the
 * rounds measure the steady state of a long-running app (a full store evicting an id per
 * event), not the cheaper first 100 000 events.
 */
export async function fillDedupe (target: Server, next: () => SignedRequest): Promise<void> {
  const result = await autocannon({
    url: `${target.url}${WEBHOOK}`,
    method: 'POST',
    connections: CONNECTIONS,
    amount: Math.round(WEBHOOK_DEFAULTS.dedupe.size * 1.1),
    requests: [{ setupRequest: (request: any) => ({ ...request, ...next() }) }]
  })
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`fill: ${result.non2xx} non-2xx, ${result.errors} errors`)
}
