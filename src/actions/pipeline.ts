import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { RequestOrigin } from '../audit/fields.js'
import type { AuditLog } from '../audit/log.js'
import type { Caller } from '../auth/claims.js'
import { problem, type GatewayError, type Outcome } from '../errors.js'
import { serverOf } from '../matrix-ids.js'
import type { ActionName, Policy } from '../policy/index.js'
import type { ApprovalStore } from '../approvals/index.js'
import { namedTarget, type ActionDefinition } from './action.js'
import { heldApproval, holdAttempt, throughApproval } from './approval.js'
import { attemptResult, type Attempt } from './attempt.js'
import { dryRunChecks, enforceChecks, type DryRunReport } from './checks.js'
import { checkOrg, policyCaller, refusal, resolveNamed, roomFacts, unknownRoomFacts } from './decision.js'
import { auditUnavailable, createContexts, type FacadeOptions } from './facade.js'
import type { RequestLimits } from './limits.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The action attempt of an action route; null elsewhere. */
    attempt: Attempt | null
    /** Who the token says called, once verified (action routes and batches): the per-caller limit's key. */
    caller: Caller | null
  }
}

export interface PipelineOptions extends FacadeOptions {
  audit: AuditLog
  /** The policy in force; a function because SIGHUP may replace it. Read once per attempt. */
  policy: () => Policy
  authenticate: (request: FastifyRequest) => Promise<Caller>
  limits: RequestLimits
  /** Where requests the policy allows only after an approval are held (src/approvals). */
  approvals: ApprovalStore
}

/** What the caller sent for one attempt, already validated by the action's schemas. */
export interface ActionInput { params: unknown, body: unknown, query?: unknown, dryRun: boolean }

/**
 * The ordered steps every action attempt goes through, for a route request and a batch item alike:
 * admit (per-IP limit → token → org → policy on the action → per-caller limit), then perform
 * (target → reason → room resolution → policy on room and user → checks → Synapse), then the
 * result record. The action modules only say what differs.
 */
export function createPipeline (options: PipelineOptions) {
  const { config, audit, metrics, rooms } = options
  const { serverName } = config.synapse
  const contextFor = createContexts(options)

  /** Step 1. `caller`: already verified (a batch's items); otherwise the request's token is. */
  async function admit (request: FastifyRequest, attempt: Attempt, action: ActionDefinition, caller?: Caller): Promise<void> {
    await options.limits.admitAddress(request, action.acting)
    caller ??= await options.authenticate(request)
    request.caller = caller
    authorize(attempt, action, caller)
    await options.limits.admitCaller(request, action.acting)
  }

  /** For routes that are not actions (the approval routes): the same limits, token and ALLOWED_ORGS, no policy. */
  async function admitCaller (request: FastifyRequest, acting: boolean): Promise<Caller> {
    await options.limits.admitAddress(request, acting)
    const caller = await options.authenticate(request)
    request.caller = caller
    checkOrg(config.allowedOrgs, caller)
    await options.limits.admitCaller(request, acting)
    return caller
  }

  /** The caller's org and the policy on the action alone (an approved request runs from here, its limits long counted). */
  function authorize (attempt: Attempt, action: ActionDefinition, caller: Caller): void {
    attempt.actor = caller
    checkOrg(config.allowedOrgs, caller)
    const policy = attempt.policySnapshot = options.policy()
    if (!policy.permitsAction(policyCaller(caller), action.name as ActionName)) {
      // A policy decision like the later ones (no rule gives this caller the action): audited and counted.
      attempt.policy = { rule: null, effect: 'deny' }
      metrics.policyDecisions.inc({ rule: 'none', effect: 'deny' })
      throw refusal(policy, config.joinRoles, caller, action.name, undefined)
    }
  }

  /** Step 2: everything after admission, up to the action's answer (or a dry run's report). */
  async function perform (requestId: string, log: FastifyBaseLogger, attempt: Attempt, action: ActionDefinition, input: ActionInput): Promise<unknown> {
    const caller = attempt.actor as Caller
    const policy = attempt.policySnapshot as Policy
    const target = attempt.target = namedTarget(input.params, input.body)
    const reason = (input.body as { reason?: string } | null | undefined)?.reason
    attempt.reason = reason
    attempt.dryRun = action.acting && input.dryRun
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

    const context = contextFor(attempt, requestId, log, input.query, input.body)
    const { room, unknown } = target.room === undefined ? { room: undefined, unknown: undefined } : await resolveNamed(rooms, target.room, context.synapse)
    if (room !== undefined) attempt.roomId = room.id
    const approvedIn = attempt.approval !== undefined && 'approved' in attempt.approval ? attempt.approval.approved.target.room_id : undefined
    if (typeof approvedIn === 'string' && room !== undefined && room.id !== approvedIn) {
      // The alias was pointed at another room after the request was held: the approvers saw another room.
      throw problem('approval_stale', `${target.room as string} now names another room than ${approvedIn}, the room the request was approved for; nothing was done. Make the request again.`)
    }
    const facts = room === undefined ? (unknown === undefined ? null : unknownRoomFacts(target.room as string)) : await roomFacts(policy, rooms, context.synapse, room)
    const decision = policy.decide({ caller: policyCaller(caller), action: action.name as ActionName, room: facts, user: target.userId === undefined ? null : { id: target.userId } })
    metrics.policyDecisions.inc({ rule: decision.rule ?? 'none', effect: decision.effect })
    attempt.policy = { rule: decision.rule, effect: decision.effect }
    // An unknown room is named only to a caller the policy would let act on a room of that name (nothing is held for it).
    if (unknown !== undefined && (decision.allowed || decision.approval !== undefined)) throw unknown
    let approvalRequired = false
    if (!decision.allowed) {
      const step = decision.approval === undefined ? 'refuse' : throughApproval(attempt, action, decision.approval)
      if (step === 'refuse') throw refusal(policy, config.joinRoles, caller, action.name, decision)
      if (step === 'hold') {
        // The gateway's own refusals (unknown, protected or deactivated user…) come now, not after an approver's time.
        await enforceChecks(action.checks ?? [], context, { room, userId: target.userId, reason })
        return await holdAttempt(options.approvals, attempt, action, input, decision.approval as NonNullable<typeof decision.approval>)
      }
      approvalRequired = step === 'predict'
    }

    const resolved = { room, userId: target.userId, reason }
    if (attempt.dryRun) return dryRunAnswer(await dryRunChecks(action.checks ?? [], context, resolved), approvalRequired)
    await enforceChecks(action.checks ?? [], context, resolved)
    return await action.run(context, resolved)
  }

  /** Step 3: the attempt's metrics and result record. */
  function finish (attempt: Attempt, origin: RequestOrigin & { id: string, tokenRefusal?: string | undefined }, status: number, error: GatewayError | undefined, outcome: Outcome, durationMs: number): void {
    metrics.actions.inc({ action: attempt.action, outcome, code: error?.problem ?? 'none' })
    audit.result(origin.id, attemptResult(attempt, origin, outcome, status, error, durationMs))
  }

  return { admit, admitCaller, authorize, perform, finish }
}

export type Pipeline = ReturnType<typeof createPipeline>

/** `approvalRequired`: the real request would be held for approval (dry runs never are). */
function dryRunAnswer (report: DryRunReport, approvalRequired: boolean) {
  return { dry_run: true as const, would_succeed: report.code === undefined, ...(report.code === undefined ? {} : { code: report.code }), ...(approvalRequired ? { approval_required: true as const } : {}), checks: report.checks }
}

/** The outcome of an answer without a problem. */
export const successOutcome = (attempt: Attempt): Outcome => attempt.dryRun ? 'dry_run' : heldApproval(attempt) !== undefined ? 'approval_requested' : 'success'
