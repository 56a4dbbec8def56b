import { custom, defaultsOf, integer, invalid, isObject, resolveSection, type Rules, type Settings } from '../../validation.ts'
import type { DeliveryStore } from './store.ts'

/** Delivery tracking: how long messages take to arrive, and which never do. */
export interface CioDeliveryOptions {
  /** How long after it began a delivery may reach an outcome before it counts as unconfirmed. Default 900. */
  confirmWithinSeconds?: number
  /** `{ size }` of the memory store (default 100 000), or a shared store such as `RedisDeliveryStore`. */
  store?: DeliveryStore | { size?: number }
}

const isStore = (value: Record<string, unknown>): boolean => typeof value.record === 'function' && typeof value.expire === 'function'

const RULES = {
  confirmWithinSeconds: integer(900, 1, 7 * 86_400),
  store: custom<DeliveryStore | { size: number }>({ size: 100_000 }, (value, name) => {
    if (!isObject(value)) invalid(name, 'must be { size } or a store with record() and expire()')
    if (isStore(value)) return value as unknown as DeliveryStore
    return resolveSection(name, value, { size: integer(100_000, 1, 10_000_000) })
  })
} satisfies Rules<CioDeliveryOptions>

export type DeliverySettings = Settings<typeof RULES>
export const DELIVERY_DEFAULTS = defaultsOf(RULES)

/** The section's settings, or false. On by default whenever the webhook route is on: it needs the route's events. */
export function resolveDeliveryOptions (value: unknown, webhookOn: boolean): DeliverySettings | false {
  if (value === false || (value === undefined && !webhookOn)) return false
  if (!webhookOn) invalid('delivery', 'needs the webhook route: set a signing key (webhook.signingKeys or CUSTOMERIO_WEBHOOK_SIGNING_KEY)')
  return resolveSection('delivery', value, RULES)
}
