import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { problem, type ProblemCode } from '../errors.js'
import { SynapseCallError, type SynapseClient, type SynapseResponse } from '../synapse/client.js'
import { sendProblem } from '../error-handler.js'
import { ProblemRef } from '../schemas.js'
import { answerOtherMethods } from './methods.js'

const CHECK_TTL_MS = 5000
const PROBE_TIMEOUT_MS = 3000

type CheckResult = 'ok' | 'unreachable' | 'token_rejected' | 'not_admin' | 'client_api_missing' | 'admin_api_missing' | 'unexpected_answer'

const errcodeOf = (response: SynapseResponse) => (response.json as { errcode?: unknown } | undefined)?.errcode

/**
 * whoami with the admin token, then the admin API on that account (it proves that SYNAPSE_URL
 * reaches /_synapse/admin and that the token is a server admin's). Remembered for a few seconds
 * so probes do not load Synapse. These probes bypass the gateway's own cap and breaker: readiness
 * reports Synapse, not the gateway's load, so a busy replica is not taken out of service.
 */
function cachedSynapseCheck (synapse: SynapseClient): () => Promise<CheckResult> {
  let last: { at: number, result: CheckResult } | undefined
  let inFlight: Promise<CheckResult> | undefined
  async function check (): Promise<CheckResult> {
    try {
      const whoami = await synapse.probe('/_matrix/client/v3/account/whoami', PROBE_TIMEOUT_MS)
      if (whoami.status === 401 || whoami.status === 403) return 'token_rejected'
      if (whoami.status === 404 || errcodeOf(whoami) === 'M_UNRECOGNIZED') return 'client_api_missing'
      const userId = (whoami.json as { user_id?: unknown } | undefined)?.user_id
      if (whoami.status !== 200 || typeof userId !== 'string') return 'unexpected_answer'
      const admin = await synapse.probe(`/_synapse/admin/v2/users/${encodeURIComponent(userId)}`, PROBE_TIMEOUT_MS)
      if (admin.status === 200 && typeof admin.json === 'object') return 'ok'
      if (admin.status === 403 && errcodeOf(admin) === 'M_FORBIDDEN') return 'not_admin'
      if (admin.status === 401) return 'token_rejected'
      if (admin.status === 404 || errcodeOf(admin) === 'M_UNRECOGNIZED') return 'admin_api_missing'
      return 'unexpected_answer'
    } catch (error) {
      if (error instanceof SynapseCallError) return 'unreachable'
      throw error
    }
  }
  return async () => {
    if (last !== undefined && Date.now() - last.at < CHECK_TTL_MS) return last.result
    inFlight ??= check().then((result) => {
      last = { at: Date.now(), result }
      return result
    }).finally(() => { inFlight = undefined })
    return await inFlight
  }
}

const NOT_READY: Record<Exclude<CheckResult, 'ok'>, { code: ProblemCode, detail: string }> = {
  unreachable: { code: 'upstream_unavailable', detail: 'Synapse cannot be reached at SYNAPSE_URL.' },
  token_rejected: { code: 'upstream_auth_failed', detail: 'Synapse rejects the admin token.' },
  not_admin: { code: 'upstream_auth_failed', detail: 'The admin token belongs to an account that is not a Synapse server admin.' },
  client_api_missing: { code: 'upstream_error', detail: 'SYNAPSE_URL does not reach Synapse\'s client API (/_matrix): it must look like http://127.0.0.1:8008, without a path.' },
  admin_api_missing: { code: 'upstream_error', detail: 'Synapse\'s admin API (/_synapse/admin) is not reachable at SYNAPSE_URL: point it at Synapse itself, or make the proxy forward /_synapse/admin.' },
  unexpected_answer: { code: 'upstream_error', detail: 'Synapse answers, but not as its API should.' }
}

const CircuitStateSchema = Type.Union([Type.Literal('closed'), Type.Literal('open'), Type.Literal('half_open')])

/**
 * The breaker as /readyz shows it: the worst state, and each kind of call whose circuit is not
 * closed. An open breaker does not make the replica unready: it refuses only its kind of call,
 * and another replica would see the same Synapse.
 */
const BreakerSchema = Type.Object({
  state: CircuitStateSchema,
  calls: Type.Record(Type.String(), CircuitStateSchema, { description: 'Kinds of call (join, kick, room_state, …) whose circuit is open or half-open; closed ones are left out.' })
}, { description: 'The Synapse circuit breaker, per kind of call.' })

function breakerOf (synapse: SynapseClient) {
  const calls: Record<string, 'open' | 'half_open'> = {}
  for (const [call, state] of synapse.circuits) if (state !== 'closed') calls[call] = state
  return { state: synapse.circuit, calls }
}

export interface HealthOptions {
  synapse: SynapseClient
  /** False while the audit destination cannot be written. */
  auditAvailable: () => boolean
  /** Told each time readiness is computed (for the readiness gauge). */
  onReadiness?: (ready: boolean) => void
}

export const healthRoutes: FastifyPluginAsyncTypebox<HealthOptions> = async (fastify, { synapse, auditAvailable, onReadiness }) => {
  const synapseCheck = cachedSynapseCheck(synapse)

  fastify.get('/healthz', {
    schema: {
      tags: ['health'],
      operationId: 'getHealth',
      summary: 'Liveness: 200 while the process serves',
      security: [],
      response: { 200: Type.Object({ status: Type.Literal('ok') }, { description: 'Serving.' }) }
    }
  }, async () => ({ status: 'ok' as const }))

  fastify.get('/readyz', {
    schema: {
      tags: ['health'],
      operationId: 'getReadiness',
      summary: 'Readiness: Synapse accepts the admin token, the audit log can be written, signing keys are loaded',
      security: [],
      response: {
        200: Type.Object({ status: Type.Literal('ready'), synapse_breaker: BreakerSchema }, { description: 'Ready to serve actions; `synapse_breaker` says which kinds of call are paused.' }),
        503: {
          description: 'Not ready; `code` says why: audit_unavailable, upstream_unavailable, upstream_auth_failed, upstream_error or keys_unavailable.',
          content: { 'application/problem+json': { schema: ProblemRef } }
        }
      }
    }
  }, async (_request, reply) => {
    const [synapseResult, keysReady] = await Promise.all([synapseCheck(), fastify.signingKeysReady()])
    let notReady: ReturnType<typeof problem> | undefined
    if (!auditAvailable()) {
      notReady = problem('audit_unavailable', 'Not ready: the audit log cannot be written, so actions are refused.', { retryAfterS: 5 })
    } else if (synapseResult !== 'ok') {
      const { code, detail } = NOT_READY[synapseResult]
      notReady = problem(code, `Not ready: ${detail}`, { retryAfterS: 5, status: 503 })
    } else if (!keysReady) {
      notReady = problem('keys_unavailable', 'Not ready: the signing keys (JWT_JWKS_URL) have not been loaded yet.', { retryAfterS: 5 })
    }
    onReadiness?.(notReady === undefined)
    if (notReady !== undefined) return sendProblem(reply, notReady)
    return { status: 'ready' as const, synapse_breaker: breakerOf(synapse) }
  })
  answerOtherMethods(fastify, '/healthz', ['GET'])
  answerOtherMethods(fastify, '/readyz', ['GET'])
}
