import { setTimeout as sleep } from 'node:timers/promises'
import { Pool, type Dispatcher } from 'undici'
import { SynapseGuard, type CircuitState, type GuardOptions, type GuardRefusal } from './guard.js'
import { selectedJson, type SelectionFactory } from './streamed.js'
import type { SynapseFeature } from './version.js'

export interface SynapseResponse {
  status: number
  /** The parsed JSON body; undefined when the body was not JSON. */
  json: unknown
  /** Seconds from a Retry-After header, when Synapse sent one. */
  retryAfterS: number | undefined
  durationMs: number
  /** The body was larger than the gateway reads whole (MAX_RESPONSE_BYTES): not read, `json` undefined. */
  tooBig?: true
}

/**
 * Why a call got no usable answer. `sent` tells whether Synapse may have received the request
 * (and so may have acted): only connection failures before any byte left are `sent: false`.
 */
export type SynapseFailureKind = 'unavailable' | 'timeout' | 'broken' | GuardRefusal
export class SynapseCallError extends Error {
  /** For `circuit_open`: seconds until this kind of call gets a trial. */
  retryAfterS: number | undefined
  constructor (readonly kind: SynapseFailureKind, readonly sent: boolean, readonly durationMs: number, cause: unknown) {
    // Refusals (saturated, circuit open) are frequent under load: no stack trace for them.
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    super(`Synapse call failed: ${kind}`, { cause })
    Error.stackTraceLimit = limit
    this.name = 'SynapseCallError'
  }
}

/**
 * Answers read whole are cut here (never counted against Synapse's health); big answers (a room's
 * state, its members) are read streamed instead and keep only what is needed (streamed.ts).
 */
export const MAX_RESPONSE_BYTES = 256 * 1024
const DEADLINE_EXCEEDED = 'GATEWAY_DEADLINE_EXCEEDED'
const RETRY_DELAY_MS = 50

/**
 * Reads the body, giving up once the call's deadline has passed. undici's headersTimeout and
 * bodyTimeout restart per phase and per chunk, so a slowly dripping answer could otherwise
 * outlast SYNAPSE_TIMEOUT_MS. Checked as chunks arrive: no timer per call (AbortSignal.timeout
 * kept one per call alive for the whole timeout and cost a third of the throughput under load).
 */
async function readWithinDeadline (body: Dispatcher.ResponseData['body'], deadline: number, take: (chunk: Buffer) => boolean): Promise<void> {
  for await (const chunk of body) {
    if (performance.now() > deadline) {
      body.destroy()
      throw Object.assign(new Error('Synapse call exceeded its deadline'), { code: DEADLINE_EXCEEDED })
    }
    if (!take(chunk as Buffer)) {
      body.destroy()
      return
    }
  }
}

/** The body as JSON: streamed through `select` for a 200 that has one, else read whole up to MAX_RESPONSE_BYTES. */
async function readJson (response: Dispatcher.ResponseData, deadline: number, select: SelectionFactory | undefined): Promise<{ json: unknown, tooBig: boolean }> {
  if (select !== undefined && response.statusCode === 200) {
    const parser = selectedJson(select())
    await readWithinDeadline(response.body, deadline, (chunk) => { parser.write(chunk); return true })
    return { json: parser.end(), tooBig: false }
  }
  const chunks: Buffer[] = []
  let size = 0
  await readWithinDeadline(response.body, deadline, (chunk) => {
    size += chunk.length
    chunks.push(chunk)
    return size <= MAX_RESPONSE_BYTES
  })
  if (size > MAX_RESPONSE_BYTES) return { json: undefined, tooBig: true }
  try {
    return { json: JSON.parse(Buffer.concat(chunks).toString('utf8')), tooBig: false }
  } catch {
    return { json: undefined, tooBig: false }
  }
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
  breaker?: Pick<GuardOptions, 'failureThreshold' | 'openMs' | 'now'>
  /** Told once per change whether Synapse can be reached. */
  onReachabilityChange?: (reachable: boolean) => void
}

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE'

/**
 * One Synapse call, declared: its name (as metrics, the breaker and audit records know it) and
 * whether it can change anything. Changing calls only leave through the tracked façade after
 * their intent record (src/actions/facade.ts); `timeoutMs` replaces SYNAPSE_TIMEOUT_MS for a call
 * known to be slow; `select` streams a big answer, keeping only what it selects; `needs` names the
 * Synapse release the call needs (the façade refuses it, unsent, on an older one).
 */
export interface SynapseCall {
  readonly name: string
  readonly changes: boolean
  readonly method: HttpMethod
  readonly path: string
  readonly body?: unknown
  readonly timeoutMs?: number
  readonly select?: SelectionFactory
  readonly needs?: SynapseFeature
}

/** A call that cannot change anything. */
export const readCall = (name: string, path: string, select?: SelectionFactory): SynapseCall =>
  ({ name, changes: false, method: 'GET', path, ...(select === undefined ? {} : { select }) })

/** A call that may change Synapse: the façade writes the intent record before it is sent. */
export const changingCall = (name: string, method: Exclude<HttpMethod, 'GET'>, path: string, body?: unknown, options: { timeoutMs?: number, needs?: SynapseFeature } = {}): SynapseCall =>
  ({ name, changes: true, method, path, ...(body === undefined ? {} : { body }), ...options })

export type CallName = SynapseCall['name']

/**
 * Whether an answer says Synapse itself is unwell (the breaker counts it): a 5xx without a Matrix
 * errcode (a proxy's error page, an empty 503) or Synapse's answer to an unhandled exception
 * (500 M_UNKNOWN "Internal server error", whose errcode names no cause). A 5xx with any other
 * errcode speaks for one room or remote server (federation); answers too big or not JSON below
 * 500 say nothing about Synapse's health.
 */
function showsSynapseUnhealthy (response: SynapseResponse): boolean {
  if (response.status < 500) return false
  const { errcode, error } = (typeof response.json === 'object' && response.json !== null ? response.json : {}) as { errcode?: unknown, error?: unknown }
  if (typeof errcode !== 'string') return true
  return response.status === 500 && errcode === 'M_UNKNOWN' && error === 'Internal server error'
}

/** Failures that count against Synapse's health: it cannot be reached, is too slow, or broke the connection. */
const UNHEALTHY_FAILURES = new Set<SynapseFailureKind>(['unavailable', 'timeout', 'broken'])

export function createSynapseClient (options: SynapseClientOptions) {
  const base = new URL(options.url)
  const prefix = base.pathname.replace(/\/+$/, '')
  const ownsDispatcher = options.dispatcher === undefined
  const dispatcher = options.dispatcher ?? new Pool(base.origin, {
    connections: options.maxConcurrency + 1, // one more for readiness probes, which bypass the guard
    pipelining: 1,
    connect: { timeout: Math.min(options.timeoutMs, 5000) },
    keepAliveTimeout: 10_000
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
  async function perform ({ name, method, path, body, select }: SynapseCall, deadline: number | undefined): Promise<SynapseResponse> {
    let slot = guard.enter(name)
    if (slot instanceof Promise) slot = await slot
    if (typeof slot === 'string') {
      const refusal = new SynapseCallError(slot, false, 0, undefined)
      if (slot === 'circuit_open') refusal.retryAfterS = guard.retryAfterS(name)
      throw refusal
    }
    let unhealthy = true
    try {
      let response: SynapseResponse
      try {
        response = await send(method, path, body, deadline, select)
      } catch (error) {
        if (!(error instanceof SynapseCallError) || error.sent) throw error
        await sleep(RETRY_DELAY_MS)
        response = await send(method, path, body, deadline, select)
      }
      unhealthy = showsSynapseUnhealthy(response)
      return response
    } catch (error) {
      unhealthy = !(error instanceof SynapseCallError) || UNHEALTHY_FAILURES.has(error.kind)
      throw error
    } finally {
      guard.leave(slot, unhealthy)
    }
  }

  async function send (method: HttpMethod, path: string, body: unknown, deadline = performance.now() + options.timeoutMs, select?: SelectionFactory): Promise<SynapseResponse> {
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
      const { json, tooBig } = await readJson(response, deadline, select)
      noteReachable(true)
      const answer: SynapseResponse = { status: response.statusCode, json, retryAfterS: parseRetryAfter(response.headers['retry-after']), durationMs: elapsed() }
      if (tooBig) answer.tooBig = true
      return answer
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
    get retryAfterS () { return guard.retryAfterS() },
    get inFlight () { return guard.active },
    get queued () { return guard.queued },
    /** The worst circuit of all kinds of call. */
    get circuit () { return guard.circuit },
    /** Each kind of call seen so far, with its circuit. */
    get circuits (): Array<[CallName, CircuitState]> { return guard.states as Array<[CallName, CircuitState]> },
    async close () {
      if (ownsDispatcher) await dispatcher.close()
    }
  }
}

export type SynapseClient = ReturnType<typeof createSynapseClient>
