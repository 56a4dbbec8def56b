import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { parse } from 'yaml'
import type { CioWebhookOptions } from '../../lib/index.ts'
import { startRedis } from '../fixtures/redis.ts'
import { buildApp, simOptions, startSimulator, WEBHOOK_KEY } from '../helpers.ts'

interface Rule { alert?: string, record?: string, expr: string, for?: string, labels?: Record<string, string>, annotations?: Record<string, string> }
interface AlertTest { alertname: string, exp_alerts: unknown[] }
interface RulesTest { name: string, alert_rule_test?: AlertTest[], promql_expr_test?: Array<{ expr: string }> }

const dir = new URL('../../monitoring/', import.meta.url)
const groups = (parse(readFileSync(new URL('alerts.yml', dir), 'utf8')) as { groups: Array<{ name: string, rules: Rule[] }> }).groups
const rules = groups.flatMap((g) => g.rules)
const alerts = rules.filter((r) => r.alert !== undefined)
const records = rules.filter((r) => r.record !== undefined)
const tests = (parse(readFileSync(new URL('alerts.test.yml', dir), 'utf8')) as { tests: RulesTest[] }).tests
const runbook = readFileSync(new URL('runbook.md', dir), 'utf8')
const promtool = spawnSync('promtool', ['--version']).status === 0
const noPromtool = promtool ? false : 'promtool is not installed (.ci/run installs it)'
// For the inbox's metrics: a real Redis, stopped when this file's tests end.
const redis = await startRedis(t)

/** The metric families /metrics lists (a histogram as its _bucket, _sum and _count), without an inbox and with one. */
async function exposedFamilies (t: Test): Promise<Set<string>> {
  const sim = await startSimulator(t)
  const families = new Set<string>()
  const modes: CioWebhookOptions[] = [{ signingKeys: WEBHOOK_KEY }, { signingKeys: WEBHOOK_KEY, inbox: { connection: redis.url, worker: false } }]
  for (const webhook of modes) {
    // With the outbox too (not sending), so its metrics are exposed.
    const { app } = await buildApp(t, simOptions(sim, { webhook, outbox: { connection: redis.url, sender: false } }))
    for (const [, name, type] of (await app.inject('/metrics')).body.matchAll(/^# TYPE (\S+) (\w+)$/gm)) {
      for (const family of type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name!]) families.add(family)
    }
  }
  return families
}

t.test('promtool: rules are valid and lint-clean', { skip: noPromtool }, async (t) => {
  const check = spawnSync('promtool', ['check', 'rules', '--lint=all', '--lint-fatal', 'alerts.yml'], { cwd: dir, encoding: 'utf8' })
  t.equal(check.status, 0, check.stdout + check.stderr)
})

// About 15 s of promtool on its own: longer than the usual 30 s per test once the machine is busy.
t.test('promtool: every unit test in alerts.test.yml passes', { skip: noPromtool, timeout: 90_000 }, async (t) => {
  const run = spawnSync('promtool', ['test', 'rules', 'alerts.test.yml'], { cwd: dir, encoding: 'utf8' })
  t.equal(run.status, 0, run.stdout + run.stderr)
})

t.test('the recipe\'s four alerts (error ratio, p99 latency, bounce and spam rates) and the plugin\'s own alerts (budget, throttling, webhooks, inbox, stalled stream, queue, outbox, deliveries) exist', async (t) => {
  t.same(alerts.map((a) => a.alert).sort(), [
    'CustomerioApiErrorBudgetFastBurn', 'CustomerioApiErrorBudgetSlowBurn', 'CustomerioApiHighErrorRatio', 'CustomerioApiHighLatency',
    'CustomerioApiThrottled', 'CustomerioDeliveriesUnconfirmed', 'CustomerioDeliverySlow', 'CustomerioEmailHighBounceRate', 'CustomerioEmailHighSpamComplaintRate', 'CustomerioOutboxLagging', 'CustomerioOutboxStoreErrors', 'CustomerioQueueDropping',
    'CustomerioQueueRetrying', 'CustomerioQueueSaturated', 'CustomerioWebhookHandlerErrors', 'CustomerioWebhookInboxFailedJobs',
    'CustomerioWebhookSignatureFailures', 'CustomerioWebhookSilent', 'CustomerioWebhookStoreErrors', 'CustomerioWebhookStreamStalled'
  ])
})

t.test('alert style (monitoring-mixins guide)', async (t) => {
  const anchors = new Set([...runbook.matchAll(/^## (.+)$/gm)].map(([, heading]) => heading!.toLowerCase().replace(/[^a-z0-9 -]/g, '').replace(/ /g, '-')))
  for (const group of groups) {
    t.ok(group.rules.length <= 20, `${group.name}: at most 20 rules`)
    t.ok(group.name.length <= 40)
  }
  for (const a of alerts) {
    const name = a.alert!
    t.match(name, /^Customerio([A-Z][a-z0-9]+)+$/, `${name}: CamelCase with the shared prefix`)
    t.ok(name.length <= 40, `${name}: at most 40 characters`)
    t.ok(['critical', 'warning', 'info'].includes(a.labels?.severity ?? ''), `${name}: severity`)
    const { summary = '', description = '', runbook_url: url = '' } = a.annotations ?? {}
    t.match(summary, /^[A-Z].*\.$/, `${name}: summary is a sentence`)
    t.notMatch(summary, /\{\{/, `${name}: summary is static`)
    t.match(description, /\{\{ *\$labels\.job *\}\}/, `${name}: description is templated with the job`)
    t.match(url, /^runbook\.md#/, `${name}: runbook link`)
    t.ok(anchors.has(url.split('#')[1]!), `${name}: ${url} exists in runbook.md`)
    t.ok(a.for !== undefined, `${name}: has a for duration`)
  }
  for (const r of records) t.match(r.record!, /^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$/, `${r.record}: level:metric:operations`)
})

t.test('every alert is tested firing and quiet; every recording rule has an exact value', async (t) => {
  const cases = tests.flatMap((test) => test.alert_rule_test ?? [])
  for (const a of alerts) {
    t.ok(cases.some((c) => c.alertname === a.alert && c.exp_alerts.length > 0), `${a.alert} fires in a test`)
    t.ok(cases.some((c) => c.alertname === a.alert && c.exp_alerts.length === 0), `${a.alert} stays quiet in a test`)
  }
  const exprs = new Set(tests.flatMap((test) => (test.promql_expr_test ?? []).map((p) => p.expr)))
  for (const r of records) t.ok(exprs.has(r.record!), `${r.record} has a promql_expr_test`)
})

t.test('every metric the rules use is one the plugin exposes, without an inbox or with one', async (t) => {
  const families = await exposedFamilies(t)
  for (const name of new Set(rules.flatMap((r) => r.expr.match(/(?<![:\w])cio_[a-z_]+/g) ?? []))) t.ok(families.has(name), `${name} is exposed`)
})
