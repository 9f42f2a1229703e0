import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { auditActor, auditedText, idempotencyKeyField } from '../audit/fields.js'
import type { AuditLog } from '../audit/log.js'
import type { Caller } from '../auth/claims.js'
import type { Config } from '../config.js'
import { problem, type GatewayError, type ProblemCode } from '../errors.js'
import { sendProblem } from '../error-handler.js'
import type { Metrics } from '../metrics.js'
import { serverOf } from '../matrix-ids.js'
import type { Decision, Policy, PolicyCaller, RoomFacts } from '../policy/index.js'
import { callFailure } from '../synapse/answers.js'
import { SynapseCallError, type CallName, type SynapseClient, type SynapseResponse } from '../synapse/client.js'
import type { RoomDirectory } from '../synapse/rooms.js'
import { ACTION_PROBLEMS, DryRunQuery, DryRunResult, problemResponses } from '../schemas.js'
import { registerRateLimits, type Limit } from '../state/rate-limit.js'
import { StateUnavailableError, type SharedState } from '../state/shared.js'
import type { ActionContext, ActionDefinition, DryRunReport, ResolvedTarget } from './action.js'
import { batchItemOf } from './batch.js'
import { claimKey, idempotencyKeyOf, replayedOutcome, settleKey, stateUnavailable, type IdempotencyClaim } from './idempotency.js'

export interface AuditUpstream { call: string, status: number | null, matrix_errcode: string | null, duration_ms: number }

/** What one action request did, gathered as it goes and written as its audit records. */
export interface Attempt {
  action: string
  actor: Caller | null
  roomId: string | undefined
  upstream: AuditUpstream | undefined
  policy: { rule: string | null, effect: 'allow' | 'deny' } | undefined
  reason: string | undefined
  dryRun: boolean
  intentWritten: boolean
  /** The Idempotency-Key claimed for this request, settled once it is answered. */
  idempotency: IdempotencyClaim | undefined
  replayed: boolean
  /** Set on the requests a batch makes for its items. */
  batch: { id: string, index: number } | undefined
  /** When the request's Synapse work must be done by (performance.now()); set by the first call. */
  deadline: number | undefined
}

declare module 'fastify' {
  interface FastifyRequest {
    attempt: Attempt | null
  }
}

const tenths = (ms: number) => Math.round(ms * 10) / 10

export interface PipelineOptions {
  config: Config
  synapse: SynapseClient
  rooms: RoomDirectory
  audit: AuditLog
  state: SharedState
  metrics: Metrics
  /** The policy in force; a function because SIGHUP may replace it. */
  policy: () => Policy
  actions: ActionDefinition[]
  adminUserId: (read: ActionContext['read']) => Promise<string>
}

/**
 * The one pipeline every action goes through: per-IP limit → token → org → policy on the action
 * → per-caller limit → validation → room resolution → policy on room and user → Synapse →
 * answer → audit. The action modules only say what differs.
 */
export const actionPipeline: FastifyPluginAsyncTypebox<PipelineOptions> = async (fastify, options) => {
  const { config, synapse, rooms, audit, state, metrics, policy } = options
  const { serverName } = config.synapse

  fastify.decorateRequest('attempt', null)
  const limits = await registerRateLimits(fastify, state)
  // Per client IP before any token crypto, so a flood of junk tokens stays cheap to refuse.
  const ipLimit = limits.create({ name: 'ip', max: config.rateLimitPerIpPerMinute, timeWindow: 60_000, keyGenerator: (request) => request.ip })
  const callerLimit = limits.create({ name: 'caller', max: config.rateLimitPerMinute, timeWindow: 60_000, keyGenerator: (request) => request.attempt?.actor?.sub ?? '' })
  /** Acting requests are refused while shared limits cannot be counted; reads count per replica. */
  async function enforce (limit: Limit, request: FastifyRequest, who: 'address' | 'caller', acting: boolean): Promise<void> {
    let verdict
    try {
      verdict = await limit(request, acting ? 'refuse' : 'per-replica')
    } catch (error) {
      if (error instanceof StateUnavailableError) throw stateUnavailable()
      throw error
    }
    if (!verdict.allowed) {
      metrics.rateLimited.inc({ limit: who === 'address' ? 'ip' : 'caller' })
      throw problem('rate_limited', `Too many requests from this ${who} (${verdict.max} a minute); retry later.`, { retryAfterS: verdict.retryAfterS })
    }
  }

  const byRoute = new Map<string, ActionDefinition>()
  for (const action of options.actions) byRoute.set(`${action.method} ${action.url}`, action)
  const actionOf = (request: FastifyRequest) => byRoute.get(`${request.method} ${request.routeOptions.url ?? ''}`)

  const newAttempt = (action: string): Attempt => ({
    action, actor: null, roomId: undefined, upstream: undefined, policy: undefined, reason: undefined, dryRun: false, intentWritten: false, idempotency: undefined, replayed: false, batch: undefined, deadline: undefined
  })

  fastify.addHook('onRequest', async (request) => {
    const action = actionOf(request)
    // A method the URL does not take: answered 405 (and audited) without a token.
    if (action === undefined) return
    request.attempt = newAttempt(action.name)
    request.attempt.batch = batchItemOf(request)
    await enforce(ipLimit, request, 'address', action.acting)
    const caller = await fastify.authenticate(request)
    request.attempt.actor = caller
    if (config.allowedOrgs.length > 0 && (caller.org === null || !config.allowedOrgs.includes(caller.org))) {
      throw problem('org_not_allowed', 'Your organisation is not allowed to use this gateway.')
    }
    const current = policy()
    if (!current.permitsAction(policyCaller(caller), action.name)) {
      // A policy decision like the later ones (no rule gives this caller the action): audited and counted.
      request.attempt.policy = { rule: null, effect: 'deny' }
      metrics.policyDecisions.inc({ rule: 'none', effect: 'deny' })
      throw refusal(current, config.joinRoles, action.name, undefined)
    }
    await enforce(callerLimit, request, 'caller', action.acting)
  })

  fastify.addHook('onSend', (request, reply, payload, done) => {
    const attempt = request.attempt ?? newAttempt(actionOf(request)?.name ?? 'unknown')
    const error = request.gatewayError
    const outcome = attempt.replayed
      ? replayedOutcome(reply.statusCode, String(payload))
      : error === undefined ? (attempt.dryRun ? 'dry_run' : 'success') : error.outcome
    metrics.actions.inc({ action: attempt.action, outcome, code: error?.problem ?? 'none' })
    audit.result(request.id, resultFields(request, reply, attempt, outcome, error))
    if (attempt.idempotency === undefined) {
      done(null, payload)
      return
    }
    settleKey(state.idempotency, attempt.idempotency, reply, payload).finally(() => { done(null, payload) })
  })

  function resultFields (request: FastifyRequest, reply: FastifyReply, attempt: Attempt, outcome: string, error: GatewayError | undefined): Record<string, unknown> {
    return {
      action: attempt.action,
      outcome,
      status: reply.statusCode,
      ...(error === undefined ? {} : { code: error.problem }),
      actor: auditActor(attempt.actor),
      target: auditTarget(request, attempt),
      client: { ip: request.ip, user_agent: auditedText(request.headers['user-agent']) },
      ...(request.clientRequestId === undefined ? {} : { client_request_id: request.clientRequestId }),
      ...(request.tokenRefusal === undefined ? {} : { token_refusal: request.tokenRefusal }),
      ...(attempt.upstream === undefined ? {} : { upstream: attempt.upstream }),
      ...(attempt.policy === undefined ? {} : { policy: attempt.policy }),
      ...(attempt.reason === undefined ? {} : { reason: attempt.reason }),
      ...(attempt.dryRun ? { dry_run: true } : {}),
      ...(attempt.replayed ? { replayed: true } : {}),
      ...(attempt.batch === undefined ? {} : { batch: attempt.batch }),
      ...idempotencyKeyField(request.headers['idempotency-key']),
      duration_ms: tenths(reply.elapsedTime)
    }
  }

  /** Calls Synapse within the request's deadline, remembers what it answered, and names failures. */
  async function track (request: FastifyRequest, name: CallName, mayHaveActed: boolean, send: (deadline: number) => Promise<SynapseResponse>): Promise<SynapseResponse> {
    const attempt = request.attempt as Attempt
    attempt.deadline ??= performance.now() + config.synapse.timeoutMs
    const before = attempt.upstream?.duration_ms ?? 0
    try {
      const response = await send(attempt.deadline)
      metrics.synapseDuration.observe({ call: name }, response.durationMs / 1000)
      if (response.status >= 500) metrics.synapseErrors.inc({ call: name, kind: 'http_5xx' })
      const errcode = (response.json as { errcode?: unknown } | undefined)?.errcode
      attempt.upstream = { call: name, status: response.status, matrix_errcode: typeof errcode === 'string' ? errcode.slice(0, 64) : null, duration_ms: tenths(before + response.durationMs) }
      return response
    } catch (error) {
      if (!(error instanceof SynapseCallError)) throw error
      metrics.synapseErrors.inc({ call: name, kind: error.kind })
      attempt.upstream = { call: name, status: null, matrix_errcode: null, duration_ms: tenths(before + error.durationMs) }
      if (error.sent) request.log.warn({ call: name, kind: error.kind }, 'Synapse call failed')
      throw callFailure(error, mayHaveActed, synapse.retryAfterS)
    }
  }

  function contextFor (request: FastifyRequest, caller: Caller): ActionContext {
    const attempt = request.attempt as Attempt
    const read: ActionContext['read'] = async (name, send) => await track(request, name, false, send)
    return {
      request,
      caller,
      config,
      synapse,
      rooms,
      read,
      async act (name, send) {
        if (!attempt.intentWritten) {
          if (!audit.intent(request.id, intentFields(request, attempt))) throw auditUnavailable()
          attempt.intentWritten = true
        }
        return await track(request, name, true, send)
      },
      adminUserId: async () => await options.adminUserId(read),
      setRoomId: (roomId) => { attempt.roomId = roomId }
    }
  }

  /** The room and user as the caller named them, and the room ID once resolved. */
  function auditTarget (request: FastifyRequest, attempt: Attempt): Record<string, unknown> {
    const target = actionOf(request)?.target({ params: request.params ?? {}, body: request.body }) ?? {}
    return { room: auditedText(target.room), user_id: auditedText(target.userId), ...(attempt.roomId === undefined ? {} : { room_id: attempt.roomId }) }
  }

  function intentFields (request: FastifyRequest, attempt: Attempt): Record<string, unknown> {
    return {
      action: attempt.action,
      actor: auditActor(attempt.actor),
      target: auditTarget(request, attempt),
      ...(attempt.policy === undefined ? {} : { policy: attempt.policy }),
      ...(attempt.reason === undefined ? {} : { reason: attempt.reason }),
      ...(attempt.batch === undefined ? {} : { batch: attempt.batch })
    }
  }

  /** Policy on the room and user: the room resolved, its facts fetched only when a rule needs them. */
  async function decide (context: ActionContext, action: ActionDefinition, room: ResolvedTarget['room'], userId: string | undefined): Promise<Decision> {
    const current = policy()
    let facts: RoomFacts | null = null
    if (room !== undefined) {
      const spaces: string[] = []
      for (const ref of current.spaceRefs) {
        if ((await rooms.spaceChildren(ref.slice('space:'.length), context.read)).has(room.id)) spaces.push(ref)
      }
      let canonical: string | null = null
      let alias = room.alias
      let alt: string[] = []
      if (current.needsRoomAliases) {
        // Canonical and alt aliases are facts of the room whatever the caller named: a deny rule
        // on an alt alias must hold when the caller names the room ID or its canonical alias.
        ({ canonical, alt } = await rooms.publishedAliases(room.id, context.read))
        // Any user may point a directory alias at any room, so a named alias counts only when the
        // room itself publishes it (canonical or alt alias, which only its admins can set).
        if (alias !== null && alias !== canonical && !alt.includes(alias)) alias = null
      }
      facts = { id: room.id, alias, canonical_alias: canonical, alt_aliases: alt, spaces, named: room.alias ?? room.id }
    }
    const decision = current.decide({ caller: policyCaller(context.caller), action: action.name, room: facts, user: userId === undefined ? null : { id: userId } })
    metrics.policyDecisions.inc({ rule: decision.rule ?? 'none', effect: decision.effect })
    return decision
  }

  for (const action of options.actions) {
    const schema = {
      tags: [action.name.startsWith('user.') ? 'users' : 'rooms'],
      operationId: action.operationId,
      summary: action.summary,
      description: action.description,
      security: [{ bearerAuth: [] }],
      params: action.params,
      ...(action.body === undefined ? {} : { body: action.body }),
      ...(action.acting ? { querystring: DryRunQuery } : {}),
      response: {
        200: action.acting
          ? { description: 'Done (or, with ?dry_run=true, the prediction).', anyOf: [action.result, DryRunResult] }
          : { description: 'OK.', ...action.result },
        ...problemResponses([...ACTION_PROBLEMS, ...action.problems, ...(action.acting ? ['reason_required', 'audit_unavailable'] as ProblemCode[] : [])])
      }
    }
    fastify.route({
      method: action.method,
      url: action.url,
      schema,
      handler: async (request, reply) => {
        const attempt = request.attempt as Attempt
        const caller = attempt.actor as Caller
        const key = action.acting ? idempotencyKeyOf(request) : undefined
        if (key !== undefined) {
          attempt.idempotency = await claimKey(state.idempotency, request, reply, caller.sub, key, () => { attempt.replayed = true })
          if (attempt.idempotency === undefined) return reply
        }
        const target = action.target({ params: request.params, body: request.body })
        const reason = (request.body as { reason?: string } | undefined)?.reason
        attempt.reason = reason
        attempt.dryRun = action.acting && (request.query as { dry_run?: string } | undefined)?.dry_run === 'true'
        if (target.userId !== undefined && serverOf(target.userId) !== serverName) {
          throw problem('user_not_local', `Only users of this homeserver (${serverName}) can be acted on.`)
        }
        if (target.room?.startsWith('#') === true && !config.allowRemoteRooms && serverOf(target.room) !== serverName) {
          throw problem('room_not_local', `Only aliases of this homeserver (${serverName}) are accepted; use the room ID instead.`)
        }
        if (action.acting && config.requireReason && (reason === undefined || reason.trim() === '')) {
          throw problem('reason_required', 'This gateway requires a reason for every action that changes Synapse: add "reason" to the body.')
        }
        if (!audit.available) throw auditUnavailable()

        const context = contextFor(request, caller)
        const room = target.room === undefined ? undefined : await rooms.resolve(target.room, context.read)
        if (room !== undefined) attempt.roomId = room.id
        const decision = await decide(context, action, room, target.userId)
        attempt.policy = { rule: decision.rule, effect: decision.effect }
        if (!decision.allowed) throw refusal(policy(), config.joinRoles, action.name, decision)

        const resolved = { room, userId: target.userId, reason }
        if (!attempt.dryRun) return await action.run(context, resolved)
        return dryRunAnswer(await (action.dryRun as NonNullable<ActionDefinition['dryRun']>)(context, resolved))
      }
    })
  }

  // Methods an action URL does not take: 405 with Allow, audited like any attempt on an action route.
  const methodsByUrl = new Map<string, string[]>()
  for (const action of options.actions) methodsByUrl.set(action.url, [...(methodsByUrl.get(action.url) ?? []), action.method])
  for (const [url, methods] of methodsByUrl) {
    const others = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'].filter((method) => !methods.includes(method))
    fastify.route({
      method: others,
      url,
      schema: { hide: true },
      handler: async (_request, reply) => await sendProblem(reply, problem('method_not_allowed', `Use ${methods.join(' or ')} on this URL.`, { headers: { allow: methods.join(', ') } }))
    })
  }
}

function dryRunAnswer (report: DryRunReport) {
  return { dry_run: true as const, would_succeed: report.code === undefined, ...(report.code === undefined ? {} : { code: report.code }), checks: report.checks }
}

function auditUnavailable (): GatewayError {
  return problem('audit_unavailable', 'The audit log cannot be written, so no action is performed; the operator must fix it.', { retryAfterS: 5 })
}

/** The caller as the policy sees it: with the whole verified payload for `when` conditions. */
export function policyCaller (caller: Caller): PolicyCaller {
  return { sub: caller.sub, org: caller.org, roles: caller.roles, claims: caller.claims ?? {} }
}

/** Without a policy file, version 1's answer; with one, what did not match and nothing about other rules. */
function refusal (current: Policy, joinRoles: string[], action: string, decision: Decision | undefined): GatewayError {
  if (current.implicit) {
    return problem('insufficient_role', `This action needs one of the roles: ${joinRoles.join(', ')}.`, {
      headers: { 'www-authenticate': 'Bearer error="insufficient_scope"' }
    })
  }
  return problem('policy_denied', decision?.detail ?? `The policy does not allow you ${action}.`)
}
