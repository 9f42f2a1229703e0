import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { problem, type ProblemCode } from '../errors.js'
import { SynapseCallError, type SynapseClient } from '../synapse/client.js'
import { sendProblem } from '../error-handler.js'
import { ProblemRef } from '../schemas.js'

const CHECK_TTL_MS = 5000

type CheckResult = 'ok' | 'unreachable' | 'token_rejected' | 'unexpected_answer'

/** whoami with the admin token, remembered for a few seconds so probes do not load Synapse. */
function cachedAdminTokenCheck (synapse: SynapseClient): () => Promise<CheckResult> {
  let last: { at: number, result: CheckResult } | undefined
  let inFlight: Promise<CheckResult> | undefined
  async function check (): Promise<CheckResult> {
    try {
      const response = await synapse.whoami()
      if (response.status === 200) return 'ok'
      if (response.status === 401 || response.status === 403) return 'token_rejected'
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
  unreachable: { code: 'upstream_unavailable', detail: 'Synapse cannot be reached.' },
  token_rejected: { code: 'upstream_auth_failed', detail: 'Synapse rejects the admin token.' },
  unexpected_answer: { code: 'upstream_error', detail: 'Synapse answers, but not as its API should.' }
}

export const healthRoutes: FastifyPluginAsyncTypebox<{ synapse: SynapseClient }> = async (fastify, { synapse }) => {
  const adminTokenCheck = cachedAdminTokenCheck(synapse)

  fastify.get('/healthz', {
    schema: {
      tags: ['health'],
      summary: 'Liveness: 200 while the process serves',
      response: { 200: Type.Object({ status: Type.Literal('ok') }, { description: 'Serving.' }) }
    }
  }, async () => ({ status: 'ok' as const }))

  fastify.get('/readyz', {
    schema: {
      tags: ['health'],
      summary: 'Readiness: Synapse accepts the admin token and signing keys are loaded',
      response: {
        200: Type.Object({ status: Type.Literal('ready') }, { description: 'Ready to serve actions.' }),
        503: {
          description: 'Not ready; `code` says why: upstream_unavailable, upstream_auth_failed, upstream_error or keys_unavailable.',
          content: { 'application/problem+json': { schema: ProblemRef } }
        }
      }
    }
  }, async (_request, reply) => {
    const [synapseResult, keysReady] = await Promise.all([adminTokenCheck(), fastify.signingKeysReady()])
    if (synapseResult !== 'ok') {
      const { code, detail } = NOT_READY[synapseResult]
      return sendProblem(reply, problem(code, `Not ready: ${detail}`, { retryAfterS: 5, status: 503 }))
    }
    if (!keysReady) {
      return sendProblem(reply, problem('keys_unavailable', 'Not ready: the signing keys (JWT_JWKS_URL) have not been loaded yet.', { retryAfterS: 5 }))
    }
    return { status: 'ready' as const }
  })
}
