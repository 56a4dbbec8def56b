import t from 'tap'
import { execFileSync } from 'node:child_process'

t.test('400 register/close cycles retain under 5 KiB each and leave no timer, observer or monitor running', async (t) => {
  const out = execFileSync(process.execPath, ['--expose-gc', new URL('./fixtures/register-close.ts', import.meta.url).pathname, '400'], { encoding: 'utf8' })
  const { bytesPerCycle, before, after } = JSON.parse(out) as { bytesPerCycle: number, before: string[], after: string[] }
  t.ok(bytesPerCycle < 5 * 1024, `${(bytesPerCycle / 1024).toFixed(2)} KiB retained per cycle`)
  t.same(after, before, 'the same resources are active after 400 more apps')
})

t.test('a memory delivery store churning below its bound keeps only what it holds (a Map iterator standing still kept every table it outgrew)', async (t) => {
  const out = execFileSync(process.execPath, ['--expose-gc', new URL('./fixtures/delivery-churn.ts', import.meta.url).pathname, '1000000'], { encoding: 'utf8' })
  const { held, retained } = JSON.parse(out) as { held: number, retained: number }
  t.ok(held < 10_000, `${held} deliveries held`)
  t.ok(retained < 30 * 2 ** 20, `${(retained / 2 ** 20).toFixed(1)} MiB retained`)
})
