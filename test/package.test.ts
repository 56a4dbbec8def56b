import t from 'tap'
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { pack, root } from './fixtures/pack.ts'

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const REPO = 'https://github.com/fastify-customerio-observability/fastify-customerio-observability'

t.test('package.json: licence, links and the files it ships', async (t) => {
  t.equal(pkg.license, 'MIT')
  t.match(readFileSync(join(root, 'LICENSE'), 'utf8'), /^MIT License\n\nCopyright \(c\) 2026 fastify-customerio-observability contributors\n/)
  t.same(pkg.repository, { type: 'git', url: `git+${REPO}.git` })
  t.equal(pkg.homepage, `${REPO}#readme`)
  t.same(pkg.bugs, { url: `${REPO}/issues` })
  t.ok(pkg.files.includes('LICENSE'), 'LICENSE in files')
  t.equal(pkg.scripts.prepack, 'npm run build', 'npm pack builds first')
})

t.test('npm pack, from a clean copy of the sources, ships the build, the docs and the monitoring files only', { timeout: 120_000 }, async (t) => {
  const { src, tarball: packed, files } = pack(t)

  for (const path of ['dist/index.js', 'dist/index.d.ts', 'dist/testing/index.js', 'dist/testing/index.d.ts', 'LICENSE', 'README.md', 'package.json']) {
    t.ok(files.includes(path), path)
  }
  const monitoring = readdirSync(join(root, 'monitoring'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => relative(root, join(e.parentPath, e.name)))
  t.ok(monitoring.length > 0 && monitoring.every((path) => files.includes(path)), 'every file of monitoring/')
  t.same(files.filter((path) => path.endsWith('.map')), [], 'no source maps')
  t.same(files.filter((path) => /^(lib|test|example|bench)\//.test(path)), [], 'no sources, tests, example or benchmarks')
  t.same(files.filter((path) => !/^(dist\/.+\.(js|d\.ts)|monitoring\/.+|LICENSE|README\.md|package\.json)$/.test(path)), [], 'nothing else')

  const tarball = execFileSync('tar', ['-tzf', packed], { encoding: 'utf8' }).trim().split('\n').map((line) => line.replace(/^package\//, ''))
  t.same(tarball.sort(), [...files].sort(), 'the tarball holds what npm listed')
  const sourceMapped = files.filter((path) => path.endsWith('.js') && readFileSync(join(src, path), 'utf8').includes('sourceMappingURL'))
  t.same(sourceMapped, [], 'no built file points at a source map')
})
