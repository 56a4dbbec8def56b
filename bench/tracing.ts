/** Calls with tracing sampled out (an SDK present, nothing recorded) against tracing recording every call. */
import { context, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider, InMemorySpanExporter, SamplingDecision, SimpleSpanProcessor, type Sampler } from '@opentelemetry/sdk-trace-base'
import { alternate, median, row, timed, type Row } from './harness.ts'
import { simulatedApp } from './simulated-app.ts'

const CALLS = 3_000

export async function benchTracing (): Promise<Row[]> {
  let recording = false
  // One global provider for the process; this sampler switches recording on and off between rounds.
  const sampler: Sampler = { shouldSample: () => ({ decision: recording ? SamplingDecision.RECORD_AND_SAMPLED : SamplingDecision.NOT_RECORD }), toString: () => 'switch' }
  const exporter = new InMemorySpanExporter()
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  trace.setGlobalTracerProvider(new BasicTracerProvider({ sampler, spanProcessors: [new SimpleSpanProcessor(exporter)] }))

  const { sim, app } = await simulatedApp({ appApiKey: undefined, client: { retry: { maxRetries: 0 } } })
  const calls = (on: boolean) => () => timed(async () => {
    recording = on
    let next = 0
    await Promise.all(Array.from({ length: 16 }, async () => { while (next++ < CALLS) await app.cio.identify('person-1', {}) }))
    exporter.reset()
    sim.requests.length = 0
  })
  const samples = await alternate(calls(false), calls(true))
  const cpu = (s: { cpuMs: number }) => (s.cpuMs * 1000) / CALLS
  await app.close()
  await sim.close()
  const off = median(samples.baseline.map(cpu))
  const on = median(samples.candidate.map(cpu))
  return [row('tracing', 'CPU per call, recording (baseline: sampled out)', off, on, 'µs/call', 'off adds nothing measurable (see calls rows)', true)]
}
