/**
 * Protects Synapse and the gateway from each other: a cap on requests in flight (the excess is
 * refused at once instead of queueing without bound), and a circuit breaker that stops sending
 * while Synapse keeps failing, then lets one trial request through to see if it recovered.
 */
export type GuardRefusal = 'saturated' | 'circuit_open'

export interface GuardOptions {
  maxInFlight: number
  /** Consecutive failures that open the circuit. */
  failureThreshold?: number
  /** How long the circuit stays open before one trial request is let through. */
  openMs?: number
}

export class SynapseGuard {
  private inFlight = 0
  private consecutiveFailures = 0
  private openUntil = 0
  private trialInFlight = false
  private readonly failureThreshold: number
  private readonly openMs: number

  constructor (private readonly options: GuardOptions) {
    this.failureThreshold = options.failureThreshold ?? 5
    this.openMs = options.openMs ?? 5000
  }

  /** Seconds until the circuit lets a trial through (for Retry-After). */
  get retryAfterS (): number {
    return Math.max(1, Math.ceil((this.openUntil - Date.now()) / 1000))
  }

  /** Returns a refusal, or undefined when the call may go ahead (then `leave` must follow). */
  enter (): GuardRefusal | undefined {
    if (this.consecutiveFailures >= this.failureThreshold) {
      if (Date.now() < this.openUntil || this.trialInFlight) return 'circuit_open'
      this.trialInFlight = true
    }
    if (this.inFlight >= this.options.maxInFlight) {
      this.trialInFlight = false
      return 'saturated'
    }
    this.inFlight++
    return undefined
  }

  leave (failed: boolean): void {
    this.inFlight--
    this.trialInFlight = false
    if (!failed) {
      this.consecutiveFailures = 0
      return
    }
    this.consecutiveFailures++
    if (this.consecutiveFailures >= this.failureThreshold) this.openUntil = Date.now() + this.openMs
  }
}
