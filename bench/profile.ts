/**
 * Where a webhook request's server CPU goes: `node bench/profile.ts [signed|inbox] [seconds] [/bare|/floor]`
 * profiles the server (the inspector's CPU profiler, started after a warm-up), first with load
 * on the bare route, then (a fresh process) on the webhook route, and prints µs per request by part of the work, for both. A sample is
 * given to the deepest frame on its stack that belongs to a part below, so a part includes what
 * it calls unless that is another part (a lib function's JSON.parse is its own; a Node socket
 * write under Fastify's reply is Node's). The profiler's own overhead inflates every figure a
 * little; the shares, and the differences between the columns, are what to read.
 * Not part of `npm run bench`.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { benchRedis } from './redis.ts'
import { ALL_CORES, CONNECTIONS, fillDedupe, LOAD_CORES, pin, server, signedRequests, WEBHOOK, type Mode } from './servers.ts'

interface ProfileNode { id: number, callFrame: { functionName: string, url: string }, children?: number[] }
interface CpuProfile { nodes: ProfileNode[], samples: number[], timeDeltas: number[] }

const ROOT = new URL('..', import.meta.url).href
const LIB = `${ROOT}lib/`
const MODULES = `${ROOT}node_modules/`

/** Parts of the work, by the frame's file (and, for the few native ones, its name); first match wins. */
const PARTS: Array<[string, (name: string, url: string) => boolean]> = [
  ['verification (verify.ts: createHmac, compare)', (_n, u) => u.startsWith(LIB + 'webhook/verify.ts')],
  ['parse (events.ts: toString, JSON.parse, labels)', (_n, u) => u.startsWith(LIB + 'webhook/events.ts')],
  ['recording metrics (record.ts + client)', (_n, u) => u.startsWith(LIB + 'webhook/record.ts')],
  ['claim/confirm (memory-dedupe.ts)', (_n, u) => u.startsWith(LIB + 'webhook/memory-dedupe.ts')],
  ['direct handler (direct.ts: deadline timer, promises)', (_n, u) => u.startsWith(LIB + 'webhook/direct.ts')],
  ['delivery tracking (delivery/)', (_n, u) => u.startsWith(LIB + 'webhook/delivery/')],
  ['inbox add (inbox/, BullMQ, ioredis)', (_n, u) => u.startsWith(LIB + 'webhook/inbox/') || (u.startsWith(MODULES) && /^(bullmq|ioredis|msgpackr)\//.test(u.slice(MODULES.length)))],
  ['route handler, rest (route.ts)', (_n, u) => u.startsWith(LIB + 'webhook/route.ts')],
  ['other lib', (_n, u) => u.startsWith(LIB)],
  ['prom-client', (_n, u) => u.includes('node_modules/@prometheus-io/client/')],
  ['fastify-metrics route timing (+ client)', (_n, u) => u.includes('node_modules/fastify-metrics/')],
  ['logging (pino)', (_n, u) => u.includes('node_modules/pino')],
  ['serialization (fast-json-stringify)', (_n, u) => u.includes('node_modules/fast-json-stringify/')],
  ['routing (find-my-way)', (_n, u) => u.includes('node_modules/find-my-way/')],
  ['Fastify core (hooks, body, reply)', (_n, u) => /node_modules\/(fastify|@fastify|avvio|light-my-request|secure-json-parse)\//.test(u)],
  ['Node HTTP + sockets', (_n, u) => /^node:(_http|http|net|stream|internal\/(http|streams|net|stream_base|js_stream))/.test(u)],
  ['garbage collector', (n) => n === '(garbage collector)'],
  ['idle', (n) => n === '(idle)'],
  // Profiler.stop serialising the profile: not the requests' work.
  ['profiler', (_n, u) => u === 'node:inspector']
]

/** µs of samples per part, and per function (self time) with its part. */
export function partsOf (profile: CpuProfile): { parts: Map<string, number>, functions: Map<string, number> } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const partOfNode = new Map<number, string>()
  const partOf = (id: number): string => {
    const known = partOfNode.get(id)
    if (known !== undefined) return known
    const { functionName, url } = byId.get(id)!.callFrame
    const own = PARTS.find(([, match]) => match(functionName, url))?.[0]
    const up = parent.get(id)
    // The deepest part wins: a frame's own part, else its caller's.
    const part = own ?? (up === undefined ? 'other (Node internals, program)' : partOf(up))
    partOfNode.set(id, part)
    return part
  }
  const parts = new Map<string, number>()
  const functions = new Map<string, number>()
  const add = (map: Map<string, number>, key: string, us: number) => map.set(key, (map.get(key) ?? 0) + us)
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0
    const part = partOf(id)
    add(parts, part, us)
    const { functionName, url } = byId.get(id)!.callFrame
    add(functions, `${functionName || '(anonymous)'} ${url.replace(ROOT, '')} [${part}]`, us)
  })
  return { parts, functions }
}

async function profiled (mode: Mode, path: string, seconds: number, redisUrl: string): Promise<ReturnType<typeof partsOf> & { requests: number, cpuPerRequest: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'cio-prof-'))
  const file = join(dir, 'server.cpuprofile')
  try {
    const target = await server(mode, { redisUrl, env: { BENCH_CPU_PROFILE: file } })
    const next = signedRequests()
    const run = (duration: number) => autocannon({ url: `${target.url}${path}`, method: 'POST', connections: CONNECTIONS, duration, requests: [{ setupRequest: (request: any) => ({ ...request, ...next() }) }] })
    // A warm-up first, unprofiled, so the profile is of optimised code under load only, with
    // the dedupe store full (the steady state).
    await run(2)
    if (path === WEBHOOK && mode === 'signed') await fillDedupe(target, next)
    target.child.kill('SIGUSR2')
    await new Promise((resolve) => setTimeout(resolve, 200))
    const cpuBefore = target.cpuMicros()
    const result = await run(seconds)
    const cpuPerRequest = (target.cpuMicros() - cpuBefore) / result.requests.total
    await target.stop()
    if (result.non2xx > 0 || result.errors > 0) throw new Error(`${path}: ${result.non2xx} non-2xx, ${result.errors} errors`)
    return { ...partsOf(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile), requests: result.requests.total, cpuPerRequest }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

if (import.meta.main) {
  const mode = (process.argv[2] ?? 'signed') as Mode
  const seconds = Number(process.argv[3] ?? 5)
  // `/floor` (signed mode) compares with a minimal signed route instead of the bare one.
  const baseline = process.argv[4] ?? '/bare'
  const redis = mode === 'inbox' ? await benchRedis() : undefined
  if (redis !== undefined) pin(LOAD_CORES, redis.pid)
  pin(LOAD_CORES)
  try {
    const bare = await profiled(mode, baseline, seconds, redis?.url ?? '')
    const hook = await profiled(mode, WEBHOOK, seconds, redis?.url ?? '')
    const names = [...new Set([...bare.parts.keys(), ...hook.parts.keys()])].filter((n) => n !== 'idle' && n !== 'profiler')
    const busy = (r: typeof bare) => names.reduce((t, n) => t + (r.parts.get(n) ?? 0), 0)
    // Samples are spaced in wall time, which a shared machine stretches: each part's share of
    // the busy samples is scaled to the server's CPU time per request, read from /proc.
    const per = (r: typeof bare, name: string) => ((r.parts.get(name) ?? 0) / busy(r)) * r.cpuPerRequest
    const sum = (r: typeof bare) => names.reduce((t, n) => t + per(r, n), 0)
    const lines = names.sort((a, b) => per(hook, b) - per(hook, a)).map((n) => `| ${n} | ${per(bare, n).toFixed(1)} | ${per(hook, n).toFixed(1)} | ${(per(hook, n) - per(bare, n)).toFixed(1)} |`)
    console.log(`${mode} server, ${seconds} s of load per route (+2 s warm-up), µs of CPU per request (each part's share of the profile's busy samples × the server's CPU per request from /proc):\n`)
    const top = [...hook.functions].filter(([f]) => !f.endsWith('[idle]') && !f.endsWith('[profiler]')).sort((a, b) => b[1] - a[1]).slice(0, 30)
    console.log(`\nTop self time, webhook route (µs of CPU per request, scaled as below):\n${top.map(([f, us]) => `${(us / busy(hook) * hook.cpuPerRequest).toFixed(2).padStart(6)}  ${f}`).join('\n')}\n`)
    console.log([`| part | ${baseline} route | webhook route | difference |`, '|---|---:|---:|---:|', ...lines, `| **total (busy)** | ${sum(bare).toFixed(1)} | ${sum(hook).toFixed(1)} | ${(sum(hook) - sum(bare)).toFixed(1)} |`].join('\n'))
  } finally {
    pin(ALL_CORES)
    await redis?.close()
  }
}
