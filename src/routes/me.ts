import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { Policy } from '../policy/index.js'
import { policyCaller } from '../actions/decision.js'
import type { RequestLimits } from '../actions/limits.js'
import { problemResponses } from '../schemas.js'
import { answerOtherMethods } from './methods.js'

const Me = Type.Object({
  sub: Type.String(),
  org: Type.Union([Type.String(), Type.Null()]),
  roles: Type.Array(Type.String()),
  actions: Type.Array(Type.String(), { description: 'Actions at least one policy rule allows this caller (room and user constraints aside).' }),
  approvals: Type.Array(Type.Object({
    action: Type.String(),
    roles: Type.Array(Type.String(), { description: 'An approver holds one of these roles.' }),
    count: Type.Integer({ description: 'Distinct approvers needed (never you).' }),
    always: Type.Boolean({ description: 'True when no rule allows it to you outright: every request is held. False when another rule may allow it at once (depending on the room or user).' })
  }), { description: 'Actions of `actions` that a rule allows you only after an approval (docs/approvals.md): such a request answers 202 and waits.' })
})

/** GET /v1/me: any valid token; integrators check a token and its roles before their first call. */
export const meRoute: FastifyPluginAsyncTypebox<{ policy: () => Policy, limits: RequestLimits }> = async (fastify, { policy, limits }) => {
  fastify.get('/v1/me', {
    // Before the token's crypto: a flood of junk tokens is refused cheaply (a read: counted per replica without Redis).
    onRequest: async (request) => { await limits.admitAddress(request, false) },
    schema: {
      tags: ['callers'],
      operationId: 'getMe',
      summary: 'Who the token says you are, and what you may do',
      security: [{ bearerAuth: [] }],
      response: { 200: Me, ...problemResponses(['missing_token', 'invalid_token', 'token_expired', 'keys_unavailable', 'invalid_request', 'rate_limited']) }
    }
  }, async (request) => {
    const caller = await fastify.authenticate(request)
    const access = policy().actionAccess(policyCaller(caller))
    const approvals = access.flatMap(({ action, outright, approval }) => approval === null ? [] : [{ action, roles: [...approval.roles], count: approval.count, always: !outright }])
    return { sub: caller.sub, org: caller.org, roles: caller.roles, actions: access.map(({ action }) => action), approvals }
  })
  answerOtherMethods(fastify, '/v1/me', ['GET'])
}
