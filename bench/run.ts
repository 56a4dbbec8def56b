/**
 * `npm run bench`: every benchmark against its baseline in the same run, a table of ratios and
 * absolute figures, and bench/results.json for comparing commits (and bench/README.md's table from it,
 * the benchmarks not run this time keeping their earlier rows). Never part of `npm test`,
 * and it fails on no absolute time: goals are reported, not enforced.
 */
import { existsSync } from 'node:fs'
import os from 'node:os'
import { benchCalls } from './calls.ts'
import { benchInbox } from './inbox.ts'
import { benchLogging } from './logging.ts'
import { benchMemory } from './memory.ts'
import { benchMetricsRender } from './metrics-render.ts'
import { benchOutbox } from './outbox.ts'
import { benchQueue } from './queue.ts'
import { benchTracing } from './tracing.ts'
import { benchWebhook } from './webhook.ts'
import { ROUNDS, type Row } from './harness.ts'
import { mergeResults, readResults, renderTable, RESULTS_FILE, writeResults } from './results.ts'

const only = process.argv.slice(2)
const all: Array<[string, () => Promise<Row[]>]> = [
  // The queue goes first: its RSS figures mean little once earlier benchmarks have grown the heap.
  ['queue', benchQueue], ['calls', benchCalls], ['webhook', benchWebhook], ['inbox', benchInbox], ['outbox', benchOutbox], ['metrics', benchMetricsRender], ['logging', benchLogging], ['tracing', benchTracing], ['memory', benchMemory]
]
const runs: Array<[string, Row[]]> = []
for (const [name, bench] of all) {
  if (only.length > 0 && !only.includes(name)) continue
  process.stderr.write(`running ${name}…\n`)
  runs.push([name, await bench()])
}

const machine = `${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${ROUNDS} rounds, medians`
const date = new Date().toISOString()
const latest = Object.fromEntries(runs.map(([name, rows]) => [name, { date, machine, rows }]))
const results = mergeResults(existsSync(RESULTS_FILE) ? readResults() : {}, latest, all.map(([name]) => name))
console.log(`${machine}\n\n${renderTable(latest)}`)
writeResults(results)
