/**
 * `npm run bench`: every benchmark against its baseline in the same run, a table of ratios and
 * absolute figures, and bench/results.json for comparing commits. Never part of `npm test`,
 * and it fails on no absolute time: goals are reported, not enforced.
 */
import { writeFileSync } from 'node:fs'
import os from 'node:os'
import { benchCalls } from './calls.ts'
import { benchInbox } from './inbox.ts'
import { benchLogging } from './logging.ts'
import { benchMemory } from './memory.ts'
import { benchMetricsRender } from './metrics-render.ts'
import { benchQueue } from './queue.ts'
import { benchTracing } from './tracing.ts'
import { benchWebhook } from './webhook.ts'
import { ROUNDS, type Row } from './harness.ts'

const only = process.argv.slice(2)
const all: Array<[string, () => Promise<Row[]>]> = [
  // The queue goes first: its RSS figures mean little once earlier benchmarks have grown the heap.
  ['queue', benchQueue], ['calls', benchCalls], ['webhook', benchWebhook], ['inbox', benchInbox], ['metrics', benchMetricsRender], ['logging', benchLogging], ['tracing', benchTracing], ['memory', benchMemory]
]
const rows: Row[] = []
for (const [name, bench] of all) {
  if (only.length > 0 && !only.includes(name)) continue
  process.stderr.write(`running ${name}…\n`)
  rows.push(...await bench())
}

const fmt = (n: number | null) => n === null ? '—' : Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2)
const machine = `${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${ROUNDS} rounds, medians`
const table = [
  '| benchmark | measure | baseline | result | unit | ratio | goal | met |',
  '|---|---|---:|---:|---|---:|---|---|',
  ...rows.map((r) => `| ${r.benchmark} | ${r.measure} | ${fmt(r.baseline)} | ${fmt(r.result)} | ${r.unit} | ${r.ratio === null ? '—' : r.ratio.toFixed(2)} | ${r.goal} | ${r.met ? 'yes' : '**no**'} |`)
]
console.log(`${machine}\n\n${table.join('\n')}`)
writeFileSync(new URL('results.json', import.meta.url), `${JSON.stringify({ date: new Date().toISOString(), machine, rows }, null, 2)}\n`)
