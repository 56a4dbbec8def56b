import t from 'tap'
import { execFile, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { until } from './fixtures/wait.ts'
// A timeout for each test (30 s): this file does not use ./helpers.ts, which brings it.
import './fixtures/timeouts.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const KEY = 'example-test-signing-key'

/**
 * The environment of a user's shell: no CUSTOMERIO_* credentials (so the embedded simulator),
 * and no coverage: lib/'s 100% is measured by its own tests, not by running the example.
 * (tap adds its hooks to every child it spawns; `_TAPJS_PROCESSINFO_COVERAGE_=0` turns coverage off in it.)
 */
function userEnv (extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env }
  for (const key of Object.keys(env)) if (/^(CUSTOMERIO_|NODE_OPTIONS|NODE_V8_COVERAGE|TAP|_TAPJS)/.test(key)) delete env[key]
  return { ...env, _TAPJS_PROCESSINFO_COVERAGE_: '0', ...extra }
}

async function sendWebhook (url: string, key: string): Promise<{ code: number, stdout: string, stderr: string, before: number, after: number }> {
  const child = execFile(process.execPath, ['example/send-webhook.ts', url], { cwd: root, env: userEnv({ CUSTOMERIO_WEBHOOK_SIGNING_KEY: key }) })
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (chunk) => { stdout += chunk })
  child.stderr!.on('data', (chunk) => { stderr += chunk })
  const [code] = await once(child, 'exit') as [number]
  // send-webhook prints the series it read: one missing from its output is an error, never a number.
  const value = (label: string): number => {
    const found = new RegExp(`^${label}: +cio_email_sent_total\\{source="webhook",type="campaign"\\} (\\d+)$`, 'm').exec(stdout)
    if (found === null) throw new Error(`no ${label} value of cio_email_sent_total{source="webhook",type="campaign"} in send-webhook's output:\n${stdout}${stderr}`)
    return Number(found[1])
  }
  return { code, stdout, stderr, before: value('before'), after: value('after') }
}

t.test('the example starts without warnings, counts a signed webhook sent by send-webhook, and exits cleanly on SIGTERM', { timeout: 90_000 }, async (t) => {
  // The key comes from CUSTOMERIO_WEBHOOK_SIGNING_KEY even with the simulator; PORT=0 picks a free port.
  const server = spawn(process.execPath, ['example/server.ts'], {
    cwd: root,
    env: userEnv({ PORT: '0', TRAFFIC_INTERVAL_MS: '0', CUSTOMERIO_WEBHOOK_SIGNING_KEY: KEY }),
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const exited = once(server, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  t.teardown(() => { if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL') })
  let stdout = ''
  let stderr = ''
  server.stderr.on('data', (chunk) => { stderr += chunk })

  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: server.stdout })
    lines.on('line', (line) => {
      stdout += `${line}\n`
      const match = /^example listening on (http:\/\/\S+)$/.exec(line)
      if (match !== null) resolve(match[1]!)
    })
    exited.then(([code, signal]) => reject(new Error(`the example exited (${code ?? signal}) before listening:\n${stdout}\n${stderr}`)), reject)
  })
  t.match(url, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.match(stdout, `npm run send-webhook -- ${url}`, 'it prints the command that sends a signed event')
  t.notMatch(stdout, KEY, 'a key given in the environment is never printed')

  const sent = await sendWebhook(url, KEY)
  t.equal(sent.code, 0, `send-webhook succeeds:\n${sent.stdout}${sent.stderr}`)
  t.match(sent.stdout, /: 200 /)
  t.equal(sent.after - sent.before, 1, 'the funnel counter moved by one')
  t.equal(sent.stderr, '')

  const forged = await sendWebhook(url, 'not-the-key')
  t.equal(forged.code, 1, 'a wrongly signed event is refused')
  t.match(forged.stdout, /: 401 /)
  t.equal(forged.after, forged.before, 'and not counted')

  t.notMatch(stderr, /deprecat|warning|FSTDEP|FSTWRN/i, 'no deprecation or other warning')
  t.equal(stderr, '', 'nothing on stderr')

  server.kill('SIGTERM')
  // A generous bound, well past the example's own 15 s close-with-grace delay, only so a hang fails clearly.
  const bound = setTimeout(() => server.kill('SIGKILL'), 60_000)
  const [code, signal] = await exited
  clearTimeout(bound)
  t.same({ code, signal }, { code: 0, signal: null }, `a clean exit on SIGTERM:\n${stderr}`)
  t.equal(stderr, '', 'nothing on stderr while closing either')
})

t.test('npm start under SIGTERM to npm stops the example too, with a shutdown line', { timeout: 90_000 }, async (t) => {
  const npm = spawn('npm', ['start'], { cwd: root, env: userEnv({ PORT: '0', TRAFFIC_INTERVAL_MS: '0' }), stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (npm.exitCode === null && npm.signalCode === null) npm.kill('SIGKILL') })
  let stdout = ''
  const exited = once(npm, 'exit')
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: npm.stdout }).on('line', (line) => {
      stdout += `${line}\n`
      const match = /^example listening on (http:\/\/\S+)$/.exec(line)
      if (match !== null) resolve(match[1]!)
    })
    exited.then(() => reject(new Error(`npm start exited before listening:\n${stdout}`)), reject)
  })
  npm.kill('SIGTERM')
  await exited
  t.match(stdout, /"msg":"shutting down"/, 'the example logs its shutdown')
  t.match(stdout, /"msg":"closed"/)
  const refused = await until(async () => {
    try {
      await fetch(url)
    } catch (err) {
      return err
    }
    throw new Error('the example still answers')
  })
  t.ok(refused, 'nothing answers at the example\'s address any more')
})

t.test('the README\'s shutdown snippet is the example\'s', async (t) => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  const section = /\n### Shutting down\n[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)
  t.ok(section, 'README has a "Shutting down" snippet')
  const example = readFileSync(new URL('../example/server.ts', import.meta.url), 'utf8')
  // The snippet makes its own app so that it compiles on its own; the rest is the example's.
  const lines = section![1]!.split('\n').filter((line) => line.trim() !== '' && !/^(import Fastify|const app = Fastify)/.test(line))
  for (const line of lines) t.ok(example.includes(`${line}\n`), line)
})
