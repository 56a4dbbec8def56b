import { CioInvalidOptionsError } from './errors.ts'

// Shared by every option section. Messages name the option, never its value: values may be secrets.

export function invalid (name: string, why: string): never {
  throw new CioInvalidOptionsError(name, why)
}

export function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Checks one option: its default when the caller left it out, the checked value otherwise. */
export interface Rule<V> {
  readonly default: V
  readonly check: (value: unknown, name: string) => V
}

/** One rule per key of an options interface: a key the type has and the rules lack (or the reverse) fails to compile. */
export type Rules<T> = { readonly [K in keyof T]-?: Rule<T[K] | undefined> }

/** The resolved section: every key present, with the type its rule produces. */
export type Settings<R> = { readonly [K in keyof R]: R[K] extends Rule<infer V> ? V : never }

function rule<V> (fallback: V, check: (value: unknown, name: string) => V): Rule<V> {
  return Object.freeze({ default: fallback, check: (value: unknown, name: string) => value === undefined ? fallback : check(value, name) })
}

function checkInteger (value: unknown, name: string, min: number, max: number): number {
  if (!Number.isInteger(value) || (value as number) < min || (value as number) > max) {
    invalid(name, `must be an integer from ${min} to ${max}`)
  }
  return value as number
}

export const integer = <V extends number | undefined>(fallback: V, min: number, max = Number.MAX_SAFE_INTEGER): Rule<number | V> =>
  rule<number | V>(fallback, (value, name) => checkInteger(value, name, min, max))

function checkString (value: unknown, name: string): string {
  if (typeof value !== 'string' || value.length === 0) invalid(name, 'must be a non-empty string')
  return value
}

export const string = (): Rule<string | undefined> => rule<string | undefined>(undefined, checkString)

export const path = (fallback: string): Rule<string> => rule(fallback, (value, name) => {
  if (!checkString(value, name).startsWith('/')) invalid(name, "must start with '/'")
  return value as string
})

export const boolean = (fallback: boolean): Rule<boolean> => rule(fallback, (value, name) => {
  if (typeof value !== 'boolean') invalid(name, 'must be a boolean')
  return value
})

export const callback = <F extends (...args: never[]) => unknown>(): Rule<F | undefined> => rule<F | undefined>(undefined, (value, name) => {
  if (typeof value !== 'function') invalid(name, 'must be a function')
  return value as F
})

/** A rule whose check the section writes itself (a union, a store, an env fallback). */
export const custom = <V>(fallback: V, check: (value: unknown, name: string) => V): Rule<V> => rule(fallback, check)

/** A frozen copy without the keys left undefined, e.g. so an SDK's own defaults hold for them. */
export function defined<T extends object> (value: T): Readonly<Partial<T>> {
  return Object.freeze(Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined))) as Partial<T>
}

export function defaultsOf<R extends Record<string, Rule<unknown>>> (rules: R): Settings<R> {
  return Object.freeze(Object.fromEntries(Object.entries(rules).map(([key, r]) => [key, r.default]))) as Settings<R>
}

/**
 * Resolves one option section: `undefined` means all defaults; an unknown key fails loudly
 * instead of being ignored (a typo); each known key goes through its rule.
 */
export function resolveSection<R extends Record<string, Rule<unknown>>> (name: string, value: unknown, rules: R, what = 'must be false or an object'): Settings<R> {
  const given = value ?? {}
  if (!isObject(given)) invalid(name, what)
  for (const key of Object.keys(given)) {
    if (!Object.hasOwn(rules, key)) invalid(name === '' ? key : `${name}.${key}`, 'is not a known option')
  }
  const out: Record<string, unknown> = {}
  for (const [key, r] of Object.entries(rules)) out[key] = r.check(given[key], name === '' ? key : `${name}.${key}`)
  return Object.freeze(out) as Settings<R>
}
