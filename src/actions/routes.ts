import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { ProblemCode } from '../errors.js'
import { answerOtherMethods } from '../routes/methods.js'
import { ACTION_PROBLEMS, DryRunQuery, DryRunResult, problemResponses } from '../schemas.js'
import type { SharedState } from '../state/shared.js'
import { namedTarget, type ActionDefinition } from './action.js'
import { newAttempt, type Attempt } from './attempt.js'
import { approvalWiring, heldApproval, HELD_RESPONSE, HOLD_PROBLEMS } from './approval.js'
import { batchRoute } from './batch.js'
import { claimKey, fingerprintKeyOf, IdempotencyKeyHeader, idempotencyKeyOf, replayedOutcome, settleKey, storedAnswer } from './idempotency.js'
import { createPipeline, successOutcome, type Pipeline, type PipelineOptions } from './pipeline.js'
import { createActionValidators } from './validation.js'

export interface ActionRoutesOptions extends Omit<PipelineOptions, 'authenticate'> {
  state: SharedState
  actions: readonly ActionDefinition[]
  /** How often pending approvals past their expiry are marked and audited (ms; default 60 000). */
  approvalSweepMs?: number
}

/** OpenAPI tag of an action: the first part of its name (`user.read` → users). */
export const tagOf = (action: Pick<ActionDefinition, 'name'>): string => `${action.name.split('.')[0] ?? ''}s`

/**
 * Registers the catalog: one route per action (plus 405 answers for the methods its URL does not
 * take) and POST /v1/batch, all through the same pipeline (src/actions/pipeline.ts).
 */
export const actionRoutes: FastifyPluginAsyncTypebox<ActionRoutesOptions> = async (fastify, options) => {
  const { config, state } = options
  fastify.decorateRequest('attempt', null)
  fastify.decorateRequest('caller', null)
  const pipeline = createPipeline({ ...options, authenticate: fastify.authenticate })
  const validators = createActionValidators()
  await fastify.register(batchRoute, { config, audit: options.audit, state, pipeline, limits: options.limits, policy: options.policy, actions: options.actions, validate: validators.validate })
  // Outside the batch's scope: a method /v1/batch does not take is answered without its audit record.
  answerOtherMethods(fastify, '/v1/batch', ['POST'])
  await fastify.register(approvalWiring, { store: options.approvals, audit: options.audit, pipeline, actions: options.actions, validate: validators.validate, expirySweepMs: options.approvalSweepMs })
  await fastify.register(async (scope) => { routeEach(scope, options.actions, pipeline, validators.compiler, state, fingerprintKeyOf(config)) })
}

function routeEach (fastify: FastifyInstance, actions: readonly ActionDefinition[], pipeline: Pipeline, validatorCompiler: ReturnType<typeof createActionValidators>['compiler'], state: SharedState, fingerprintKey: Buffer): void {
  const byRoute = new Map<string, ActionDefinition>()
  for (const action of actions) byRoute.set(`${action.method} ${action.url}`, action)
  const actionOf = (request: FastifyRequest) => byRoute.get(`${request.method} ${request.routeOptions.url ?? ''}`)

  fastify.addHook('onRequest', async (request) => {
    const action = actionOf(request)
    // A method the URL does not take: answered 405 (and audited) without a token.
    if (action === undefined) return
    request.attempt = newAttempt(action.name)
    await pipeline.admit(request, request.attempt, action)
  })

  fastify.addHook('onSend', (request, reply, payload, done) => {
    const attempt = request.attempt ?? newAttempt(actionOf(request)?.name ?? 'unknown')
    // Refused before the handler read them: the target as the URL (and a parsed body) name it.
    attempt.target ??= namedTarget(request.params, request.body)
    const error = request.gatewayError
    const outcome = attempt.replayed
      ? replayedOutcome(reply.statusCode, String(payload))
      : error === undefined ? successOutcome(attempt) : error.outcome
    pipeline.finish(attempt, originOf(request), reply.statusCode, error, outcome, reply.elapsedTime)
    if (attempt.idempotency === undefined) {
      done(null, payload)
      return
    }
    // A field given once (a generated password) is never stored: a replay answers without it.
    const answeredOnce = actionOf(request)?.answeredOnce
    const stored = answeredOnce === undefined ? payload : storedAnswer(payload, () => answeredOnce, false)
    settleKey(state.idempotency, attempt.idempotency, reply, stored).finally(() => { done(null, payload) })
  })

  for (const action of actions) {
    fastify.route({
      method: action.method,
      url: action.url,
      schema: routeSchema(action),
      validatorCompiler,
      handler: async (request, reply) => {
        const attempt = request.attempt as Attempt
        const key = action.acting ? idempotencyKeyOf(request) : undefined
        if (key !== undefined) {
          attempt.idempotency = await claimKey(state.idempotency, request, reply, (attempt.actor as NonNullable<Attempt['actor']>).sub, key, () => { attempt.replayed = true }, fingerprintKey)
          if (attempt.idempotency === undefined) return reply
        }
        const dryRun = (request.query as { dry_run?: string } | undefined)?.dry_run === 'true'
        const answer = await pipeline.perform(request.id, request.log, attempt, action, { params: request.params, body: request.body, query: request.query, dryRun })
        const held = heldApproval(attempt)
        if (held !== undefined) reply.code(202).header('location', `/v1/approvals/${held.id}`)
        return answer
      }
    })
  }

  // Methods an action URL does not take: 405 with Allow, audited like any attempt on an action route.
  const methodsByUrl = new Map<string, string[]>()
  for (const action of actions) methodsByUrl.set(action.url, [...(methodsByUrl.get(action.url) ?? []), action.method])
  for (const [url, methods] of methodsByUrl) answerOtherMethods(fastify, url, methods)
}

/**
 * The action whose route a raw path names (for requests refused before routing): the route's
 * pattern matched segment by segment, a parameter standing for any one segment.
 */
export function actionOfPath (actions: readonly ActionDefinition[], method: string, url: string): string | undefined {
  const segments = (url.split('?', 1)[0] ?? '').split('/')
  const matches = (action: ActionDefinition) => {
    const pattern = action.url.split('/')
    return pattern.length === segments.length && pattern.every((part, i) => part.startsWith(':') ? segments[i] !== '' : part === segments[i])
  }
  const onPath = actions.filter(matches)
  return (onPath.find((action) => action.method === method) ?? onPath[0])?.name
}

/** Where a request came from, for its result record. */
export function originOf (request: FastifyRequest) {
  return {
    id: request.id,
    ip: request.ip,
    userAgent: request.headers['user-agent'],
    clientRequestId: request.clientRequestId,
    tokenRefusal: request.tokenRefusal,
    idempotencyKey: request.headers['idempotency-key']
  }
}

/** What an acting route answers besides the pipeline's codes: REQUIRE_REASON, the audit, the Idempotency-Key. */
const ACTING_PROBLEMS: ProblemCode[] = ['reason_required', 'audit_unavailable', 'idempotency_in_progress', 'idempotency_key_reused', 'state_unavailable']

/** The route's OpenAPI operation, from the action's declaration. */
function routeSchema (action: ActionDefinition) {
  return {
    tags: [tagOf(action)],
    operationId: action.operationId,
    summary: action.summary,
    description: action.description,
    security: [{ bearerAuth: [] }],
    params: action.params,
    ...(action.body === undefined ? {} : { body: action.body }),
    ...(action.acting ? { querystring: DryRunQuery, headers: IdempotencyKeyHeader } : {}),
    response: {
      200: action.acting
        ? { description: 'Done (or, with ?dry_run=true, the prediction).', anyOf: [action.result, DryRunResult] }
        : { description: 'OK.', ...action.result },
      ...(action.acting ? { 202: HELD_RESPONSE } : {}),
      ...problemResponses([...ACTION_PROBLEMS, ...action.problems, ...(action.acting ? [...ACTING_PROBLEMS, ...HOLD_PROBLEMS] : [])])
    }
  }
}
