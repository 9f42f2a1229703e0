/**
 * Protects Synapse and the gateway from each other: a cap on requests in flight, with a bounded
 * queue in front of it (a burst waits up to `queueTimeoutMs` instead of being refused), and a
 * circuit breaker that stops sending while Synapse itself keeps failing, then lets exactly one
 * trial request through to see whether it recovered.
 */
export type GuardRefusal = 'saturated' | 'circuit_open'

export interface GuardOptions {
  maxInFlight: number
  /** How long a request may wait for a free slot (0: refused at once when all are taken). */
  queueTimeoutMs?: number
  /** Requests waiting at most; beyond that, refused at once. */
  maxQueued?: number
  /** Consecutive failures that open the circuit. */
  failureThreshold?: number
  /** How long the circuit stays open before one trial request is let through. */
  openMs?: number
}

/** What `enter` hands out: `leave` must be called with it exactly once. */
export interface Slot { readonly trial: boolean }
const ORDINARY: Slot = { trial: false }
const TRIAL: Slot = { trial: true }

interface Waiter { resolve: (slot: Slot | GuardRefusal) => void, timer: NodeJS.Timeout }

export type CircuitState = 'closed' | 'open' | 'half_open'

export class SynapseGuard {
  private inFlight = 0
  private consecutiveFailures = 0
  private openUntil = 0
  private trialInFlight = false
  private readonly queue: Waiter[] = []
  private readonly failureThreshold: number
  private readonly openMs: number
  private readonly queueTimeoutMs: number
  private readonly maxQueued: number

  constructor (private readonly options: GuardOptions) {
    this.failureThreshold = options.failureThreshold ?? 5
    this.openMs = options.openMs ?? 5000
    this.queueTimeoutMs = options.queueTimeoutMs ?? 0
    this.maxQueued = options.maxQueued ?? options.maxInFlight * 16
  }

  /** Seconds until the circuit lets a trial through (for Retry-After). */
  get retryAfterS (): number {
    return Math.max(1, Math.ceil((this.openUntil - Date.now()) / 1000))
  }

  get active (): number { return this.inFlight }
  get queued (): number { return this.queue.length }

  get circuit (): CircuitState {
    if (this.consecutiveFailures < this.failureThreshold) return 'closed'
    return Date.now() < this.openUntil ? 'open' : 'half_open'
  }

  /**
   * A slot, or why not. Synchronous when a slot is free (the common case costs no promise);
   * otherwise a promise that settles when one frees up or the queue timeout passes.
   */
  enter (): Slot | GuardRefusal | Promise<Slot | GuardRefusal> {
    const circuit = this.circuitCheck()
    if (circuit !== undefined) return circuit
    if (this.inFlight < this.options.maxInFlight) return this.take()
    if (this.queueTimeoutMs === 0 || this.queue.length >= this.maxQueued) return 'saturated'
    return new Promise((resolve) => {
      const waiter: Waiter = {
        resolve,
        timer: setTimeout(() => {
          const index = this.queue.indexOf(waiter)
          if (index !== -1) this.queue.splice(index, 1)
          resolve('saturated')
        }, this.queueTimeoutMs)
      }
      this.queue.push(waiter)
    })
  }

  /** `failed`: the call showed that Synapse itself is unhealthy (not that one room or user is). */
  leave (slot: Slot, failed: boolean): void {
    this.inFlight--
    if (slot.trial) this.trialInFlight = false
    if (!failed) {
      this.consecutiveFailures = 0
    } else if (++this.consecutiveFailures >= this.failureThreshold) {
      this.openUntil = Date.now() + this.openMs
    }
    this.admitWaiters()
  }

  /** Refusal while open; in the half-open state only the one trial passes (marked on its slot). */
  private circuitCheck (): GuardRefusal | undefined {
    if (this.consecutiveFailures < this.failureThreshold) return undefined
    if (Date.now() < this.openUntil || this.trialInFlight) return 'circuit_open'
    return undefined
  }

  private take (): Slot {
    this.inFlight++
    if (this.consecutiveFailures >= this.failureThreshold) {
      this.trialInFlight = true
      return TRIAL
    }
    return ORDINARY
  }

  private admitWaiters (): void {
    while (this.queue.length > 0 && this.inFlight < this.options.maxInFlight) {
      const waiter = this.queue.shift() as Waiter
      clearTimeout(waiter.timer)
      const circuit = this.circuitCheck()
      waiter.resolve(circuit ?? this.take())
    }
  }
}
