import type { FastifyRequest } from 'fastify'
import { callback, custom, defaultsOf, integer, invalid, isObject, path, resolveSection, type Rules, type Settings } from '../validation.ts'
import { MemoryDedupeStore, noDedupe, type DedupeStore } from './dedupe.ts'
import type { CioWebhookEvent } from './events.ts'

export interface CioWebhookOptions {
  /** Route path. Default `/webhooks/customerio`. */
  path?: string
  /** The reporting webhook's signing key; several during a rotation. Default `CUSTOMERIO_WEBHOOK_SIGNING_KEY` (comma-separated). */
  signingKeys?: string | readonly string[]
  /** Refuse requests whose `X-CIO-Timestamp` is further than this from now. Default: no age limit (Customer.io retries for 7 days). */
  toleranceSeconds?: number
  /** Largest accepted body in bytes. Default 1 MiB. */
  bodyLimit?: number
  /** Remember this many event ids in memory, or use a shared store, or `false`. Default `{ size: 100_000 }`. */
  dedupe?: false | { size: number } | DedupeStore
  /** Called once per verified, new event; a throw answers 500 so Customer.io retries. */
  onEvent?: (event: CioWebhookEvent, request: FastifyRequest) => void | Promise<void>
}

const DEDUPE_SIZE = 100_000

function checkKeys (value: unknown, name: string): readonly string[] {
  const keys = typeof value === 'string' ? [value] : value
  if (!Array.isArray(keys) || keys.length === 0 || keys.some((key) => typeof key !== 'string' || key.length === 0)) {
    invalid(name, 'must be a non-empty string or a non-empty array of them')
  }
  return Object.freeze([...keys as string[]])
}

function checkDedupe (value: unknown, name: string): DedupeStore {
  if (value === false) return noDedupe
  if (!isObject(value)) invalid(name, 'must be false, { size } or a store with has() and add()')
  if (typeof value.has === 'function' && typeof value.add === 'function') return value as unknown as DedupeStore
  return new MemoryDedupeStore(resolveSection(name, value, { size: integer(DEDUPE_SIZE, 1, 10_000_000) }).size)
}

const RULES = {
  path: path('/webhooks/customerio'),
  signingKeys: custom<readonly string[] | undefined>(undefined, checkKeys),
  toleranceSeconds: integer(undefined, 1),
  bodyLimit: integer(1024 * 1024, 1, 100 * 1024 * 1024),
  // A store is made per registration: the default is built in resolveWebhookOptions, not shared.
  dedupe: custom<DedupeStore | undefined>(undefined, checkDedupe),
  onEvent: callback<NonNullable<CioWebhookOptions['onEvent']>>()
} satisfies Rules<CioWebhookOptions>

export const WEBHOOK_DEFAULTS = Object.freeze({ ...defaultsOf(RULES), dedupe: { size: DEDUPE_SIZE } })

export type WebhookSettings = Settings<typeof RULES> & { readonly signingKeys: readonly string[], readonly dedupe: DedupeStore }

/**
 * `false` when off: `webhook: false`, or no option and no `CUSTOMERIO_WEBHOOK_SIGNING_KEY`
 * (an app that only wants client metrics). The keys come from the option or the variable.
 */
export function resolveWebhookOptions (value: unknown, keysFromEnv: string | undefined): false | WebhookSettings {
  if (value === false || (value === undefined && keysFromEnv === undefined)) return false
  const settings = resolveSection('webhook', value, RULES)
  return Object.freeze({
    ...settings,
    signingKeys: settings.signingKeys ?? envKeys(keysFromEnv),
    dedupe: settings.dedupe ?? new MemoryDedupeStore(DEDUPE_SIZE)
  })
}

function envKeys (fromEnv: string | undefined): readonly string[] {
  if (fromEnv === undefined) invalid('webhook.signingKeys', 'is required (or CUSTOMERIO_WEBHOOK_SIGNING_KEY) when webhook is set')
  const keys = fromEnv.split(',').map((key) => key.trim())
  if (keys.some((key) => key === '')) invalid('CUSTOMERIO_WEBHOOK_SIGNING_KEY', 'must be a comma-separated list of non-empty keys')
  return Object.freeze(keys)
}
