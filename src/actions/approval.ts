import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import {
  ApprovalAnswer, approvalAuditField, approvalRoutes, heldAnswer, holdForApproval, satisfies,
  type ActionAnswer, type Approval, type ApprovalStore, type Person
} from '../approvals/index.js'
import type { AuditLog } from '../audit/log.js'
import type { Caller } from '../auth/claims.js'
import { problem, problemBody, type ProblemCode } from '../errors.js'
import { logProblem, toGatewayError } from '../error-handler.js'
import type { ApprovalRequirement } from '../policy/index.js'
import type { ActionDefinition } from './action.js'
import { newAttempt, type Attempt } from './attempt.js'
import type { ActionInput, Pipeline } from './pipeline.js'
import type { createActionValidators } from './validation.js'

/** The approval an attempt was held for (it answers 202), or the one whose approvals run it. */
export type AttemptApproval =
  | { held: Approval }
  | { approved: Approval, approvedBy: Person[] }

/** What the attempt's intent and result records carry under `approval`. */
export function approvalRecordField (approval: AttemptApproval): Record<string, unknown> {
  if ('held' in approval) return approvalAuditField(approval.held)
  return { id: approval.approved.id, approved_by: approval.approvedBy.map(({ sub, iss }) => ({ sub, iss })) }
}

/** The pending approval an attempt was held for, if it was. */
export function heldApproval (attempt: Attempt): Approval | undefined {
  return attempt.approval !== undefined && 'held' in attempt.approval ? attempt.approval.held : undefined
}

/**
 * The policy allows this attempt only after an approval: `predict` (a dry run says so and goes
 * on), `run` (it runs because the approvals it was held for satisfy what the policy in force asks
 * now), `hold` (store it and answer 202); anything else is refused.
 */
export function throughApproval (attempt: Attempt, action: ActionDefinition, requirement: ApprovalRequirement): 'predict' | 'run' | 'hold' | 'refuse' {
  // A read held for approval would answer its data to the approver: reads are never held.
  if (!action.acting) return 'refuse'
  if (attempt.dryRun) return 'predict'
  if (attempt.approval === undefined) return 'hold'
  if ('approved' in attempt.approval && satisfies(requirement, attempt.approval.approved)) return 'run'
  throw problem('policy_denied', `The policy in force now allows ${action.name} here only after ${requirement.count} approval${requirement.count === 1 ? '' : 's'} by ${requirement.roles.join(' or ')}, which the approvals given do not satisfy; the requester must ask again.`)
}

/** The URL a held request runs again on: the action's route with its parameters, percent-encoded. */
export function heldUrl (action: ActionDefinition, params: unknown): string {
  const values = (params ?? {}) as Record<string, unknown>
  return action.url.split('/').map((part) => part.startsWith(':') ? encodeURIComponent(String(values[part.slice(1)] ?? '')) : part).join('/')
}

/** The route parameters of a held request's URL, read back by the action's route pattern. */
export function heldParams (action: ActionDefinition, url: string): Record<string, string> {
  const segments = (url.split('?', 1)[0] ?? '').split('/')
  const params: Record<string, string> = {}
  action.url.split('/').forEach((part, index) => {
    if (part.startsWith(':')) params[part.slice(1)] = decodeURIComponent(segments[index] ?? '')
  })
  return params
}

/** Stores the request as a pending approval; the attempt answers 202 with it (and its records carry it). */
export async function holdAttempt (store: ApprovalStore, attempt: Attempt, action: ActionDefinition, input: ActionInput, requirement: ApprovalRequirement) {
  const caller = attempt.actor as Caller
  const held = await holdForApproval(store, {
    action: action.name,
    target: { room: attempt.target?.room ?? null, user_id: attempt.target?.userId ?? null, ...(attempt.roomId === undefined ? {} : { room_id: attempt.roomId }) },
    reason: attempt.reason ?? null,
    requested_by: { sub: caller.sub, iss: caller.iss ?? null, org: caller.org, roles: [...caller.roles], claims: caller.claims },
    required: requirement,
    method: action.method,
    url: heldUrl(action, input.params),
    body: input.body
  })
  attempt.approval = { held }
  return heldAnswer(held).body
}

/** The requester again, as the policy saw it when the request was held. */
function requesterOf (approval: Approval): Caller {
  const { sub, iss, org, roles, claims } = approval.requested_by
  return { sub, org, roles, claims, ...(iss === null ? {} : { iss }) }
}

export interface ApprovedRunOptions {
  pipeline: Pipeline
  actions: readonly ActionDefinition[]
  validate: ReturnType<typeof createActionValidators>['validate']
}

/**
 * Runs an approved request once, as a function call of the same pipeline as its route (the way a
 * batch runs its items): the requester as the caller, ALLOWED_ORGS and the policy evaluated again,
 * validation by the route's own schemas, the checks, the intent before Synapse, the result record;
 * both records carry `approval: {id, approved_by}` and the approving call's request ID. The limits
 * were counted when the request was made and when it was approved: not again here, where a 429
 * would use the approval up for nothing.
 */
export function approvedRunner ({ pipeline, actions, validate }: ApprovedRunOptions) {
  return async function runApproved (approval: Approval, approvedBy: Person[], request: FastifyRequest): Promise<ActionAnswer> {
    const started = performance.now()
    const action = actions.find((candidate) => candidate.name === approval.action)
    const attempt = newAttempt(approval.action)
    attempt.approval = { approved: approval, approvedBy }
    const origin = { id: request.id, ip: request.ip, userAgent: request.headers['user-agent'] }
    try {
      if (action === undefined) throw problem('policy_denied', `This gateway no longer has the action ${approval.action}.`)
      const params = heldParams(action, approval.held.url)
      const body = approval.held.body ?? null
      pipeline.authorize(attempt, action, requesterOf(approval))
      const invalid = validate(action, 'params', params) ?? (action.body === undefined ? undefined : validate(action, 'body', body))
      if (invalid !== undefined) throw invalid
      const answer = await pipeline.perform(request.id, request.log, attempt, action, { params, body, dryRun: false })
      pipeline.finish(attempt, origin, 200, undefined, 'success', performance.now() - started)
      return { status: 200, headers: { 'content-type': 'application/json; charset=utf-8' }, body: JSON.stringify(answer) }
    } catch (thrown) {
      const error = toGatewayError(thrown as Parameters<typeof toGatewayError>[0], action?.body)
      logProblem(request.log, thrown, error)
      attempt.target ??= { room: approval.target.room ?? undefined, userId: approval.target.user_id ?? undefined }
      const status = error.statusCode as number
      pipeline.finish(attempt, origin, status, error, error.outcome, performance.now() - started)
      const headers: Record<string, string> = { 'content-type': 'application/problem+json; charset=utf-8', ...error.headers }
      if (error.retryAfterS !== undefined) headers['retry-after'] = String(error.retryAfterS)
      return { status, headers, body: JSON.stringify(problemBody(error, request.id)) }
    }
  }
}

/** The 202 of an acting route, in its OpenAPI operation. */
export const HELD_RESPONSE = { description: 'Held until approved (the policy allows this only after an approval): the pending approval; `Location` names it. Nothing changed.', ...ApprovalAnswer }
/** What holding a request can answer besides the action's own problems. */
export const HOLD_PROBLEMS: ProblemCode[] = ['approvals_full', 'state_unavailable']

export interface ApprovalWiringOptions extends ApprovedRunOptions {
  store: ApprovalStore
  audit: AuditLog
  expirySweepMs?: number | undefined
}

/**
 * The approval routes (src/approvals/routes.ts) in the app: admitted like every route (per-IP
 * limit, token, ALLOWED_ORGS, per-caller limit; reads counted per replica when Redis is away,
 * decisions refused), audited in the same chain as result records, and running an approved
 * request through the pipeline.
 */
export const approvalWiring: FastifyPluginAsync<ApprovalWiringOptions> = async (fastify, options) => {
  const { audit } = options
  await fastify.register(approvalRoutes, {
    store: options.store,
    authenticate: async (request) => await options.pipeline.admitCaller(request, request.method !== 'GET'),
    execute: approvedRunner(options),
    // An expiry found by the sweep belongs to no request: its record is named after the approval.
    audit: (_event, fields, requestId) => { audit.result(requestId ?? `approval-expiry-${String((fields.approval as { id?: unknown } | undefined)?.id)}`, fields) },
    ...(options.expirySweepMs === undefined ? {} : { expirySweepMs: options.expirySweepMs })
  })
}
