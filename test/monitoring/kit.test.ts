import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, posix } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import { until } from '../fixtures/wait.ts'

// The kit in monitoring/ that shows the dashboard in a minute: a Prometheus config, Grafana
// provisioning and a compose file that mounts them. Docker and Grafana are not run here; what can
// be checked without them is: promtool and Prometheus accept the config, the provisioning files
// have the fields Grafana's provisioning requires, and every path between the files lines up.

const dir = new URL('../../monitoring/', import.meta.url)
const read = (path: string): unknown => parse(readFileSync(new URL(path, dir), 'utf8'))

interface Compose { services: Record<string, { image: string, network_mode?: string, command?: string[], environment?: Record<string, string>, volumes?: string[] }> }
interface Datasource { name: string, uid?: string, type: string, access: string, url: string, isDefault?: boolean, jsonData?: { timeInterval?: string } }
interface Provider { name: string, type: string, folder?: string, options: { path: string } }
interface Variable { type: string, name: string, query: string, regex?: string }

const prometheusYml = read('prometheus.yml') as { global: { scrape_interval: string }, rule_files: string[], scrape_configs: Array<{ job_name: string, metrics_path?: string, static_configs: Array<{ targets: string[] }> }> }
const compose = read('compose.yaml') as Compose
const datasources = read('grafana/provisioning/datasources/prometheus.yml') as { apiVersion: number, datasources: Datasource[] }
const dashboards = read('grafana/provisioning/dashboards/customerio.yml') as { apiVersion: number, providers: Provider[] }
const dashboard = JSON.parse(readFileSync(new URL('dashboard.json', dir), 'utf8')) as { templating: { list: Variable[] } }

/** A service's volumes as { source: a path under monitoring/, target: the path in the container }. */
function mounts (service: string): Array<{ source: string, target: string }> {
  return (compose.services[service]?.volumes ?? []).map((volume) => {
    const [source, target] = volume.split(':')
    return { source: posix.normalize(source!), target: target! }
  })
}
const flag = (command: string[] | undefined, name: string): string | undefined =>
  command?.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3)

const promtool = spawnSync('promtool', ['--version']).status === 0
const prometheus = spawnSync('prometheus', ['--version']).status === 0

t.test('promtool check config accepts monitoring/prometheus.yml and the rule files it names', { skip: promtool ? false : 'promtool is not installed (.ci/run installs it)' }, async (t) => {
  // From another directory: promtool resolves rule_files relative to the config file.
  const check = spawnSync('promtool', ['check', 'config', fileURLToPath(new URL('prometheus.yml', dir))], { cwd: tmpdir(), encoding: 'utf8' })
  t.equal(check.status, 0, check.stdout + check.stderr)
  t.match(check.stdout, /SUCCESS: \d+ rules found/, 'alerts.yml is loaded')
})

t.test('Prometheus starts with the config as shipped: the rules are loaded and the app on localhost:3000 is a target', { skip: prometheus ? false : 'prometheus is not installed (.ci/run installs it)' }, async (t) => {
  const data = mkdtempSync(join(tmpdir(), 'cio-kit-'))
  t.teardown(() => rmSync(data, { recursive: true, force: true }))
  const server = createServer().listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  const child = spawn('prometheus', [
    `--config.file=${fileURLToPath(new URL('prometheus.yml', dir))}`, `--storage.tsdb.path=${data}`, `--web.listen-address=127.0.0.1:${port}`
  ], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (chunk) => { stderr = (stderr + chunk).slice(-4000) })
  t.teardown(() => { child.kill('SIGKILL') })
  const api = async (path: string) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`)
    if (!res.ok) throw new Error(`${path}: ${res.status}`)
    return ((await res.json()) as { data: any }).data
  }
  await until(async () => {
    if (!(await fetch(`http://127.0.0.1:${port}/-/ready`)).ok) throw new Error('Prometheus is not ready')
  }).catch((err) => { throw new Error(`${err.message}\n${stderr}`) })

  const { groups } = await api('/api/v1/rules') as { groups: Array<{ name: string, rules: Array<{ health: string }> }> }
  const shipped = (read('alerts.yml') as { groups: Array<{ name: string, rules: unknown[] }> }).groups
  const byName = (list: Array<{ name: string, rules: unknown[] }>) => list.map((g) => [g.name, g.rules.length]).sort()
  t.same(byName(groups), byName(shipped), 'every group and rule of alerts.yml')
  t.same(groups.flatMap((g) => g.rules.filter((r) => r.health === 'err')), [], 'no rule in error')
  // Targets are discovered a few seconds after start-up.
  const activeTargets = await until(async () => {
    const { activeTargets } = await api('/api/v1/targets') as { activeTargets: Array<{ scrapeUrl: string, labels: { job: string } }> }
    if (activeTargets.length === 0) throw new Error('no target discovered yet')
    return activeTargets
  })
  t.same(activeTargets.map((target) => [target.labels.job, target.scrapeUrl]), [['customerio-app', 'http://localhost:3000/metrics']])
})

t.test('prometheus.yml: the app on localhost:3000, /metrics, and alerts.yml beside it', async (t) => {
  t.same(prometheusYml.rule_files, ['alerts.yml'])
  t.equal(prometheusYml.scrape_configs.length, 1)
  const [scrape] = prometheusYml.scrape_configs
  t.equal(scrape!.metrics_path ?? '/metrics', '/metrics')
  t.same(scrape!.static_configs.flatMap((c) => c.targets), ['localhost:3000'])
})

t.test('Grafana data source: the provisioning fields, and one the dashboard\'s datasource variable can select', async (t) => {
  t.equal(datasources.apiVersion, 1)
  t.equal(datasources.datasources.length, 1)
  const [ds] = datasources.datasources
  for (const field of ['name', 'type', 'access', 'url'] as const) t.ok(typeof ds![field] === 'string' && ds![field].length > 0, `${field} is set`)
  t.ok(['proxy', 'direct'].includes(ds!.access), 'access is proxy or direct')
  t.ok(ds!.uid === undefined || /^[a-zA-Z0-9_-]{1,40}$/.test(ds!.uid), 'a valid uid')
  t.equal(ds!.isDefault, true, 'the default data source, which the variable starts on')

  const variable = dashboard.templating.list.find((v) => v.type === 'datasource')!
  t.equal(variable.name, 'datasource')
  t.equal(ds!.type, variable.query, 'the variable lists data sources of this type')
  if (variable.regex !== undefined && variable.regex !== '') t.match(ds!.name, new RegExp(variable.regex), 'and this name')

  t.equal(ds!.jsonData?.timeInterval, prometheusYml.global.scrape_interval, 'the scrape interval, for $__rate_interval')
  const listen = flag(compose.services.prometheus?.command, 'web.listen-address') ?? ':9090'
  t.equal(new URL(ds!.url).port, listen.split(':').pop(), 'Prometheus\'s port in compose.yaml')
  t.equal(new URL(ds!.url).hostname, 'localhost', 'reachable on the host network')
})

t.test('Grafana dashboard provider: a file provider whose path holds the mounted dashboard.json', async (t) => {
  t.equal(dashboards.apiVersion, 1)
  t.equal(dashboards.providers.length, 1)
  const [provider] = dashboards.providers
  t.ok(typeof provider!.name === 'string' && provider!.name.length > 0, 'name is set')
  t.equal(provider!.type, 'file')
  t.ok(typeof provider!.options?.path === 'string' && posix.isAbsolute(provider!.options.path), 'options.path is an absolute path')
  const dashboardMount = mounts('grafana').find((m) => m.source === 'dashboard.json')
  t.ok(dashboardMount, 'compose mounts dashboard.json into Grafana')
  t.equal(posix.dirname(dashboardMount!.target), provider!.options.path, 'into the provider\'s path')
  t.equal(compose.services.grafana?.environment?.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH, dashboardMount!.target, 'and it is the home dashboard')
})

t.test('compose.yaml parses and mounts files that exist, where each program reads them', async (t) => {
  t.same(Object.keys(compose.services).sort(), ['grafana', 'prometheus'])
  for (const [name, service] of Object.entries(compose.services)) {
    t.match(service.image, /^[\w./-]+:[\w.-]+$/, `${name}: an image with a pinned tag`)
    t.equal(service.network_mode, 'host', `${name}: the host network, so localhost:3000 is the app`)
    for (const { source, target } of mounts(name)) {
      t.ok(existsSync(new URL(source, dir)), `${name}: ${source} exists`)
      t.ok(posix.isAbsolute(target), `${name}: ${target} is absolute`)
    }
  }

  const prom = mounts('prometheus')
  const config = flag(compose.services.prometheus?.command, 'config.file')
  t.equal(prom.find((m) => m.target === config)?.source, 'prometheus.yml', 'Prometheus reads the mounted prometheus.yml')
  for (const rules of prometheusYml.rule_files) {
    t.equal(prom.find((m) => m.target === posix.join(posix.dirname(config!), rules))?.source, rules, `${rules} is mounted beside it`)
  }

  // Every provisioning file is mounted where Grafana looks for its kind, and nothing is left out.
  const grafana = mounts('grafana')
  const provisioning = new URL('grafana/provisioning/', dir)
  const files = readdirSync(provisioning, { recursive: true, withFileTypes: true }).filter((e) => e.isFile())
    .map((e) => posix.join('grafana/provisioning', posix.relative(fileURLToPath(provisioning), e.parentPath), e.name))
  t.same(files.sort(), ['grafana/provisioning/dashboards/customerio.yml', 'grafana/provisioning/datasources/prometheus.yml'])
  for (const file of files) {
    const kind = posix.basename(posix.dirname(file))
    t.match(grafana.find((m) => m.source === file)?.target, new RegExp(`^/etc/grafana/provisioning/${kind}/[^/]+\\.ya?ml$`), `${file} is mounted into provisioning/${kind}`)
  }

  const port = compose.services.grafana?.environment?.GF_SERVER_HTTP_PORT
  const app = new URL(`http://${prometheusYml.scrape_configs[0]!.static_configs[0]!.targets[0]}`).port
  t.ok(port !== undefined && port !== app && port !== '9090', `Grafana listens on ${port}, apart from the app (${app}) and Prometheus`)
})
