import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import type { CioWebhookOptions } from '../../lib/index.ts'
import { startRedis } from '../fixtures/redis.ts'
import { buildApp, simOptions, startSimulator, WEBHOOK_KEY } from '../helpers.ts'

interface Target { datasource: { type: string, uid: string }, refId: string, expr: string, legendFormat: string }
interface Panel {
  id: number,
  type: string,
  title: string,
  description?: string,
  datasource?: Target['datasource']
  gridPos: { h: number, w: number, x: number, y: number }
  fieldConfig?: {
    defaults: { unit?: string, custom?: { stacking?: { mode: string } } },
    overrides?: Array<{ matcher: { id: string, options: string }, properties: Array<{ id: string, value: unknown }> }>
  },
  targets?: Target[],
  panels?: Panel[]
}
interface Variable { type: string, name: string, label?: string, query: string | { query: string }, datasource?: Target['datasource'], refresh?: number, multi?: boolean, includeAll?: boolean }

const raw = readFileSync(new URL('../../monitoring/dashboard.json', import.meta.url), 'utf8')
const dashboard = JSON.parse(raw) as {
  uid: string,
  title: string,
  schemaVersion: number,
  editable: boolean,
  graphTooltip: number,
  tags: string[]
  templating: { list: Variable[] },
  panels: Panel[],
  time: object,
  __inputs?: unknown,
  __requires: Array<{ type: string, id: string }>
}
const panels = dashboard.panels.filter((p) => p.type !== 'row')
const targets = panels.flatMap((p) => p.targets!.map((target) => ({ panel: p.title, ...target })))

// The literal Grafana variable reference, not a template string.
// eslint-disable-next-line no-template-curly-in-string
const DATASOURCE = { type: 'prometheus', uid: '${datasource}' }

/** Unit ids Grafana knows (the subset of valueFormats that fits this dashboard). */
const UNITS = new Set(['s', 'ms', 'percentunit', 'percent', 'reqps', 'ops', 'short', 'none', 'bytes'])
const PANEL_TYPES = new Set(['timeseries', 'stat', 'bargauge', 'table', 'heatmap', 'gauge'])
const COUNTERS = /\b(cio_[a-z_]+_total|cio_[a-z_]+_bucket)\b/g

// For the inbox's metrics: a real Redis, stopped when this file's tests end.
const redis = await startRedis(t)

/**
 * What /metrics lists, without an inbox and with one: its metric families, and the names a query
 * can select (a histogram's _bucket, _sum and _count).
 */
async function exposed (t: Test): Promise<{ families: Set<string>, names: Set<string> }> {
  const sim = await startSimulator(t)
  const families = new Set<string>()
  const names = new Set<string>()
  const modes: CioWebhookOptions[] = [{ signingKeys: WEBHOOK_KEY }, { signingKeys: WEBHOOK_KEY, inbox: { connection: redis.url, worker: false } }]
  for (const webhook of modes) {
    // With the outbox too (not sending), so its metrics are exposed.
    const { app } = await buildApp(t, simOptions(sim, { webhook, outbox: { connection: redis.url, sender: false } }))
    for (const [, name, type] of (await app.inject('/metrics')).body.matchAll(/^# TYPE (\S+) (\w+)$/gm)) {
      families.add(name!)
      for (const selectable of type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name!]) names.add(selectable)
    }
  }
  return { families, names }
}

t.test('portable identity: fixed uid, no DS_* inputs, classic JSON', async (t) => {
  t.equal(dashboard.uid, 'cio-observability')
  t.ok(dashboard.uid.length <= 40)
  t.equal(dashboard.__inputs, undefined)
  t.notMatch(raw, /\$\{DS_/)
  t.type(dashboard.schemaVersion, 'number')
  t.equal(dashboard.editable, false)
  t.equal(dashboard.graphTooltip, 1, 'shared crosshair')
  t.ok(dashboard.tags.includes('customerio'))
  t.ok(dashboard.title.length > 0)
  t.same(dashboard.__requires.filter((r) => r.type === 'panel').map((r) => r.id).sort(), [...new Set(panels.map((p) => p.type))].sort(), '__requires lists the panel types used')
})

t.test('template variables: one datasource, job and instance from the plugin\'s metrics', async (t) => {
  const vars = dashboard.templating.list
  const ds = vars.filter((v) => v.type === 'datasource')
  t.equal(ds.length, 1)
  t.match(ds[0], { name: 'datasource', label: 'Data Source', query: 'prometheus' })
  const byName = Object.fromEntries(vars.map((v) => [v.name, v]))
  for (const name of ['job', 'instance']) {
    const v = byName[name]!
    t.match(v, { type: 'query', multi: true, includeAll: true, refresh: 2, datasource: { uid: DATASOURCE.uid } }, name)
  }
  t.match((byName.job!.query as { query: string }).query, /^label_values\(cio_info, job\)$/)
  t.match((byName.instance!.query as { query: string }).query, /job=~"\$job"/)
})

t.test('panels: known types, titles, descriptions, units, unique ids, a 24-column grid', async (t) => {
  const ids = dashboard.panels.map((p) => p.id)
  t.equal(new Set(ids).size, ids.length, 'unique ids')
  for (const p of dashboard.panels) {
    t.ok(Number.isInteger(p.gridPos.x) && p.gridPos.x >= 0 && p.gridPos.x + p.gridPos.w <= 24, `${p.title}: fits the grid`)
    t.ok(p.gridPos.h > 0 && p.gridPos.w > 0)
    if (p.type === 'row') { t.same(p.panels, [], `${p.title}: an open row`); continue }
    t.ok(PANEL_TYPES.has(p.type), `${p.title}: ${p.type} is not an Angular panel`)
    t.ok(p.description !== undefined && p.description.length > 10, `${p.title}: has a description`)
    t.ok(UNITS.has(p.fieldConfig?.defaults.unit ?? ''), `${p.title}: has a valid unit`)
    t.same(p.datasource, DATASOURCE, `${p.title}: datasource variable`)
    t.ok(p.targets!.length > 0)
    t.equal(new Set(p.targets!.map((x) => x.refId)).size, p.targets!.length, `${p.title}: unique refIds`)
  }
  const overlaps = panels.flatMap((a, i) => panels.slice(i + 1).filter((b) =>
    a.gridPos.x < b.gridPos.x + b.gridPos.w && b.gridPos.x < a.gridPos.x + a.gridPos.w &&
    a.gridPos.y < b.gridPos.y + b.gridPos.h && b.gridPos.y < a.gridPos.y + a.gridPos.h).map((b) => `${a.title} / ${b.title}`))
  t.same(overlaps, [], 'no panels overlap')
})

t.test('targets follow the dashboard-linter rules', async (t) => {
  for (const target of targets) {
    const where = `${target.panel} ${target.refId}`
    t.same(target.datasource, DATASOURCE, `${where}: datasource variable`)
    const selectors = target.expr.match(/cio_[a-z_]+\{[^}]*\}/g) ?? []
    t.ok(selectors.length > 0, `${where}: selects plugin metrics`)
    for (const s of selectors) t.match(s, /job=~"\$job",instance=~"\$instance"/, `${where}: job and instance matchers on ${s}`)
    t.notMatch(target.expr, /cio_[a-z_]+(?!\{)\b(?![a-z_])/, `${where}: no bare metric without matchers`)
    for (const [, window] of target.expr.matchAll(/\[([^\]]+)\]/g)) t.equal(window, '$__rate_interval', `${where}: $__rate_interval`)
    t.notMatch(target.expr, /irate\(/, `${where}: rate, not irate`)
    for (const match of target.expr.matchAll(COUNTERS)) {
      const before = target.expr.slice(0, match.index)
      t.match(before, /(rate|increase)\($/, `${where}: counter ${match[1]} only inside rate/increase`)
    }
    t.ok(target.legendFormat.length > 0, `${where}: legend`)
  }
})

t.test('the dashboard shows latency quantiles, errors, throttling, in-flight calls, the email funnel, webhooks (duplicates, inbox jobs) and the queue (retries)', async (t) => {
  const exprs = targets.map((x) => x.expr).join('\n')
  for (const needle of [
    'histogram_quantile(0.5,', 'histogram_quantile(0.95,', 'histogram_quantile(0.99,', 'cio_api_requests_total', 'by (error_type)',
    'cio_api_attempts_total', 'status_code="429"', 'cio_api_in_flight', 'cio_email_sent_total', 'cio_email_bounced_total',
    'cio_email_complained_total', 'by (object_type, metric)', 'by (reason) (rate(cio_webhook_rejected_total', 'cio_webhook_lag_seconds_bucket',
    'sum(rate(cio_webhook_duplicates_total', '/ ((sum(rate(cio_webhook_received_total', 'max by (state) (cio_webhook_inbox_jobs',
    'cio_queue_depth', 'cio_queue_capacity', 'by (reason) (rate(cio_queue_dropped_total', 'by (queue) (rate(cio_queue_retries_total'
  ]) t.ok(exprs.includes(needle), needle)
})

t.test('inbox jobs are stacked by state with the failed ones in red; the duplicate share has its own percent axis', async (t) => {
  const inbox = panels.find((p) => p.targets!.some((x) => x.expr.includes('cio_webhook_inbox_jobs')))!
  t.equal(inbox.fieldConfig?.defaults.custom?.stacking?.mode, 'normal', 'stacked')
  t.equal(inbox.targets![0]!.legendFormat, '{{state}}')
  const failed = inbox.fieldConfig?.overrides?.find((o) => o.matcher.id === 'byName' && o.matcher.options === 'failed')
  t.match(failed?.properties, [{ id: 'color', value: { mode: 'fixed', fixedColor: 'red' } }], 'failed in red')

  const duplicates = panels.find((p) => p.targets!.some((x) => x.expr.includes('cio_webhook_duplicates_total') && x.expr.includes('cio_webhook_received_total')))!
  const share = duplicates.targets!.find((x) => x.expr.includes('cio_webhook_received_total'))!
  const axis = duplicates.fieldConfig?.overrides?.find((o) => o.matcher.id === 'byName' && o.matcher.options === share.legendFormat)
  t.match(axis?.properties, [{ id: 'unit', value: 'percentunit' }], 'the share is a percentage')
  t.ok(axis?.properties.some((p) => p.id === 'custom.axisPlacement' && p.value === 'right'), 'on the right axis')
})

t.test('the dashboard and the plugin\'s metrics match, without an inbox or with one', async (t) => {
  const { families, names } = await exposed(t)
  const used = new Set(targets.flatMap((x) => x.expr.match(/cio_[a-z_]+/g) ?? []))
  for (const name of used) t.ok(names.has(name), `${name}, on the dashboard, is exposed`)
  t.ok(names.has('cio_info'), 'the variables\' cio_info')

  const variables = dashboard.templating.list.flatMap((v) => (typeof v.query === 'string' ? v.query : v.query.query).match(/cio_[a-z_]+/g) ?? [])
  const shown = new Set([...used, ...variables])
  for (const family of [...families].filter((name) => name.startsWith('cio_'))) {
    // A histogram is shown when any of its series is.
    t.ok([family, `${family}_bucket`, `${family}_sum`, `${family}_count`].some((name) => shown.has(name)), `${family}, exposed, is on the dashboard`)
  }
})
