import t from 'tap'
import { execFileSync } from 'node:child_process'
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const REPO = 'https://github.com/fastify-customerio-observability/fastify-customerio-observability'

/** The environment without tap's hooks and with coverage off (tap re-adds its loader to every child). */
function cleanEnv (): NodeJS.ProcessEnv {
  const env = { ...process.env }
  for (const key of Object.keys(env)) if (/^(NODE_OPTIONS|NODE_V8_COVERAGE|TAP|_TAPJS)/.test(key)) delete env[key]
  return { ...env, _TAPJS_PROCESSINFO_COVERAGE_: '0' }
}

t.test('package.json: licence, links and the files it ships', async (t) => {
  t.equal(pkg.license, 'MIT')
  t.match(readFileSync(join(root, 'LICENSE'), 'utf8'), /^MIT License\n\nCopyright \(c\) 2026 fastify-customerio-observability contributors\n/)
  t.same(pkg.repository, { type: 'git', url: `git+${REPO}.git` })
  t.equal(pkg.homepage, `${REPO}#readme`)
  t.same(pkg.bugs, { url: `${REPO}/issues` })
  t.ok(pkg.files.includes('LICENSE'), 'LICENSE in files')
  t.equal(pkg.scripts.prepack, 'npm run build', 'npm pack builds first')
})

t.test('npm pack, from a clean copy of the sources, ships the build, the docs and the monitoring files only', async (t) => {
  // A copy, so the build neither races other tests nor depends on what dist/ holds here.
  const dir = mkdtempSync(join(tmpdir(), 'cio-pack-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const src = join(dir, 'src')
  const skip = new Set(['node_modules', '.git', 'dist', 'coverage', '.tap'])
  cpSync(root, src, { recursive: true, filter: (from) => !skip.has(basename(from)) && !from.endsWith('.tgz') })
  symlinkSync(join(root, 'node_modules'), join(src, 'node_modules'), 'dir')

  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: src, env: cleanEnv(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  // npm prints the prepack script's output before the JSON.
  const [report] = JSON.parse(out.slice(out.indexOf('\n[') + 1))
  const files: string[] = report.files.map((file: { path: string }) => file.path)

  for (const path of ['dist/index.js', 'dist/index.d.ts', 'dist/testing/index.js', 'dist/testing/index.d.ts', 'LICENSE', 'README.md', 'package.json']) {
    t.ok(files.includes(path), path)
  }
  const monitoring = readdirSync(join(root, 'monitoring')).map((name) => `monitoring/${name}`)
  t.ok(monitoring.length > 0 && monitoring.every((path) => files.includes(path)), 'every file of monitoring/')
  t.same(files.filter((path) => path.endsWith('.map')), [], 'no source maps')
  t.same(files.filter((path) => /^(lib|test|example|bench)\//.test(path)), [], 'no sources, tests, example or benchmarks')
  t.same(files.filter((path) => !/^(dist\/.+\.(js|d\.ts)|monitoring\/.+|LICENSE|README\.md|package\.json)$/.test(path)), [], 'nothing else')

  const tarball = execFileSync('tar', ['-tzf', join(dir, report.filename)], { encoding: 'utf8' }).trim().split('\n').map((line) => line.replace(/^package\//, ''))
  t.same(tarball.sort(), [...files].sort(), 'the tarball holds what npm listed')
  const sourceMapped = files.filter((path) => path.endsWith('.js') && readFileSync(join(src, path), 'utf8').includes('sourceMappingURL'))
  t.same(sourceMapped, [], 'no built file points at a source map')
})
