import t from 'tap'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { cleanEnv, pack, root } from './fixtures/pack.ts'

// A separate TypeScript app, as a user has one: the packed package installed beside the app's own
// customerio-node, every TypeScript block of the README compiled against it (strict, the default
// lib with the DOM, skipLibCheck off), and a program that builds SDK objects from its own import.

const version = (name: string): string => JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')).version
const DEPENDENCIES = ['fastify', 'customerio-node', '@fastify/env', 'close-with-grace', '@fastify/otel', '@opentelemetry/api',
  '@opentelemetry/sdk-trace-base', '@opentelemetry/sdk-trace-node', '@types/node']

/** Every ```ts block of the README, as written there. */
const blocks = [...readFileSync(join(root, 'README.md'), 'utf8').matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map(([, code]) => code!)

const PROGRAM = `
import Fastify from 'fastify'
import { Region, SendEmailRequest } from 'customerio-node'
import cioObservability from 'fastify-customerio-observability'
import { createCioSimulator } from 'fastify-customerio-observability/testing'

const sim = await createCioSimulator()
const app = Fastify()
// A Region and a request built from the app's own customerio-node.
const region = new Region(sim.region.trackUrl, sim.region.apiUrl, sim.region.pipelinesUrl)
await app.register(cioObservability, { env: {}, appApiKey: sim.appApiKey, region })
const sent = await app.cio.sendEmail(new SendEmailRequest({ to: 'a@example.com', transactional_message_id: '1', identifiers: { id: '1' } }))
process.stdout.write(JSON.stringify({ delivery: typeof (sent as { delivery_id?: unknown }).delivery_id }))
await app.close()
await sim.close()
`

t.test('a separate TypeScript app: README blocks compile strictly, and the app\'s own customerio-node objects are accepted', { timeout: 180_000 }, async (t) => {
  t.ok(blocks.length >= 5, `${blocks.length} TypeScript blocks in the README`)
  const { dir, tarball } = pack(t)
  const app = join(dir, 'app')
  mkdirSync(app)
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }))
  execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball, ...DEPENDENCIES.map((name) => `${name}@${version(name)}`)],
    { cwd: app, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  t.notOk(existsSync(join(app, 'node_modules/fastify-customerio-observability/node_modules/customerio-node')), 'one customerio-node: the app\'s (a peer)')

  const files = blocks.map((code, i) => { writeFileSync(join(app, `readme-${i + 1}.ts`), code); return `readme-${i + 1}.ts` })
  writeFileSync(join(app, 'program.ts'), PROGRAM)
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { target: 'es2023', module: 'nodenext', moduleResolution: 'nodenext', strict: true, skipLibCheck: false, noEmit: true, types: ['node'], allowImportingTsExtensions: true },
    files: [...files, 'program.ts']
  }))
  let diagnostics = ''
  try {
    execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', app], { cwd: app, env: cleanEnv(), encoding: 'utf8' })
  } catch (err) {
    diagnostics = String((err as { stdout?: string }).stdout)
  }
  t.equal(diagnostics, '', 'the README\'s TypeScript and the program compile')

  const out = execFileSync(process.execPath, ['program.ts'], { cwd: app, env: cleanEnv(), encoding: 'utf8' })
  t.same(JSON.parse(out), { delivery: 'string' }, 'sendEmail(new SendEmailRequest(…)) from the app\'s own import was sent')
})
