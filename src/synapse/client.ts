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
  /** Requests in flight at most (also the pool size); the excess is refused at once. */
  maxConcurrency: number
  breaker?: Omit<GuardOptions, 'maxInFlight'>
}

export interface SynapseClient {
  lookupUser: (userId: string) => Promise<SynapseResponse>
  join: (roomIdOrAlias: string, userId: string) => Promise<SynapseResponse>
  resolveAlias: (alias: string) => Promise<SynapseResponse>
  whoami: () => Promise<SynapseResponse>
  /** Seconds until calls are let through again while the circuit is open. */
  readonly retryAfterS: number
  close: () => Promise<void>
}

export function createSynapseClient (options: SynapseClientOptions): SynapseClient {
  const base = new URL(options.url)
  const prefix = base.pathname.replace(/\/+$/, '')
  const ownsDispatcher = options.dispatcher === undefined
  const dispatcher = options.dispatcher ?? new Pool(base.origin, {
    connections: options.maxConcurrency,
    pipelining: 1,
    connect: { timeout: Math.min(options.timeoutMs, 5000) },
    keepAliveTimeout: 10_000,
    maxResponseSize: MAX_RESPONSE_BYTES
  })
  const authorization = `Bearer ${options.adminToken}`
  const guard = new SynapseGuard({ maxInFlight: options.maxConcurrency, ...options.breaker })

  /** Guarded by the cap and the breaker; a connection that failed before sending is retried once. */
  async function call (method: 'GET' | 'POST', path: string, body?: unknown): Promise<SynapseResponse> {
    const refusal = guard.enter()
    if (refusal !== undefined) throw new SynapseCallError(refusal, false, 0, undefined)
    let failed = true
    try {
      let response: SynapseResponse
      try {
        response = await send(method, path, body)
      } catch (error) {
        if (!(error instanceof SynapseCallError) || error.sent) throw error
        await sleep(RETRY_DELAY_MS)
        response = await send(method, path, body)
      }
      failed = response.status >= 500
      return response
    } finally {
      guard.leave(failed)
    }
  }

  async function send (method: 'GET' | 'POST', path: string, body?: unknown): Promise<SynapseResponse> {
    const started = performance.now()
    const elapsed = () => Math.round((performance.now() - started) * 10) / 10
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
        headersTimeout: options.timeoutMs,
        bodyTimeout: options.timeoutMs
      })
      const text = await readWithinDeadline(response.body, started + options.timeoutMs)
      let json: unknown
      try {
        json = JSON.parse(text)
      } catch {
        json = undefined
      }
      return { status: response.statusCode, json, retryAfterS: parseRetryAfter(response.headers['retry-after']), durationMs: elapsed() }
    } catch (error) {
      throw classify(error, elapsed())
    }
  }

  return {
    lookupUser: async (userId) => await call('GET', `/_synapse/admin/v2/users/${encodeURIComponent(userId)}`),
    join: async (roomIdOrAlias, userId) =>
      await call('POST', `/_synapse/admin/v1/join/${encodeURIComponent(roomIdOrAlias)}`, { user_id: userId }),
    resolveAlias: async (alias) => await call('GET', `/_matrix/client/v3/directory/room/${encodeURIComponent(alias)}`),
    whoami: async () => await call('GET', '/_matrix/client/v3/account/whoami'),
    get retryAfterS () { return guard.retryAfterS },
    async close () {
      if (ownsDispatcher) await dispatcher.close()
    }
  }
}
