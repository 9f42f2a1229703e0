import { setTimeout as sleep } from 'node:timers/promises'
import { Pool, type Dispatcher } from 'undici'
import { SynapseGuard, type GuardOptions, type GuardRefusal } from './guard.js'

export interface SynapseResponse {
  status: number
  /** The parsed JSON body; undefined when the body was not JSON. */
  json: unknown
  /** Seconds from a Retry-After header, when Synapse sent one. */
  retryAfterS: number | undefined
  durationMs: number
}

/**
 * Why a call got no usable answer. `sent` tells whether Synapse may have received the request
 * (and so may have acted): only connection failures before any byte left are `sent: false`.
 */
export type SynapseFailureKind = 'unavailable' | 'timeout' | 'broken' | GuardRefusal
export class SynapseCallError extends Error {
  constructor (readonly kind: SynapseFailureKind, readonly sent: boolean, readonly durationMs: number, cause: unknown) {
    // Refusals (saturated, circuit open) are frequent under load: no stack trace for them.
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    super(`Synapse call failed: ${kind}`, { cause })
    Error.stackTraceLimit = limit
    this.name = 'SynapseCallError'
  }
}

const MAX_RESPONSE_BYTES = 256 * 1024
const DEADLINE_EXCEEDED = 'GATEWAY_DEADLINE_EXCEEDED'
const RETRY_DELAY_MS = 50

/**
 * Reads the body, giving up once the call's deadline has passed. undici's headersTimeout and
 * bodyTimeout restart per phase and per chunk, so a slowly dripping answer could otherwise
 * outlast SYNAPSE_TIMEOUT_MS. Checked as chunks arrive: no timer per call (AbortSignal.timeout
 * kept one per call alive for the whole timeout and cost a third of the throughput under load).
 */
async function readWithinDeadline (body: Dispatcher.ResponseData['body'], deadline: number): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of body) {
    if (performance.now() > deadline) {
      body.destroy()
      throw Object.assign(new Error('Synapse call exceeded its deadline'), { code: DEADLINE_EXCEEDED })
    }
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks).toString('utf8')
}

const NOT_SENT_CODES = new Set([
  'ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_CLOSED', 'UND_ERR_DESTROYED'
])
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', DEADLINE_EXCEEDED])

function classify (error: unknown, durationMs: number): SynapseCallError {
  const code = (error as { code?: string }).code ?? ''
  if (NOT_SENT_CODES.has(code)) return new SynapseCallError('unavailable', false, durationMs, error)
  if (TIMEOUT_CODES.has(code)) {
    return new SynapseCallError('timeout', true, durationMs, error)
  }
  return new SynapseCallError('broken', true, durationMs, error)
}

function parseRetryAfter (value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value
  if (text === undefined || !/^[0-9]{1,6}$/.test(text)) return undefined
  return Number(text)
}

export interface SynapseClientOptions {
  url: string
  adminToken: string
  timeoutMs: number
  /** Where requests go; tests and embedders may pass their own. Defaults to a keep-alive Pool. */
  dispatcher?: Dispatcher
  /** Requests in flight at most (also the pool size); the excess waits up to `queueTimeoutMs`. */
  maxConcurrency: number
  queueTimeoutMs?: number
  breaker?: Pick<GuardOptions, 'failureThreshold' | 'openMs'>
  /** Told once per change whether Synapse can be reached. */
  onReachabilityChange?: (reachable: boolean) => void
}

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE'

/**
 * One Synapse call, declared: its name (as metrics and audit records label it) and whether it can
 * change anything. Changing calls only leave through the tracked façade after their intent record
 * (src/actions/facade.ts); `timeoutMs` replaces SYNAPSE_TIMEOUT_MS for a call known to be slow.
 */
export interface SynapseCall {
  readonly name: string
  readonly changes: boolean
  readonly method: HttpMethod
  readonly path: string
  readonly body?: unknown
  readonly timeoutMs?: number
}

/** A call that cannot change anything. */
export const readCall = (name: string, path: string): SynapseCall => ({ name, changes: false, method: 'GET', path })

/** A call that may change Synapse: the façade writes the intent record before it is sent. */
export const changingCall = (name: string, method: Exclude<HttpMethod, 'GET'>, path: string, body?: unknown, options: { timeoutMs?: number } = {}): SynapseCall =>
  ({ name, changes: true, method, path, ...(body === undefined ? {} : { body }), ...options })

export type CallName = SynapseCall['name']

/** 5xx answers that speak for one room or remote server (federation), not for Synapse's health. */
function showsSynapseUnhealthy (response: SynapseResponse): boolean {
  if (response.status < 500) return false
  const errcode = (response.json as { errcode?: unknown } | undefined)?.errcode
  return !(response.status === 502 && typeof errcode === 'string')
}

export function createSynapseClient (options: SynapseClientOptions) {
  const base = new URL(options.url)
  const prefix = base.pathname.replace(/\/+$/, '')
  const ownsDispatcher = options.dispatcher === undefined
  const dispatcher = options.dispatcher ?? new Pool(base.origin, {
    connections: options.maxConcurrency + 1, // one more for readiness probes, which bypass the guard
    pipelining: 1,
    connect: { timeout: Math.min(options.timeoutMs, 5000) },
    keepAliveTimeout: 10_000,
    maxResponseSize: MAX_RESPONSE_BYTES
  })
  const authorization = `Bearer ${options.adminToken}`
  const guard = new SynapseGuard({ maxInFlight: options.maxConcurrency, queueTimeoutMs: options.queueTimeoutMs, ...options.breaker })
  let reachable = true
  const noteReachable = (now: boolean) => {
    if (now === reachable) return
    reachable = now
    options.onReachabilityChange?.(now)
  }

  /** Guarded by the cap and the breaker; a connection that failed before sending is retried once. */
  async function perform ({ method, path, body }: SynapseCall, deadline: number | undefined): Promise<SynapseResponse> {
    let slot = guard.enter()
    if (slot instanceof Promise) slot = await slot
    if (typeof slot === 'string') throw new SynapseCallError(slot, false, 0, undefined)
    let unhealthy = true
    try {
      let response: SynapseResponse
      try {
        response = await send(method, path, body, deadline)
      } catch (error) {
        if (!(error instanceof SynapseCallError) || error.sent) throw error
        await sleep(RETRY_DELAY_MS)
        response = await send(method, path, body, deadline)
      }
      unhealthy = showsSynapseUnhealthy(response)
      return response
    } finally {
      guard.leave(slot, unhealthy)
    }
  }

  async function send (method: HttpMethod, path: string, body: unknown, deadline = performance.now() + options.timeoutMs): Promise<SynapseResponse> {
    const started = performance.now()
    const elapsed = () => Math.round((performance.now() - started) * 10) / 10
    const remaining = Math.floor(deadline - started)
    if (remaining <= 0) {
      throw new SynapseCallError('timeout', false, 0, Object.assign(new Error('no time left'), { code: DEADLINE_EXCEEDED }))
    }
    try {
      const response = await dispatcher.request({
        origin: base.origin,
        method,
        path: prefix + path,
        headers: body === undefined
          ? { authorization, accept: 'application/json' }
          : { authorization, accept: 'application/json', 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        // Per request, so they hold with any dispatcher (an embedder's too).
        headersTimeout: remaining,
        bodyTimeout: remaining
      })
      const text = await readWithinDeadline(response.body, deadline)
      noteReachable(true)
      let json: unknown
      try {
        json = JSON.parse(text)
      } catch {
        json = undefined
      }
      return { status: response.statusCode, json, retryAfterS: parseRetryAfter(response.headers['retry-after']), durationMs: elapsed() }
    } catch (error) {
      const failure = classify(error, elapsed())
      if (failure.kind === 'unavailable') noteReachable(false)
      throw failure
    }
  }

  return {
    /** Sends a declared call, guarded; actions reach it only through their tracked façade. */
    perform,
    /** Readiness probes bypass the cap and the breaker: they report Synapse, not our own load. */
    probe: async (path: string, timeoutMs: number) => await send('GET', path, undefined, performance.now() + timeoutMs),
    get retryAfterS () { return guard.retryAfterS },
    get inFlight () { return guard.active },
    get queued () { return guard.queued },
    get circuit () { return guard.circuit },
    async close () {
      if (ownsDispatcher) await dispatcher.close()
    }
  }
}

export type SynapseClient = ReturnType<typeof createSynapseClient>
