/**
 * A small mutation check of the webhook, delivery, queue and outbox modules: each mutation below (a flipped
 * comparison, a dropped release, confirm, record or metric, a changed constant) is applied on its
 * own, the tests of its module run, and the mutation is reported `killed` (a test failed) or
 * `survived` (every test passed: a hole in the tests, or a change that makes no difference).
 *
 *   npx node scripts/mutate.ts [text…]    only the mutations whose file or description holds one of the texts
 *   npx node scripts/mutate.ts --list     the mutations (STALE: its text is not in this tree once), nothing run
 *
 * The mutations are applied in a copy of the working tree (node_modules linked, not copied), so
 * this tree is never written to: other people's edits and test runs are not disturbed, and an
 * interrupted run leaves nothing behind. In the copy each file is restored to its exact bytes
 * after its mutation, also on an error or Ctrl-C, and the copy is removed at the end.
 *
 * A mutation is (file, exact source text, replacement): it keeps working while the code around
 * it changes, and one whose text is not found exactly once is reported `stale`, never skipped.
 * Exit code: 0 when every mutation was killed, 1 when one survived or is stale, 2 when the
 * tests fail without any mutation.
 */
import { spawn } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

interface Mutation {
  readonly file: string
  /** What the mutant does differently, as the report says it. */
  readonly what: string
  /** Source text that must occur exactly once in the file. */
  readonly find: string
  readonly replace: string
}

const root = fileURLToPath(new URL('..', import.meta.url))

/** A test that hangs fails after this; a test file after FILE_TIMEOUT_S. */
const TEST_TIMEOUT_MS = 10_000
const FILE_TIMEOUT_S = 60
/** A run still going after this is stopped and counts as killed (a hang the timeouts missed). */
const RUN_TIMEOUT_MS = 240_000

/** The test files that exercise each module. */
const TESTS: Readonly<Record<string, readonly string[]>> = {
  'lib/webhook/direct.ts': ['test/webhook/claims.test.ts', 'test/webhook/route.test.ts', 'test/webhook/redis-faults.test.ts'],
  'lib/webhook/route.ts': ['test/webhook/route.test.ts', 'test/webhook/fuzz.test.ts', 'test/webhook/claims.test.ts'],
  'lib/webhook/verify.ts': ['test/webhook/verify.test.ts', 'test/webhook/route.test.ts', 'test/webhook/fuzz.test.ts'],
  'lib/webhook/memory-dedupe.ts': ['test/webhook/dedupe.test.ts', 'test/webhook/route.test.ts', 'test/webhook/claims.test.ts'],
  'lib/webhook/redis-dedupe.ts': ['test/webhook/dedupe.test.ts', 'test/webhook/claims.test.ts', 'test/webhook/redis-faults.test.ts', 'test/webhook/instances.test.ts'],
  'lib/queue/queue.ts': ['test/queue/queue.test.ts', 'test/queue/queue-property.test.ts'],
  'lib/queue/outbox/outbox.ts': ['test/queue/outbox/outbox.test.ts'],
  'lib/webhook/delivery/memory-store.ts': ['test/webhook/delivery/delivery.test.ts'],
  'lib/webhook/delivery/redis-store.ts': ['test/webhook/delivery/delivery.test.ts'],
  'lib/webhook/delivery/tracker.ts': ['test/webhook/delivery/delivery.test.ts']
}

const DIRECT = 'lib/webhook/direct.ts'
const ROUTE = 'lib/webhook/route.ts'
const VERIFY = 'lib/webhook/verify.ts'
const MEMORY = 'lib/webhook/memory-dedupe.ts'
const REDIS = 'lib/webhook/redis-dedupe.ts'
const QUEUE = 'lib/queue/queue.ts'
const OUTBOX = 'lib/queue/outbox/outbox.ts'
const DELIVERIES = 'lib/webhook/delivery/memory-store.ts'
const REDIS_DELIVERIES = 'lib/webhook/delivery/redis-store.ts'
const TRACKER = 'lib/webhook/delivery/tracker.ts'

const MUTATIONS: readonly Mutation[] = [
  {
    file: DIRECT,
    what: 'no release of the claim after a failed onEvent',
    find: "      if (eventId !== undefined) await Promise.resolve().then(() => store.release(eventId)).catch((err: unknown) => { failed('release', err, eventId) })\n",
    replace: ''
  },
  { file: DIRECT, what: 'no confirm after onEvent succeeded', find: '        await confirm(eventId, leaseEnd)\n', replace: '' },
  { file: DIRECT, what: 'a handled event is not recorded', find: "    record(read, receivedAt)\n    return 'handled'", replace: "    return 'handled'" },
  { file: DIRECT, what: 'a late answer hands back any claim, a busy one too', find: "late === 'new' ? store.release(eventId) : undefined", replace: "late !== 'done' ? store.release(eventId) : undefined" },
  { file: DIRECT, what: 'a failed confirm is not tried again', find: 'if (Date.now() + wait >= leaseEnd) throw new Unconfirmed(', replace: 'if (wait > 0) throw new Unconfirmed(' },
  { file: DIRECT, what: 'a lease of 1 ms instead of 60 s', find: 'const LEASE_MS = 60_000', replace: 'const LEASE_MS = 1' },

  { file: ROUTE, what: 'an unverified request is handled', find: '      if (!verdict.ok) return refuse(reply, verdict.reason)\n', replace: '' },
  { file: ROUTE, what: 'a refusal is not counted', find: '    metrics.rejected.inc({ reason })\n', replace: '' },
  { file: ROUTE, what: 'a duplicate is not counted', find: "if (outcome === 'duplicate') metrics.duplicates.inc()", replace: '' },
  { file: ROUTE, what: 'a signed body that is not JSON is refused (400)', find: 'return reply.code(202).send({ ok: false })', replace: 'return reply.code(400).send({ ok: false })' },
  { file: ROUTE, what: 'the age of a request is measured from the epoch, not its arrival', find: 'body, now: receivedAt })', replace: 'body, now: 0 })' },

  {
    file: VERIFY,
    what: 'only the last signing key counts',
    find: "Buffer.from(computeSignature(key, timestamp, body), 'hex')) || match",
    replace: "Buffer.from(computeSignature(key, timestamp, body), 'hex'))"
  },
  { file: VERIFY, what: 'a timestamp from the future is never stale', find: 'Math.abs((now ?? Date.now()) / 1000 - Number(timestamp))', replace: '((now ?? Date.now()) / 1000 - Number(timestamp))' },
  { file: VERIFY, what: 'stale at exactly the tolerance', find: ' > toleranceSeconds)', replace: ' >= toleranceSeconds)' },
  { file: VERIFY, what: 'an empty header is a bad signature, not a missing one', find: " || signature === '' || timestamp === ''", replace: '' },

  { file: MEMORY, what: 'a live claim reads as lapsed', find: 'until !== undefined && until > this.#now()', replace: 'until !== undefined && until < this.#now()' },
  { file: MEMORY, what: 'release forgets a confirmed id', find: 'if (this.#ids.get(id) !== DONE) this.#ids.delete(id)', replace: 'this.#ids.delete(id)' },
  { file: MEMORY, what: 'a claim or confirm does not make the id the newest', find: '    this.#ids.delete(id)\n    this.#ids.set(id, until)', replace: '    this.#ids.set(id, until)' },

  { file: REDIS, what: 'the claim script sets the key without NX', find: "'NX', 'PX', ARGV[2]", replace: "'PX', ARGV[2]" },
  {
    file: REDIS,
    what: 'release deletes the key whoever holds it',
    find: "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end",
    replace: "redis.call('DEL', KEYS[1])"
  },
  { file: REDIS, what: 'a claim that failed or timed out is not taken back', find: '      this.#redis.eval(RELEASE, 1, this.#prefix + id, token).catch(() => {})\n', replace: '' },
  { file: REDIS, what: 'no token is kept for a new claim (release does nothing)', find: "if (found === 'new') this.#tokens.set(id, token)", replace: '' },

  { file: QUEUE, what: 'the queue holds one more than maxSize', find: 'if (this.depth >= this.#settings.maxSize)', replace: 'if (this.depth > this.#settings.maxSize)' },
  { file: QUEUE, what: 'enqueue does not decide the next wake-up', find: '    this.#entries.push({ op, bytes, at: this.#clock.now() })\n    this.#reconcile()\n', replace: '    this.#entries.push({ op, bytes, at: this.#clock.now() })\n' },
  { file: QUEUE, what: 'a failed batch is not kept for a retry', find: '      this.#retry = entries\n', replace: '' },
  { file: QUEUE, what: 'operations a 207 rejected are counted as sent', find: 'operations.length - rejected.size)', replace: 'operations.length)' },
  { file: QUEUE, what: 'a batch answered after the close deadline is counted as well', find: '    if (batch.handedOver) return\n    this.#failures = 0\n', replace: '    this.#failures = 0\n' },
  { file: QUEUE, what: 'the backoff does not reset after a success', find: '    this.#failures = 0\n', replace: '' },
  { file: QUEUE, what: 'no backoff: the next send does not wait for notBefore', find: 'Math.max(this.#notBefore, ready ?', replace: 'Math.max(0, ready ?' },
  { file: QUEUE, what: 'Retry-After is ignored', find: 'retryAfterMs(err, this.#clock.now())', replace: 'undefined' },

  { file: OUTBOX, what: 'a batch Customer.io accepted is not acknowledged', find: '    await this.#acknowledge(redis, batch)\n    this.#metrics.sent(', replace: '    this.#metrics.sent(' },
  { file: OUTBOX, what: 'a refused batch is retried as if transient', find: 'if (!isTransient(err)) {', replace: 'if (err === undefined) {' },
  { file: OUTBOX, what: 'operations Customer.io refused are counted as sent', find: 'this.#metrics.sent(batch.length - refused.size)', replace: 'this.#metrics.sent(batch.length)' },

  { file: DELIVERIES, what: 'a later beginning replaces an earlier one', find: 'entry.beganAt = Math.min(entry.beganAt ?? event.at, event.at)', replace: 'entry.beganAt = event.at' },
  { file: DELIVERIES, what: 'an outcome does not confirm the delivery', find: '    if (event.outcome) entry.settled = true\n', replace: '' },
  { file: DELIVERIES, what: 'an expired delivery still awaits (counted at every sweep)', find: '      entry.settled = true\n      this.#awaiting.delete(id)\n', replace: '      entry.settled = true\n' },
  { file: DELIVERIES, what: 'an evicted delivery is still swept', find: '        this.#awaiting.delete(oldest)\n', replace: '' },
  { file: DELIVERIES, what: 'forgetting steps over a record still kept', find: 'if (entry.keepUntil > now) break', replace: 'if (entry.keepUntil > now) continue' },

  { file: REDIS_DELIVERIES, what: 'an outcome leaves the delivery among the deadlines', find: "  redis.call('ZREM', deadlines, id)\nelseif", replace: 'elseif' },
  { file: REDIS_DELIVERIES, what: 'an expired delivery stays among the deadlines (other instances count it too)', find: "  redis.call('ZREM', deadlines, id)\n  local key", replace: '  local key' },
  { file: REDIS_DELIVERIES, what: 'what was counted is answered again (never trimmed)', find: '      this.#counted = Number(entry.slice(0, colon))\n', replace: '' },

  { file: TRACKER, what: 'every event of a metric is measured, not only the first', find: 'if (recorded.first && recorded.beganAt', replace: 'if (recorded.beganAt' },
  { file: TRACKER, what: 'channels without receipts await an outcome', find: 'awaitsOutcome: RECEIPT_CHANNELS.has(what.channel)', replace: 'awaitsOutcome: true' },
  { file: TRACKER, what: 'a send through fastify.cio does not begin its delivery', find: "metric: '_send', at: this.#clock.now(), begins: true", replace: "metric: '_send', at: this.#clock.now(), begins: false" }
]

type Verdict = 'killed' | 'survived' | 'stale'

interface Result { readonly mutation: Mutation, readonly verdict: Verdict, readonly detail: string, readonly seconds: number }

/** Copies the working tree (without .git, node_modules and tap's results) and links node_modules into the copy. */
function makeSandbox (): string {
  const dir = mkdtempSync(join(tmpdir(), 'cio-mutate-'))
  const skip = new Set(['.git', 'node_modules', 'coverage', 'dist', join('.tap', 'test-results'), join('.tap', 'processinfo'), join('.tap', 'coverage')])
  cpSync(root, dir, { recursive: true, filter: (source) => !skip.has(relative(root, source)) })
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir')
  return dir
}

interface Run { readonly ok: boolean, readonly output: string, readonly seconds: number }

let current: ReturnType<typeof spawn> | undefined

/** Runs tap on `files` in the sandbox: no coverage, stop at the first failure, short timeouts. */
function runTap (sandbox: string, files: readonly string[]): Promise<Run> {
  const started = performance.now()
  const tap = join(sandbox, 'node_modules', 'tap', 'dist', 'esm', 'run.mjs')
  const child = spawn(process.execPath, [tap, '--disable-coverage', '--bail', `--timeout=${FILE_TIMEOUT_S}`, '--reporter=tap', ...files], {
    cwd: sandbox,
    // Fewer property cases than the full suite runs: enough to catch a queue that wedges.
    env: { ...process.env, TEST_TIMEOUT_MS: String(TEST_TIMEOUT_MS), CASES: '8', PATH: `${join(sandbox, 'node_modules', '.bin')}:${process.env.PATH ?? ''}` },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true
  })
  current = child
  let output = ''
  child.stdout.on('data', (chunk) => { output += chunk })
  child.stderr.on('data', (chunk) => { output += chunk })
  const bound = setTimeout(() => { stop(child); output += `\n# stopped after ${RUN_TIMEOUT_MS / 1000} s` }, RUN_TIMEOUT_MS)
  return new Promise((resolve) => {
    child.on('close', (code) => {
      clearTimeout(bound)
      current = undefined
      resolve({ ok: code === 0, output, seconds: (performance.now() - started) / 1000 })
    })
  })
}

/** Ends a tap run and every test process it started (they share its process group). */
function stop (child: ReturnType<typeof spawn>): void {
  try {
    process.kill(-child.pid!, 'SIGKILL')
  } catch {}
}

/** Where a run failed: file › test › assertion, from tap's output up to its first failure. */
function firstFailure (output: string): string {
  const where: string[] = []
  for (const line of output.split('\n')) {
    const subtest = /^( *)# Subtest: (.+)$/.exec(line)
    if (subtest !== null) {
      where.length = subtest[1]!.length / 4
      where.push(subtest[2]!)
    }
    const failure = /^ *not ok \d+ - (.+?)(?: # time=.*)?$/.exec(line)
    if (failure !== null) return [...where, failure[1]!].join(' › ')
  }
  return /# stopped after/.test(output) ? 'stopped: a hang' : 'tap failed without a failing test (see its output)'
}

function count (text: string, find: string): number {
  let n = 0
  for (let at = text.indexOf(find); at !== -1; at = text.indexOf(find, at + 1)) n++
  return n
}

/** Applies one mutation in the sandbox, runs its tests, and puts the file back exactly as it was. */
async function tryMutation (sandbox: string, mutation: Mutation): Promise<Result> {
  const path = join(sandbox, mutation.file)
  if (!path.startsWith(sandbox + sep)) throw new Error(`${mutation.file} is outside the sandbox`)
  const original = readFileSync(path)
  const text = original.toString('utf8')
  const found = count(text, mutation.find)
  if (found !== 1) return { mutation, verdict: 'stale', detail: found === 0 ? 'text not found' : `text found ${found} times`, seconds: 0 }
  if (mutation.find === mutation.replace) throw new Error(`"${mutation.what}" changes nothing`)
  writeFileSync(path, text.replace(mutation.find, () => mutation.replace))
  restoring = () => { writeFileSync(path, original) }
  let run: Run
  try {
    run = await runTap(sandbox, TESTS[mutation.file]!)
  } finally {
    writeFileSync(path, original)
    restoring = undefined
  }
  if (!readFileSync(path).equals(original)) throw new Error(`${mutation.file} was not restored`)
  return run.ok
    ? { mutation, verdict: 'survived', detail: 'every test passed', seconds: run.seconds }
    : { mutation, verdict: 'killed', detail: firstFailure(run.output), seconds: run.seconds }
}

let restoring: (() => void) | undefined
let sandbox: string | undefined

function cleanUp (): void {
  if (current !== undefined) stop(current)
  restoring?.()
  if (sandbox !== undefined) rmSync(sandbox, { recursive: true, force: true })
  sandbox = undefined
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    cleanUp()
    console.log(`\ninterrupted (${signal}): the copy is removed; this tree was never changed`)
    process.exit(130)
  })
}

const pad = (s: string, n: number) => s.padEnd(n)
const args = process.argv.slice(2)
const texts = args.filter((a) => a !== '--list')
const chosen = MUTATIONS.filter((m) => texts.length === 0 || texts.some((a) => m.file.includes(a) || m.what.includes(a)))

if (args.includes('--list')) {
  for (const [i, m] of chosen.entries()) {
    const found = count(readFileSync(join(root, m.file), 'utf8'), m.find)
    console.log(`${String(i + 1).padStart(2)}  ${found === 1 ? '     ' : 'STALE'}  ${pad(m.file, 38)} ${m.what}`)
  }
  process.exit(0)
}

const started = performance.now()
try {
  sandbox = makeSandbox()
  const files = [...new Set(chosen.flatMap((m) => TESTS[m.file]!))]
  console.log(`${chosen.length} mutations of ${new Set(chosen.map((m) => m.file)).size} files; a copy of this tree in ${sandbox}`)
  const baseline = await runTap(sandbox, files)
  if (!baseline.ok) {
    console.log(baseline.output)
    console.log(`\nthe tests fail without any mutation (${firstFailure(baseline.output)}): nothing to learn from mutants`)
    process.exitCode = 2
  } else {
    console.log(`baseline: ${files.length} test files pass in ${baseline.seconds.toFixed(1)} s\n`)
    const results: Result[] = []
    for (const mutation of chosen) {
      const result = await tryMutation(sandbox, mutation)
      results.push(result)
      const mark = { killed: 'killed  ', survived: 'SURVIVED', stale: 'STALE   ' }[result.verdict]
      console.log(`${mark} ${pad(mutation.file.replace(/^lib\//, ''), 34)} ${pad(mutation.what, 66)} ${result.seconds.toFixed(1).padStart(5)} s  ${result.detail}`)
    }
    console.log(`\n${pad('file', 34)} killed survived stale`)
    for (const file of Object.keys(TESTS)) {
      const mine = results.filter((r) => r.mutation.file === file)
      if (mine.length === 0) continue
      const n = (v: Verdict) => String(mine.filter((r) => r.verdict === v).length).padStart(6)
      console.log(`${pad(file.replace(/^lib\//, ''), 34)} ${n('killed')} ${n('survived')} ${n('stale')}`)
    }
    const killed = results.filter((r) => r.verdict === 'killed').length
    console.log(`\n${killed} of ${results.length} killed in ${((performance.now() - started) / 1000).toFixed(0)} s`)
    if (killed !== results.length) process.exitCode = 1
  }
} finally {
  cleanUp()
}
