import type { FastifyRateLimitStore } from '@fastify/rate-limit'

interface Window { count: number, startedMs: number }

/**
 * A fixed-window counter per key in this process, for @fastify/rate-limit's `store` option.
 * Instead of the plugin's LocalStore, whose `incr` hands back its live counter object: the plugin
 * reads that object after an `await`, so requests counted in the same tick (the items of a batch,
 * a burst) all saw the count of the last one, and with a limit of 3 a batch of 5 was refused
 * entirely. Here each call gets its own snapshot. Bounded: above `maxKeys` the oldest window goes.
 */
export class MemoryLimitStore implements FastifyRateLimitStore {
  private readonly windows = new Map<string, Window>()

  /** `now`: the clock windows are measured with (tests pass one they move). */
  constructor (_options?: unknown, private readonly maxKeys = 10_000, private readonly now: () => number = Date.now) {}

  incr (key: string, callback: (error: Error | null, result?: { current: number, ttl: number }) => void, timeWindow = 60_000): void {
    const now = this.now()
    let window = this.windows.get(key)
    if (window === undefined || window.startedMs + timeWindow <= now) {
      window = { count: 0, startedMs: now }
      // Re-inserted, so the Map's order stays "oldest window first" for eviction.
      this.windows.delete(key)
      this.windows.set(key, window)
      if (this.windows.size > this.maxKeys) this.windows.delete(this.windows.keys().next().value as string)
    }
    window.count++
    callback(null, { current: window.count, ttl: window.startedMs + timeWindow - now })
  }

  child (): FastifyRateLimitStore {
    return new MemoryLimitStore(undefined, this.maxKeys)
  }
}
