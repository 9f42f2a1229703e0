import { Type, type Static } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { auditedText, resultRecord } from '../audit/fields.js'
import { GatewayError, problem, type ProblemCode } from '../errors.js'
import { problemResponses, Reason } from '../schemas.js'
import { StateUnavailableError } from '../state/unavailable.js'
import { stateUnavailable } from './held.js'
import {
  APPROVAL_ID, approvers, decodeCursor, isVisibleTo, mayDecide, samePerson, type ApprovalCaller,
  type Approval, type ApprovalStatus, type ApprovalStore, type ApproveOutcome, type DecisionRefusal, type DenyOutcome, type Person
} from './types.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** An approval route's call already has its audit record. */
    approvalAudited: boolean
    /** Who called an approval route, once admitted. */
    approvalCaller: ApprovalCaller | null
  }
}

const iso = (ms: number): string => new Date(ms).toISOString()

const PersonView = Type.Object({ sub: Type.String(), iss: Type.Union([Type.String(), Type.Null()]) })
const StatusSchema = Type.Union([Type.Literal('pending'), Type.Literal('approved'), Type.Literal('denied'), Type.Literal('expired')])

export const ApprovalView = Type.Object({
  id: Type.String({ description: 'Unguessable, URL-safe.' }),
  status: StatusSchema,
  action: Type.String(),
  target: Type.Object({ room: Type.Union([Type.String(), Type.Null()]), user_id: Type.Union([Type.String(), Type.Null()]), room_id: Type.Optional(Type.Union([Type.String(), Type.Null()], { description: 'The room ID the room resolved to when the request was held: the approved request runs in this room only (409 approval_stale otherwise).' })) }, { description: 'The room and user as the requester named them.' }),
  reason: Type.Union([Type.String(), Type.Null()]),
  requested_by: PersonView,
  required: Type.Object({ roles: Type.Array(Type.String()), count: Type.Integer() }, { description: 'Approvals needed: `count` distinct callers, each holding one of `roles`, never the requester.' }),
  decisions: Type.Array(Type.Object({
    sub: Type.String(),
    iss: Type.Union([Type.String(), Type.Null()]),
    decision: Type.Union([Type.Literal('approve'), Type.Literal('deny')]),
    reason: Type.Union([Type.String(), Type.Null()]),
    at: Type.String({ format: 'date-time' })
  })),
  created_at: Type.String({ format: 'date-time' }),
  expires_at: Type.String({ format: 'date-time' }),
  result: Type.Optional(Type.Object({
    status: Type.Integer({ description: 'The HTTP status the action answered when it ran.' }),
    code: Type.Union([Type.String(), Type.Null()]),
    at: Type.String({ format: 'date-time' })
  }, { description: 'Set once the approved request has run.' }))
}, { description: 'A request held until enough approvals arrive. Never shows the held body or the requester\'s other claims.' })

export const ApprovalAnswer = Type.Object({ approval: ApprovalView })
const ApprovalList = Type.Object({
  approvals: Type.Array(ApprovalView),
  next: Type.Optional(Type.String({ description: 'Pass as `from` for the next page; absent on the last page.' }))
})
const ListQuery = Type.Object({
  status: Type.Optional(StatusSchema),
  limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$', description: '1 to 100 (default 50).' })),
  from: Type.Optional(Type.String({ maxLength: 256 }))
}, { additionalProperties: false })
const IdParams = Type.Object({ id: Type.String({ maxLength: 64 }) })
const DecisionBody = Type.Object({ reason: Type.Optional(Reason) }, { additionalProperties: false })

/** The approval as callers see it: the held request, the requester's claims and deciders' roles stay inside. */
export function approvalView (approval: Approval): Static<typeof ApprovalView> {
  return {
    id: approval.id,
    status: approval.status,
    action: approval.action,
    target: approval.target,
    reason: approval.reason,
    requested_by: { sub: approval.requested_by.sub, iss: approval.requested_by.iss },
    required: { roles: [...approval.required.roles], count: approval.required.count },
    decisions: approval.decisions.map(({ sub, iss, decision, reason, at }) => ({ sub, iss, decision, reason, at: iso(at) })),
    created_at: iso(approval.created_at),
    expires_at: iso(approval.expires_at),
    ...(approval.result === null ? {} : { result: { status: approval.result.status, code: approval.result.code, at: iso(approval.result.at) } })
  }
}

/** For the pipeline: the 202 a request held for approval answers. */
export function heldAnswer (approval: Approval): { status: 202, headers: Record<string, string>, body: Static<typeof ApprovalAnswer> } {
  return { status: 202, headers: { location: `/v1/approvals/${approval.id}` }, body: { approval: approvalView(approval) } }
}

/** What every approval audit record carries under `approval` (the pipeline's intent and result too). */
export function approvalAuditField (approval: Approval): Record<string, unknown> {
  return {
    id: approval.id,
    rule: approval.required.rule,
    roles: approval.required.roles,
    count: approval.required.count,
    requested_by: { sub: approval.requested_by.sub, iss: approval.requested_by.iss },
    approved_by: approvers(approval).map(({ sub, iss }) => ({ sub, iss }))
  }
}

/**
 * The records of an approval's story carry their event as their `outcome` (the held request's own
 * record is `approval_requested`, written by the pipeline); `approval_read` records a GET of the
 * approval routes, whose outcome is the usual `success` or its problem's.
 */
export type ApprovalAuditEvent = 'approval_approved' | 'approval_denied' | 'approval_expired' | 'approval_refused' | 'approval_read'

/** The held action's own answer, as the approving call passes it on. */
export interface ActionAnswer { status: number, headers: Record<string, string>, body: string }

/** The caller as the app's authentication gives it (src/auth Caller fits: its `iss` may be absent). */
/** What `authenticate` gives: the verified caller (its org claim decides whose approvals it may see). */
export interface AuthenticatedCaller { sub: string, iss?: string | null | undefined, org?: string | null | undefined, roles: readonly string[] }

export interface ApprovalRoutesOptions {
  store: ApprovalStore
  /** Everything the app does to admit a caller (per-IP limit, token, org); throws its problem. */
  authenticate: (request: FastifyRequest) => Promise<AuthenticatedCaller>
  /**
   * Runs the approved request through the action pipeline (policy evaluated again, intent before
   * Synapse) as the requester, with `approval: {id, approved_by}` on its records; called at most
   * once per approval, by the approving call that completed the count.
   */
  execute: (approval: Approval, approvedBy: Person[], request: FastifyRequest) => Promise<ActionAnswer>
  /** Writes one audit record; `requestId` is null for expiries found by the sweep. */
  audit: (event: ApprovalAuditEvent, fields: Record<string, unknown>, requestId: string | null) => void
  /** How often pending approvals past their expiry are marked and audited (ms; 0: never, default 60 000). */
  expirySweepMs?: number
}

const PROBLEMS_OF_ALL: ProblemCode[] = ['invalid_request', 'missing_token', 'invalid_token', 'token_expired', 'keys_unavailable', 'org_not_allowed', 'rate_limited', 'state_unavailable', 'shutting_down']
const DETAIL_NOT_FOUND = 'No approval with this ID that you requested or may decide (it may also have ended more than APPROVAL_TTL_S ago).'

/** Marks pending approvals past their expiry as expired and audits each once (whichever replica marks it). */
export async function sweepExpiredApprovals (store: ApprovalStore, audit: ApprovalRoutesOptions['audit']): Promise<number> {
  const expired = await store.expireDue()
  for (const approval of expired) audit('approval_expired', expiryFields(approval), null)
  return expired.length
}

function expiryFields (approval: Approval): Record<string, unknown> {
  return { action: approval.action, outcome: 'approval_expired', code: 'approval_expired', target: approval.target, approval: approvalAuditField(approval), expires_at: iso(approval.expires_at) }
}

/**
 * GET /v1/approvals, GET /v1/approvals/{id}, POST /v1/approvals/{id}/approve and …/deny. A caller
 * sees the approvals it requested or may decide (it holds one of the required roles); any other
 * ID is 404 approval_not_found, so IDs reveal nothing. The requester may deny (withdraw) its own
 * request but never approve it.
 */
export const approvalRoutes: FastifyPluginAsyncTypebox<ApprovalRoutesOptions> = async (fastify, options) => {
  const { store, audit } = options
  fastify.decorateRequest('approvalAudited', false)
  fastify.decorateRequest('approvalCaller', null)
  // Every call is audited: decisions by decide(), the rest here (reads, and refusals before the handler).
  fastify.addHook('onSend', (request, reply, payload, done) => {
    if (!request.approvalAudited) {
      const error = request.gatewayError
      const decision = request.routeOptions.url?.endsWith('/approve') === true ? 'approve' : request.routeOptions.url?.endsWith('/deny') === true ? 'deny' : undefined
      if (decision !== undefined) {
        audit('approval_refused', decisionRecord(request, decision, request.approvalCaller ?? undefined, undefined, null, error ?? problem('internal_error', 'unanswered')), request.id)
      } else {
        const id = (request.params as { id?: unknown } | undefined)?.id
        audit('approval_read', resultRecord({
          action: id === undefined ? 'approvals.list' : 'approvals.read',
          outcome: error === undefined ? 'success' : error.outcome,
          status: reply.statusCode,
          code: error?.problem,
          actor: null,
          origin: { ip: request.ip, userAgent: request.headers['user-agent'] },
          fields: {
            // The caller as approvals know it (sub, iss, roles), in the actor's place.
            ...(request.approvalCaller === null ? {} : { actor: { sub: request.approvalCaller.sub, iss: request.approvalCaller.iss, org: request.approvalCaller.org, roles: request.approvalCaller.roles } }),
            ...(request.tokenRefusal === undefined ? {} : { token_refusal: request.tokenRefusal }),
            ...(id === undefined ? {} : { approval: { id: auditedText(id) } })
          },
          durationMs: reply.elapsedTime
        }), request.id)
      }
    }
    done(null, payload)
  })

  const sweepMs = options.expirySweepMs ?? 60_000
  if (sweepMs > 0) {
    let timer: NodeJS.Timeout | undefined
    fastify.addHook('onReady', async () => {
      timer = setInterval(() => {
        sweepExpiredApprovals(store, audit).catch((error: unknown) => {
          fastify.log.warn({ err: { message: (error as Error).message } }, 'approvals: the expiry sweep failed; it runs again later')
        })
      }, sweepMs)
      timer.unref()
    })
    fastify.addHook('onClose', async () => { clearInterval(timer) })
  }

  async function stored<T> (operation: () => Promise<T>): Promise<T> {
    try {
      return await operation()
    } catch (error) {
      if (error instanceof StateUnavailableError) throw stateUnavailable()
      throw error
    }
  }

  async function caller (request: FastifyRequest): Promise<ApprovalCaller> {
    const who = await options.authenticate(request)
    request.approvalCaller = { sub: who.sub, iss: who.iss ?? null, org: who.org ?? null, roles: who.roles }
    return request.approvalCaller
  }

  /** Authentication first, then the input: the same order as the action routes. */
  function checkInput (request: FastifyRequest, detail: string): void {
    const error = request.validationError
    if (error === undefined || error === null) return
    // An approve or deny without a body is fine: the reason is optional.
    if (error.validationContext === 'body' && (request.body === undefined || request.body === null)) return
    throw problem(error.validationContext === 'body' ? 'invalid_body' : 'invalid_request', detail)
  }

  fastify.get('/v1/approvals', {
    attachValidation: true,
    schema: {
      tags: ['approvals'],
      operationId: 'listApprovals',
      summary: 'The approvals you requested or may decide, newest first',
      security: [{ bearerAuth: [] }],
      querystring: ListQuery,
      response: { 200: ApprovalList, ...problemResponses(PROBLEMS_OF_ALL) }
    }
  }, async (request) => {
    const who = await caller(request)
    checkInput(request, 'The query takes status (pending, approved, denied or expired), limit (1 to 100) and from (a previous answer\'s next).')
    const limit = request.query.limit === undefined ? 50 : Number(request.query.limit)
    if (limit < 1 || limit > 100) throw problem('invalid_request', 'limit must be between 1 and 100.')
    if (request.query.from !== undefined && decodeCursor(request.query.from) === undefined) {
      throw problem('invalid_request', 'from must be the next of a previous answer.')
    }
    const page = await stored(() => store.list({ requester: who, roles: who.roles, org: who.org, status: request.query.status as ApprovalStatus | undefined, limit, from: request.query.from }))
    return { approvals: page.approvals.map(approvalView), ...(page.next === undefined ? {} : { next: page.next }) }
  })

  /** The approval when this caller may see it; otherwise the same 404 as for an unknown ID. */
  async function visible (id: string, who: ApprovalCaller): Promise<Approval> {
    const approval = APPROVAL_ID.test(id) ? await stored(() => store.get(id)) : undefined
    if (approval === undefined || !isVisibleTo(approval, who)) throw problem('approval_not_found', DETAIL_NOT_FOUND)
    return approval
  }

  fastify.get('/v1/approvals/:id', {
    schema: {
      tags: ['approvals'],
      operationId: 'getApproval',
      summary: 'One approval you requested or may decide',
      security: [{ bearerAuth: [] }],
      params: IdParams,
      response: { 200: ApprovalAnswer, ...problemResponses([...PROBLEMS_OF_ALL, 'approval_not_found']) }
    }
  }, async (request) => {
    const who = await caller(request)
    return { approval: approvalView(await visible(request.params.id, who)) }
  })

  const decisionSchema = (decision: 'approve' | 'deny') => ({
    tags: ['approvals'],
    operationId: decision === 'approve' ? 'approveApproval' : 'denyApproval',
    summary: decision === 'approve' ? 'Approve a held request (the last approval needed runs it)' : 'Deny a held request (the requester may withdraw its own)',
    description: decision === 'approve'
      ? 'By a caller holding one of the required roles, never the requester. While more approvals are needed: 202 with the approval. The approval that completes the count runs the request once, as it was made (the policy is evaluated again), and this call answers with the action\'s own answer.'
      : 'By a caller holding one of the required roles, or the requester: the approval ends as denied and nothing runs.',
    security: [{ bearerAuth: [] }],
    params: IdParams,
    body: DecisionBody,
    response: decision === 'approve'
      ? {
          200: { description: 'The request ran: the action\'s own answer (its status and body; a refusal at that point is its problem).' },
          202: { description: 'Approval recorded; more are needed.', ...ApprovalAnswer },
          ...problemResponses([...PROBLEMS_OF_ALL, 'invalid_body', 'approval_not_found', 'self_approval', 'approval_decided', 'approval_expired', 'approval_stale'])
        }
      : { 200: ApprovalAnswer, ...problemResponses([...PROBLEMS_OF_ALL, 'invalid_body', 'approval_not_found', 'approval_decided', 'approval_expired']) }
  })

  /** One audit record per decision call, refused or not. */
  function decisionRecord (request: FastifyRequest, decision: 'approve' | 'deny', who: ApprovalCaller | undefined, approval: Approval | undefined, reason: string | null, error: GatewayError | undefined, extra: Record<string, unknown> = {}): Record<string, unknown> {
    request.approvalAudited = true
    return {
      action: approval?.action ?? 'unknown',
      decision,
      outcome: error !== undefined ? 'approval_refused' : decision === 'approve' ? 'approval_approved' : 'approval_denied',
      ...(error === undefined ? {} : { code: error.problem }),
      actor: who === undefined ? null : { sub: who.sub, iss: who.iss, org: who.org, roles: who.roles },
      ...(request.tokenRefusal === undefined ? {} : { token_refusal: request.tokenRefusal }),
      target: approval?.target ?? null,
      ...(approval === undefined ? { approval: { id: auditedText((request.params as { id?: unknown }).id) } } : { approval: approvalAuditField(approval) }),
      ...(reason === null ? {} : { reason }),
      client: { ip: request.ip, user_agent: auditedText(request.headers['user-agent']) },
      ...extra
    }
  }

  function refusalProblem (refused: DecisionRefusal, decision: 'approve' | 'deny'): GatewayError {
    switch (refused.kind) {
      case 'not_found': return problem('approval_not_found', DETAIL_NOT_FOUND)
      case 'self_approval': return problem('self_approval', 'You requested this action: another caller holding one of the required roles must approve it.')
      case 'repeat': {
        const missing = refused.approval.required.count - approvers(refused.approval).length
        return problem('approval_decided', `You already approved this request; it still needs ${missing} approval${missing === 1 ? '' : 's'} by other callers.`)
      }
      case 'decided': return problem('approval_decided', `This approval was already ${refused.approval.status}; it cannot be ${decision === 'approve' ? 'approved' : 'denied'} any more.`)
      case 'expired': return problem('approval_expired', `This approval expired at ${iso(refused.approval.expires_at)} without enough approvals; the requester must make the request again.`)
    }
  }

  /**
   * Shared by approve and deny: who may decide, the store's verdict, its audit record. Returns the
   * approval when the decision was recorded.
   */
  async function decide (request: FastifyRequest<{ Params: Static<typeof IdParams>, Body: Static<typeof DecisionBody> | undefined }>, decision: 'approve' | 'deny') {
    const reason = request.body?.reason ?? null
    let who: Awaited<ReturnType<typeof caller>> | undefined
    let approval: Approval | undefined
    try {
      const decider = who = await caller(request)
      checkInput(request, 'The body is optional; it takes only reason (text of at most 512 characters, without control characters).')
      approval = await visible(request.params.id, decider)
      const requester = samePerson(approval.requested_by, decider)
      if (decision === 'approve' && requester) throw problem('self_approval', 'You requested this action: another caller holding one of the required roles must approve it.')
      // Seen only by the requester and the deciders, so a caller here without the roles is the requester (deny: withdrawal).
      if (!requester && !mayDecide(approval, decider)) throw problem('approval_not_found', DETAIL_NOT_FOUND)
      const outcome: ApproveOutcome | DenyOutcome = await stored(async () => decision === 'approve' ? await store.approve(request.params.id, decider, reason) : await store.deny(request.params.id, decider, reason))
      if (outcome.kind === 'expired' && outcome.expiredNow) audit('approval_expired', expiryFields(outcome.approval), request.id)
      if (outcome.kind !== 'recorded' && outcome.kind !== 'execute' && outcome.kind !== 'denied') {
        if ('approval' in outcome) approval = outcome.approval
        throw refusalProblem(outcome, decision)
      }
      return { who: decider, reason, outcome }
    } catch (error) {
      if (error instanceof GatewayError) {
        audit('approval_refused', decisionRecord(request, decision, who, approval, reason, error), request.id)
      }
      throw error
    }
  }

  fastify.post('/v1/approvals/:id/approve', { attachValidation: true, schema: decisionSchema('approve') }, async (request, reply: FastifyReply) => {
    const { who, reason, outcome } = await decide(request, 'approve')
    const { approval } = outcome as { approval: Approval }
    const complete = outcome.kind === 'execute'
    audit('approval_approved', decisionRecord(request, 'approve', who, approval, reason, undefined, { approvals: approvers(approval).length, complete }), request.id)
    if (!complete) return await reply.code(202).send({ approval: approvalView(approval) })

    let answer: ActionAnswer
    try {
      answer = await options.execute(approval, approvers(approval).map(({ sub, iss }) => ({ sub, iss })), request)
    } catch (error) {
      await stored(() => store.complete(approval.id, { status: 500, code: 'internal_error' })).catch(() => undefined)
      throw error
    }
    await stored(() => store.complete(approval.id, { status: answer.status, code: problemCodeOf(answer) })).catch((error: unknown) => {
      request.log.warn({ err: { message: (error as Error).message }, approval: approval.id }, 'approvals: the result of an executed approval could not be recorded')
    })
    reply.code(answer.status).headers(answer.headers)
    return await reply.send(answer.body)
  })

  fastify.post('/v1/approvals/:id/deny', { attachValidation: true, schema: decisionSchema('deny') }, async (request) => {
    const { who, reason, outcome } = await decide(request, 'deny')
    const { approval } = outcome as { approval: Approval }
    audit('approval_denied', decisionRecord(request, 'deny', who, approval, reason, undefined), request.id)
    return { approval: approvalView(approval) }
  })
}

function problemCodeOf (answer: ActionAnswer): string | null {
  if (answer.status < 400) return null
  try {
    const code = (JSON.parse(answer.body) as { code?: unknown }).code
    return typeof code === 'string' ? code.slice(0, 64) : null
  } catch {
    return null
  }
}
