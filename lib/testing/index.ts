export { createCioSimulator, CioSimulator, type EventType, type DeliverOptions, type Fault, type PipelinesCall, type PipelinesType, type RecordedEvent, type RecordedRequest, type SimulatorOptions } from './simulator.ts'
export { signWebhook } from './sign.ts'
export { webhookEvent, unrecognisedWebhookEvent, eventId, type WebhookEnvelope } from './events.ts'
