/*
 * npm run chaos [-- --seconds N] [--seed N] [--only name,…]
 *
 * A real-time chaos run of the plugin's promises (not a unit test): real timers, real HTTP to
 * the Customer.io simulator, real redis-server processes paused, killed and put to sleep. Each
 * scenario has its own simulator, Redis and apps; the fault phases share the time budget. The
 * checks wait for outcomes within stated bounds, never after a fixed sleep. Exits non-zero on
 * any loss, double recording, wedge, late answer or unbounded close.
 */
import { parseArgs } from 'node:util'
import { closeScenario } from './close.ts'
import { deliveryScenario } from './delivery.ts'
import { outboxScenario } from './outbox.ts'
import { directScenario, queueScenario } from './queue.ts'
import { row, seeded, Teardown, type Row, type ScenarioContext } from './shared.ts'
import { webhookScenario } from './webhook.ts'

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    seed: { type: 'string' },
    only: { type: 'string' }
  }
})
const seconds = Number(values.seconds)
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed)
if (!Number.isFinite(seconds) || seconds <= 0 || !Number.isInteger(seed)) {
  process.stderr.write('usage: npm run chaos -- [--seconds N] [--seed N] [--only queue,direct,outbox,webhook,delivery,close]\n')
  process.exit(2)
}

// Shares of the budget for each fault phase; draining, settling and closing take the rest.
const phase = (share: number) => Math.max(2000, Math.round(seconds * 1000 * share))
const scenarios: Array<{ name: string, group: string, share: number, run: (ctx: ScenarioContext) => Promise<Row> }> = [
  { name: 'queue', group: 'queue', share: 0.25, run: queueScenario },
  { name: 'direct client', group: 'direct', share: 0.06, run: directScenario },
  { name: 'outbox', group: 'outbox', share: 0.12, run: outboxScenario },
  { name: 'webhook memory', group: 'webhook', share: 0.1, run: (ctx) => webhookScenario('memory', ctx) },
  { name: 'webhook redis', group: 'webhook', share: 0.1, run: (ctx) => webhookScenario('redis', ctx) },
  { name: 'webhook inbox', group: 'webhook', share: 0.1, run: (ctx) => webhookScenario('inbox', ctx) },
  { name: 'delivery', group: 'delivery', share: 0.08, run: deliveryScenario },
  { name: 'close memory', group: 'close', share: 0, run: (ctx) => closeScenario('memory', ctx) },
  { name: 'close redis', group: 'close', share: 0, run: (ctx) => closeScenario('redis', ctx) },
  { name: 'close inbox', group: 'close', share: 0, run: (ctx) => closeScenario('inbox', ctx) }
]
const only = values.only?.split(',')

// Anything thrown outside a scenario's own awaits is a finding too, not a crash of the harness.
const stray: string[] = []
process.on('unhandledRejection', (err) => { stray.push(`unhandled rejection: ${String(err)}`) })
process.on('uncaughtException', (err) => { stray.push(`uncaught exception: ${String(err)}`) })
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`\n${signal}: cleaning up\n`)
    Promise.all([...Teardown.pending].map((t) => t.run(3000))).finally(() => process.exit(130))
  })
}

process.stdout.write(`chaos run: seed ${seed}, ${seconds} s budget (repeat with --seed ${seed})\n`)
const rows: Row[] = []
for (const [index, scenario] of scenarios.entries()) {
  if (only !== undefined && !only.includes(scenario.group) && !only.includes(scenario.name)) continue
  const started = Date.now()
  process.stdout.write(`… ${scenario.name}\n`)
  const before = stray.length
  let result: Row
  try {
    result = await scenario.run({ phaseMs: phase(scenario.share), seed: seed + index, rng: seeded(seed + index) })
  } catch (err) {
    result = row(scenario.name)
    result.failures.push(`harness error: ${String(err)}`)
  }
  result.failures.push(...stray.slice(before))
  result.notes.push(`took ${((Date.now() - started) / 1000).toFixed(1)} s`)
  rows.push(result)
}

const columns: Array<[string, (r: Row) => unknown]> = [
  ['scenario', (r) => r.scenario],
  ['accepted', (r) => r.accepted],
  ['delivered', (r) => r.delivered],
  ['doubled', (r) => r.doubled],
  ['dropped', (r) => r.dropped],
  ['late', (r) => r.late],
  ['slowest answer ms', (r) => r.slowestAnswerMs],
  ['slowest close ms', (r) => r.slowestCloseMs],
  ['exit bounded', (r) => r.exitBounded === undefined ? undefined : r.exitBounded ? 'yes' : 'no']
]
const cells = rows.map((r) => columns.map(([, get]) => String(get(r) ?? '-')))
const widths = columns.map(([title], i) => Math.max(title.length, ...cells.map((c) => c[i].length)))
const line = (values: string[]) => values.map((v, i) => i === 0 ? v.padEnd(widths[i]) : v.padStart(widths[i])).join('  ')
process.stdout.write(`\n${line(columns.map(([title]) => title))}\n${cells.map(line).join('\n')}\n\n`)
process.stdout.write('(direct client: dropped = calls that rejected; close: dropped = handed to onDrop(\'shutdown\'), delivered not counted)\n\n')

for (const r of rows) {
  process.stdout.write(`${r.failures.length === 0 ? 'PASS' : 'FAIL'} ${r.scenario}\n`)
  for (const failure of r.failures) process.stdout.write(`  ✗ ${failure}\n`)
  for (const note of r.notes) process.stdout.write(`  · ${note}\n`)
}
const failed = rows.filter((r) => r.failures.length > 0).length
process.stdout.write(`\n${failed === 0 ? 'PASS' : 'FAIL'}: ${rows.length - failed} of ${rows.length} scenarios passed (seed ${seed})\n`)
// Everything was cleaned up; whatever the code under test left running must not keep the run alive.
process.exit(failed === 0 ? 0 : 1)
