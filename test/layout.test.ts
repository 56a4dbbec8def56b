import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, normalize, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../', import.meta.url))
const lib = join(root, 'lib')

/** Every module of lib/ with the lib/ modules it imports, type-only imports and re-exports included. */
function graph (): Map<string, string[]> {
  const files = readdirSync(lib, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => join('lib', f))
  return new Map(files.map((file) => {
    const source = readFileSync(join(root, file), 'utf8')
    const specifiers = [...source.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map(([, spec]) => normalize(join(dirname(file), spec!)))
    return [file, [...new Set(specifiers)].filter((s) => s.startsWith('lib/'))]
  }))
}

/** Modules every feature may use; they never import a feature. */
const SHARED = /^lib\/(errors|labels|validation|timers)\.ts$|^lib\/monitoring\//
const FEATURE = /^lib\/(client|queue|webhook|testing)\//

t.test('shared modules never import a feature, and features never import the plugin entry', async (t) => {
  for (const [file, imports] of graph()) {
    if (SHARED.test(file)) t.same(imports.filter((i) => FEATURE.test(i)), [], `${file} imports no feature`)
    if (FEATURE.test(file)) t.notOk(imports.includes('lib/index.ts'), `${file} does not import lib/index.ts`)
  }
})

t.test('lib/ has no import cycle, type-only imports included', async (t) => {
  const modules = graph()
  const state = new Map<string, 'open' | 'done'>()
  const cycles: string[] = []
  const visit = (file: string, path: string[]): void => {
    if (state.get(file) === 'done') return
    if (state.get(file) === 'open') {
      cycles.push([...path.slice(path.indexOf(file)), file].map((f) => relative('lib', f)).join(' → '))
      return
    }
    state.set(file, 'open')
    for (const next of modules.get(file) ?? []) visit(next, [...path, file])
    state.set(file, 'done')
  }
  for (const file of modules.keys()) visit(file, [])
  t.same(cycles, [])
  t.ok(modules.size > 20, `${modules.size} modules read`)
})
