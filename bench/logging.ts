/** A failed-call log line through the plugin's sanitising serializer against a plain pino line of the same shape. */
import { Writable } from 'node:stream'
import pino from 'pino'
import { CustomerIORequestError } from 'customerio-node'
import { sanitize } from '../lib/monitoring/sanitize.ts'
import { alternate, median, row, timed, type Row } from './harness.ts'

const LINES = 100_000

export async function benchLogging (): Promise<Row[]> {
  const sink = new Writable({ write (_chunk, _encoding, done) { done() } })
  const plain = pino({ level: 'info' }, sink).child({ plugin: 'customerio' })
  const sanitised = pino({ level: 'info' }, sink).child({ plugin: 'customerio' }, { serializers: { err: (err: unknown) => sanitize(err, ['sk-secret']) } })
  const err = new CustomerIORequestError({ meta: { error: 'attribute email is invalid for person jane@example.com' } }, 422, { statusCode: 422, headers: {}, ok: false }, '{}')
  const fields = { api: 'track', operation: 'identify', status: 422, attempts: 1, duration_seconds: 0.0123, error_type: '422', err }
  const lines = (log: pino.Logger) => () => timed(async () => { for (let i = 0; i < LINES; i++) log.warn(fields, 'customer.io call failed') })
  const samples = await alternate(lines(plain), lines(sanitised))
  const us = (s: { cpuMs: number }) => (s.cpuMs * 1000) / LINES
  const base = median(samples.baseline.map(us))
  const ours = median(samples.candidate.map(us))
  return [row('logging', 'failed-call line with err (CPU)', base, ours, 'µs/line', 'ratio ≤ 1.5', ours / base <= 1.5)]
}
