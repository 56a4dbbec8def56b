/** Time and timers, injectable so tests decide when a delay has passed instead of waiting for it. */
export interface Clock {
  now: () => number
  /** A handle with `unref()`, like Node's, lets the caller keep an idle timer from holding the process open. */
  setTimeout: (fn: () => void, ms: number) => unknown
  clearTimeout: (handle: unknown) => void
}

export const systemClock: Clock = Object.freeze({
  now: () => Date.now(),
  setTimeout: (fn: () => void, ms: number) => setTimeout(fn, ms),
  clearTimeout: (handle: unknown) => { clearTimeout(handle as NodeJS.Timeout) }
})
