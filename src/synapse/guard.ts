/**
 * Protects Synapse and the gateway from each other: a cap on requests in flight, with a bounded
 * queue in front of it (a burst waits up to `queueTimeoutMs` instead of being refused), and a
 * circuit breaker per kind of call (user_lookup, join, kick, room_state…) that stops sending that
 * kind while Synapse keeps failing it, then lets exactly one trial request of it through to see
 * whether it recovered. Per kind, so a failing join endpoint opens the breaker for joins even while
 * lookups succeed, and reads keep working; when Synapse is down as a whole, every kind fails and
 * opens on its own.
 */
export type GuardRefusal = 'saturated' | 'circuit_open'

export interface GuardOptions {
  maxInFlight: number
  /** How long a request may wait for a free slot (0: refused at once when all are taken). */
  queueTimeoutMs?: number
  /** Requests waiting at most; beyond that, refused at once. */
  maxQueued?: number
  /** Consecutive failures of one kind of call that open its circuit. */
  failureThreshold?: number
  /** How long a circuit stays open before one trial request is let through. */
  openMs?: number
  /** The clock the circuits read (milliseconds); tests pass their own. */
  now?: () => number
}

/** What `enter` hands out: `leave` must be called with it exactly once. */
export interface Slot { readonly kind: string, readonly trial: boolean }

interface Waiter { kind: string, resolve: (slot: Slot | GuardRefusal) => void, timer: NodeJS.Timeout }

export type CircuitState = 'closed' | 'open' | 'half_open'

interface Circuit { failures: number, openUntil: number, trialInFlight: boolean, ordinary: Slot, trial: Slot }

const SEVERITY: Record<CircuitState, number> = { closed: 0, half_open: 1, open: 2 }

export class SynapseGuard {
  private inFlight = 0
  private readonly circuits = new Map<string, Circuit>()
  private readonly queue: Waiter[] = []
  private readonly failureThreshold: number
  private readonly openMs: number
  private readonly queueTimeoutMs: number
  private readonly maxQueued: number
  private readonly now: () => number

  constructor (private readonly options: GuardOptions) {
    this.failureThreshold = options.failureThreshold ?? 5
    this.openMs = options.openMs ?? 5000
    this.queueTimeoutMs = options.queueTimeoutMs ?? 0
    this.maxQueued = options.maxQueued ?? options.maxInFlight * 16
    this.now = options.now ?? Date.now
  }

  /** Seconds until the kind's circuit lets a trial through (for Retry-After); at least 1. */
  retryAfterS (kind?: string): number {
    const circuits = kind === undefined ? [...this.circuits.values()] : [this.circuitOf(kind)]
    const openUntil = Math.max(0, ...circuits.map((circuit) => circuit.openUntil))
    return Math.max(1, Math.ceil((openUntil - this.now()) / 1000))
  }

  get active (): number { return this.inFlight }
  get queued (): number { return this.queue.length }

  /** One kind's circuit. */
  stateOf (kind: string): CircuitState {
    const circuit = this.circuits.get(kind)
    if (circuit === undefined || circuit.failures < this.failureThreshold) return 'closed'
    return this.now() < circuit.openUntil ? 'open' : 'half_open'
  }

  /** Every kind of call seen so far, with its circuit. */
  get states (): Array<[string, CircuitState]> {
    return [...this.circuits.keys()].map((kind) => [kind, this.stateOf(kind)])
  }

  /** The worst circuit of all kinds: open if any is open, else half-open if any is, else closed. */
  get circuit (): CircuitState {
    let worst: CircuitState = 'closed'
    for (const kind of this.circuits.keys()) {
      const state = this.stateOf(kind)
      if (SEVERITY[state] > SEVERITY[worst]) worst = state
    }
    return worst
  }

  /**
   * A slot for one call of `kind`, or why not. Synchronous when a slot is free (the common case
   * costs no promise); otherwise a promise that settles when one frees up or the queue timeout passes.
   */
  enter (kind: string): Slot | GuardRefusal | Promise<Slot | GuardRefusal> {
    const refusal = this.circuitCheck(kind)
    if (refusal !== undefined) return refusal
    if (this.inFlight < this.options.maxInFlight) return this.take(kind)
    if (this.queueTimeoutMs === 0 || this.queue.length >= this.maxQueued) return 'saturated'
    return new Promise((resolve) => {
      const waiter: Waiter = {
        kind,
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

  /** `failed`: the call showed that Synapse itself is unhealthy (not that one room or user is, nor that an answer was big). */
  leave (slot: Slot, failed: boolean): void {
    this.inFlight--
    const circuit = this.circuitOf(slot.kind)
    if (slot.trial) circuit.trialInFlight = false
    if (!failed) {
      circuit.failures = 0
    } else if (++circuit.failures >= this.failureThreshold) {
      circuit.openUntil = this.now() + this.openMs
    }
    this.admitWaiters()
  }

  private circuitOf (kind: string): Circuit {
    let circuit = this.circuits.get(kind)
    if (circuit === undefined) {
      // Slots are made once per kind: taking one costs no allocation.
      circuit = { failures: 0, openUntil: 0, trialInFlight: false, ordinary: { kind, trial: false }, trial: { kind, trial: true } }
      this.circuits.set(kind, circuit)
    }
    return circuit
  }

  /** Refusal while open; in the half-open state only the one trial passes (marked on its slot). */
  private circuitCheck (kind: string): GuardRefusal | undefined {
    const circuit = this.circuits.get(kind)
    if (circuit === undefined || circuit.failures < this.failureThreshold) return undefined
    if (this.now() < circuit.openUntil || circuit.trialInFlight) return 'circuit_open'
    return undefined
  }

  private take (kind: string): Slot {
    this.inFlight++
    const circuit = this.circuitOf(kind)
    if (circuit.failures >= this.failureThreshold) {
      circuit.trialInFlight = true
      return circuit.trial
    }
    return circuit.ordinary
  }

  private admitWaiters (): void {
    while (this.queue.length > 0 && this.inFlight < this.options.maxInFlight) {
      const waiter = this.queue.shift() as Waiter
      clearTimeout(waiter.timer)
      waiter.resolve(this.circuitCheck(waiter.kind) ?? this.take(waiter.kind))
    }
  }
}
