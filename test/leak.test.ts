import t from 'tap'
import { execFileSync } from 'node:child_process'

t.test('400 register/close cycles retain under 5 KiB each and leave no timer, observer or monitor running', async (t) => {
  const out = execFileSync(process.execPath, ['--expose-gc', new URL('./fixtures/register-close.ts', import.meta.url).pathname, '400'], { encoding: 'utf8' })
  const { bytesPerCycle, before, after } = JSON.parse(out) as { bytesPerCycle: number, before: string[], after: string[] }
  t.ok(bytesPerCycle < 5 * 1024, `${(bytesPerCycle / 1024).toFixed(2)} KiB retained per cycle`)
  t.same(after, before, 'the same resources are active after 400 more apps')
})
