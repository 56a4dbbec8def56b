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

/** What {@link within} answers when the promise did not settle in time. */
export const LATE = Symbol('late')

/** `promise`'s outcome, or {@link LATE} if it has not settled within `ms`; the timer never holds the process open. */
export async function within<T> (promise: Promise<T>, ms: number): Promise<T | typeof LATE> {
  const until = deadline(ms)
  try {
    return await until.race(promise)
  } finally {
    until.clear()
  }
}

/**
 * One deadline for every wait of a request: its timer is made only when something has to be
 * raced, once, and cleared by `clear()`.
 */
export function deadline (ms: number): { race: <T>(promise: Promise<T>) => Promise<T | typeof LATE>, clear: () => void } {
  let timer: NodeJS.Timeout | undefined
  let late: Promise<typeof LATE> | undefined
  return {
    race: (promise) => {
      late ??= new Promise((resolve) => {
        timer = setTimeout(resolve, Math.max(0, ms), LATE)
        timer.unref()
      })
      return Promise.race([promise, late])
    },
    clear: () => { clearTimeout(timer) }
  }
}
