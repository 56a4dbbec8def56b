/**
 * bench/results.json and the table in bench/README.md, kept as one fact: each benchmark's latest rows,
 * with the date and machine they were measured on. A run of some benchmarks (`npm run bench --
 * calls`) replaces only theirs, so the table never loses the rows of the benchmarks not re-run.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import type { Row } from './harness.ts'

export interface Run { readonly date: string, readonly machine: string, readonly rows: readonly Row[] }
/** By benchmark name (`queue`, `calls`, …), in the order `npm run bench` runs them. */
export type Results = Readonly<Record<string, Run>>

export const RESULTS_FILE = new URL('results.json', import.meta.url)
/** bench/README.md: its table, between the markers, is rendered from results.json. */
export const README_FILE = new URL('README.md', import.meta.url)
const START = '<!-- bench:start -->'
const END = '<!-- bench:end -->'

export function readResults (file: URL = RESULTS_FILE): Results {
  return JSON.parse(readFileSync(file, 'utf8')) as Results
}

/** `earlier` with every benchmark of `latest` replaced, in `order`. */
export function mergeResults (earlier: Results, latest: Results, order: readonly string[]): Results {
  const merged: Record<string, Run> = {}
  for (const name of order) {
    const run = latest[name] ?? earlier[name]
    if (run !== undefined) merged[name] = run
  }
  return merged
}

const fmt = (n: number | null) => n === null ? '—' : Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2)

/** The Markdown table of every row, with the day each benchmark was last run. */
export function renderTable (results: Results): string {
  return [
    '| benchmark | measure | baseline | result | unit | ratio | goal | met | run |',
    '|---|---|---:|---:|---|---:|---|---|---|',
    ...Object.values(results).flatMap(({ date, rows }) => rows.map((r) =>
      `| ${r.benchmark} | ${r.measure} | ${fmt(r.baseline)} | ${fmt(r.result)} | ${r.unit} | ${r.ratio === null ? '—' : r.ratio.toFixed(2)} | ${r.goal} | ${r.met ? 'yes' : '**no**'} | ${date.slice(0, 10)} |`))
  ].join('\n')
}

/** Where bench/README.md's table lies: the text between its markers. */
function tableSpan (readme: string): { start: number, end: number } {
  const start = readme.indexOf(START)
  const end = readme.indexOf(END)
  if (start < 0 || end < start) throw new Error(`bench/README.md has no ${START} … ${END} block`)
  return { start: start + START.length, end }
}

/** bench/README.md's table, between its markers. */
export function readmeTable (readme: string): string {
  const { start, end } = tableSpan(readme)
  return readme.slice(start, end).trim()
}

/** Writes both or neither: bench/README.md is checked before results.json changes. */
export function writeResults (results: Results): void {
  const readme = readFileSync(README_FILE, 'utf8')
  // Sliced, not String.replace: a `$` in a row would be read as a replacement pattern.
  const { start, end } = tableSpan(readme)
  const updated = `${readme.slice(0, start)}\n${renderTable(results)}\n${readme.slice(end)}`
  writeFileSync(RESULTS_FILE, `${JSON.stringify(results, null, 2)}\n`)
  writeFileSync(README_FILE, updated)
}
