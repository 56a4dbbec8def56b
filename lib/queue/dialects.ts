import { CioInvalidOperationError } from '../errors.ts'
import { withEventId, withId } from '../client/event-id.ts'
import type { QueueName } from '../labels.ts'
import type { BatchOperation, QueueItem } from './options.ts'

type Id = string | number
type Attributes = Record<string, unknown>
export interface QueueEvent { name: string, data?: Attributes, timestamp?: number }

/** What differs between the APIs a queue sends through; everything else about the queue is shared. */
export interface Dialect {
  /** Checks a raw operation or item; answers it with its idempotency id (a copy, when one is added). */
  readonly prepare: (value: unknown) => QueueItem
  /** Customer.io refuses a larger operation or item. */
  readonly maxItemBytes: number
  /** What the SDK adds to each item on the wire, counted so items and batches stay within the limits. */
  readonly addedBytes: number
  readonly identify: (id: Id, attributes: Attributes) => QueueItem
  readonly track: (id: Id, event: QueueEvent) => QueueItem
  readonly trackAnonymous: (anonymousId: Id, event: QueueEvent) => QueueItem
  readonly trackPageView: (id: Id, path: string) => QueueItem
  readonly destroy: (id: Id) => QueueItem
  readonly suppress: (id: Id) => QueueItem
  readonly unsuppress: (id: Id) => QueueItem
  readonly addDevice: (id: Id, deviceId: string, platform: string, data: Attributes) => QueueItem
  readonly deleteDevice: (id: Id, deviceId: string) => QueueItem
  readonly group: (id: Id, groupId: Id, traits?: Attributes) => QueueItem
  readonly alias: (id: Id, previousId: Id) => QueueItem
}

function fail (message: string): never { throw new CioInvalidOperationError(message) }

function text (value: unknown, message: string): string { return typeof value === 'string' && value !== '' ? value : fail(message) }

function named (event: unknown, method: string): QueueEvent {
  text((event as { name?: unknown } | undefined)?.name, `${method} needs data.name`)
  return event as QueueEvent
}

function only (api: string, method: string): () => never {
  return () => fail(`${method} is ${api}-only; this queue sends through ${api === 'Track' ? 'Data Pipelines' : 'Track'}`)
}

function checkId (id: unknown, message: string): Id { return (typeof id === 'string' && id !== '') || typeof id === 'number' ? id : fail(message) }

function person (id: Id, action: string, extra: Attributes = {}): BatchOperation {
  return { type: 'person', identifiers: { id: checkId(id, `${action} needs a customer id`) }, action, ...extra }
}

function trackEvent (operation: BatchOperation, event: unknown, method: string): BatchOperation {
  const { name, data, timestamp } = named(event, method)
  return { ...operation, name, attributes: data ?? {}, ...(timestamp === undefined ? {} : { timestamp }) }
}

/** Track v2 actions that record an event, and so carry an idempotency `id`. */
const EVENT_ACTIONS = new Set(['event', 'page', 'screen'])

const TRACK: Dialect = {
  prepare (value) {
    const op = value as BatchOperation | null
    if (typeof op?.type !== 'string' || typeof op.action !== 'string') fail('an operation needs string "type" and "action"')
    return EVENT_ACTIONS.has(op.action) ? withEventId(op) : op
  },
  // customerio-facts §3.3.
  maxItemBytes: 32 * 1024,
  addedBytes: 0,
  identify: (id, attributes) => person(id, 'identify', { attributes }),
  track: (id, event) => trackEvent(person(id, 'event'), event, 'track'),
  trackAnonymous: (anonymousId, event) => trackEvent({ type: 'person', action: 'event', anonymous_id: checkId(anonymousId, 'trackAnonymous needs an anonymous id') }, event, 'trackAnonymous'),
  trackPageView: (id, path) => person(id, 'page', { name: text(path, 'trackPageView needs a path') }),
  destroy: (id) => person(id, 'delete'),
  suppress: (id) => person(id, 'suppress'),
  unsuppress: (id) => person(id, 'unsuppress'),
  addDevice: (id, deviceId, platform, data) => person(id, 'add_device', {
    device: { token: text(deviceId, 'addDevice needs a device id'), platform: text(platform, 'addDevice needs a platform'), attributes: data }
  }),
  deleteDevice: (id, deviceId) => person(id, 'delete_device', { device: { token: text(deviceId, 'deleteDevice needs a device id') } }),
  group: only('Pipelines', 'group'),
  alias: only('Pipelines', 'alias')
}

/** Set, as the SDK's `isEmpty` sees it: a non-blank string or a finite number. */
const present = (value: unknown): boolean => typeof value === 'string' ? value.trim() !== '' : Number.isFinite(value)

/** What the SDK requires of each item type besides `userId` or `anonymousId` (an alias: `userId` itself). */
const REQUIRED: Readonly<Record<string, readonly string[]>> = { identify: [], track: ['event'], page: [], screen: [], group: ['groupId'], alias: ['userId', 'previousId'] }

function pipelinesEvent (who: Attributes, event: unknown, method: string): QueueItem {
  const { name, data, timestamp } = named(event, method)
  const time = new Date(typeof timestamp === 'number' ? timestamp * 1000 : NaN)
  if (timestamp !== undefined && Number.isNaN(time.getTime())) fail('timestamp must be Unix seconds')
  return { type: 'track', ...who, event: name, properties: data ?? {}, ...(timestamp === undefined ? {} : { timestamp: time.toISOString() }) }
}

const PIPELINES: Dialect = {
  prepare (value) {
    const item = (typeof value === 'object' && value !== null ? value : {}) as Attributes
    const type = item.type
    if (typeof type !== 'string' || !Object.hasOwn(REQUIRED, type)) fail(`an item needs "type" ${Object.keys(REQUIRED).join(', ')}`)
    if (type !== 'alias' && !present(item.userId) && !present(item.anonymousId)) fail(`a ${type} item needs userId or anonymousId`)
    for (const field of REQUIRED[type]) if (!present(item[field])) fail(`a ${type} item needs ${field}`)
    return withId(item as QueueItem, 'messageId')
  },
  // [CDP-SPEC]: each item of a batch, like a single call.
  maxItemBytes: 32 * 1024,
  // The `timestamp` and `context.library` the SDK fills in.
  addedBytes: 128,
  identify: (userId, traits) => ({ type: 'identify', userId, traits }),
  track: (userId, event) => pipelinesEvent({ userId }, event, 'track'),
  trackAnonymous: (anonymousId, event) => pipelinesEvent({ anonymousId }, event, 'trackAnonymous'),
  trackPageView: (userId, path) => ({ type: 'page', userId, name: text(path, 'trackPageView needs a path') }),
  group: (userId, groupId, traits = {}) => ({ type: 'group', userId, groupId, traits }),
  alias: (userId, previousId) => ({ type: 'alias', userId, previousId }),
  destroy: only('Track', 'destroy'),
  suppress: only('Track', 'suppress'),
  unsuppress: only('Track', 'unsuppress'),
  addDevice: only('Track', 'addDevice'),
  deleteDevice: only('Track', 'deleteDevice')
}

export const DIALECTS: Readonly<Record<QueueName, Dialect>> = { track: TRACK, pipelines: PIPELINES }
