import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { METRICS_DEFAULTS } from '../lib/monitoring/exposition.ts'
import { DELIVERY_DEFAULTS } from '../lib/webhook/delivery/options.ts'
import { OUTBOX_DEFAULTS } from '../lib/queue/outbox/options.ts'
import { QUEUE_DEFAULTS } from '../lib/queue/options.ts'
import { INBOX_DEFAULTS, WEBHOOK_DEFAULTS } from '../lib/webhook/options.ts'
import { README_FILE, readmeTable, readResults, renderTable } from '../bench/results.ts'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
const benchReadme = readFileSync(README_FILE, 'utf8')

/** `| \`section.key\` | default | … |` rows of the README, as key → default cell. */
const documented = new Map([...readme.matchAll(/^\| `((?:webhook\.inbox|webhook|metrics|queue|outbox|delivery)\.\w+)` \| ([^|]+) \|/gm)].map(([, key, cell]) => [key!, cell!.trim()]))

const plain = (value: unknown): string => typeof value === 'number'
  ? value.toLocaleString('en-US').replaceAll(',', ' ')
  : typeof value === 'object' ? `{ ${Object.entries(value as object).map(([k, v]) => `${k}: ${plain(v)}`).join(', ')} }` : String(value)

/** How a default is written in the README: numbers grouped by spaces, anything else in code, `none` for undefined. */
const written = (value: unknown): string => value === undefined ? 'none' : typeof value === 'number' ? plain(value) : `\`${plain(value)}\``

t.test('the README documents every section option with the default the code uses, and no other', async (t) => {
  const sections = { webhook: WEBHOOK_DEFAULTS, 'webhook.inbox': INBOX_DEFAULTS, metrics: METRICS_DEFAULTS, queue: QUEUE_DEFAULTS, outbox: OUTBOX_DEFAULTS, delivery: DELIVERY_DEFAULTS }
  const expected = new Map(Object.entries(sections).flatMap(([section, defaults]) =>
    Object.entries(defaults).map(([key, value]) => [`${section}.${key}`, written(value)])))
  t.same([...documented.keys()].sort(), [...expected.keys()].sort(), 'the same options')
  for (const [key, value] of expected) t.equal(documented.get(key), value, key)
})

t.test('bench/README.md\'s table is bench/results.json, every benchmark\'s latest rows', async (t) => {
  t.equal(README_FILE.pathname, new URL('../bench/README.md', import.meta.url).pathname, 'npm run bench renders into bench/README.md')
  t.equal(readmeTable(benchReadme), renderTable(readResults()))
})

t.test('the README keeps benchmark figures out and links to bench/README.md', async (t) => {
  t.notOk(readme.includes('<!-- bench:'), 'no benchmark table in the README')
  t.match(readme, /\]\(bench\/README\.md\)/)
})

t.test('every relative link of the README and bench/README.md points at a file that exists', async (t) => {
  for (const [name, url] of [['README.md', new URL('../README.md', import.meta.url)], ['bench/README.md', README_FILE]] as const) {
    const text = readFileSync(url, 'utf8')
    for (const [, target] of text.matchAll(/\]\((?!https?:|#)([^)#\s]+)[^)]*\)/g)) {
      t.ok(existsSync(new URL(target!, url)), `${name} → ${target}`)
    }
  }
})
