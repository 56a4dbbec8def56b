export { createCioSimulator, CioSimulator, type Fault, type RecordedRequest, type SimulatorOptions } from './simulator.ts'
export { signWebhook } from './sign.ts'
export { webhookEvent, eventId } from './events.ts'
