import { auditActor, auditedText, resultRecord, type RequestOrigin } from '../audit/fields.js'
import type { Caller } from '../auth/claims.js'
import type { GatewayError } from '../errors.js'
import type { Policy } from '../policy/index.js'
import type { NamedTarget } from './action.js'
import { approvalRecordField, type AttemptApproval } from './approval.js'
import type { IdempotencyClaim } from './idempotency.js'

export interface AuditUpstream { call: string, status: number | null, matrix_errcode: string | null, duration_ms: number }

/** What one action attempt did (a route request or a batch item), gathered as it goes and written as its audit records. */
export interface Attempt {
  action: string
  actor: Caller | null
  /** The policy in force when the attempt was admitted: every decision and refusal of the attempt reads this one. */
  policySnapshot: Policy | undefined
  /** The room and user as the caller named them, read once from the request. */
  target: NamedTarget | undefined
  roomId: string | undefined
  upstream: AuditUpstream | undefined
  policy: { rule: string | null, effect: 'allow' | 'deny' } | undefined
  reason: string | undefined
  dryRun: boolean
  intentWritten: boolean
  /** The Idempotency-Key claimed for this request, settled once it is answered. */
  idempotency: IdempotencyClaim | undefined
  replayed: boolean
  /** Set on batch items. */
  batch: { id: string, index: number } | undefined
  /** Held for approval, or run because approved (src/actions/approval.ts). */
  approval: AttemptApproval | undefined
  /** When the attempt's Synapse work must be done by (performance.now()); set by the first call. */
  deadline: number | undefined
}

export function newAttempt (action: string, batch?: { id: string, index: number }): Attempt {
  const fresh: Attempt = { action, actor: null, policySnapshot: undefined, target: undefined, roomId: undefined, upstream: undefined, policy: undefined, reason: undefined, dryRun: false, intentWritten: false, idempotency: undefined, replayed: false, batch, approval: undefined, deadline: undefined }
  return fresh
}

function auditTarget (attempt: Attempt): Record<string, unknown> {
  return { room: auditedText(attempt.target?.room), user_id: auditedText(attempt.target?.userId), ...(attempt.roomId === undefined ? {} : { room_id: attempt.roomId }) }
}

/** The intent record: written before the first changing Synapse call. */
export function intentRecord (attempt: Attempt): Record<string, unknown> {
  return {
    action: attempt.action,
    actor: auditActor(attempt.actor),
    target: auditTarget(attempt),
    ...(attempt.policy === undefined ? {} : { policy: attempt.policy }),
    ...(attempt.reason === undefined ? {} : { reason: attempt.reason }),
    ...(attempt.batch === undefined ? {} : { batch: attempt.batch }),
    ...(attempt.approval === undefined ? {} : { approval: approvalRecordField(attempt.approval) })
  }
}

/** The attempt's result record. */
export function attemptResult (attempt: Attempt, origin: RequestOrigin & { tokenRefusal?: string | undefined }, outcome: string, status: number, error: GatewayError | undefined, durationMs: number): Record<string, unknown> {
  return resultRecord({
    action: attempt.action,
    outcome,
    status,
    code: error?.problem,
    actor: attempt.actor,
    origin,
    durationMs,
    fields: {
      target: auditTarget(attempt),
      ...(origin.tokenRefusal === undefined ? {} : { token_refusal: origin.tokenRefusal }),
      ...(attempt.upstream === undefined ? {} : { upstream: attempt.upstream }),
      ...(attempt.policy === undefined ? {} : { policy: attempt.policy }),
      ...(attempt.reason === undefined ? {} : { reason: attempt.reason }),
      ...(attempt.dryRun ? { dry_run: true } : {}),
      ...(attempt.replayed ? { replayed: true } : {}),
      ...(attempt.batch === undefined ? {} : { batch: attempt.batch }),
      ...(attempt.approval === undefined ? {} : { approval: approvalRecordField(attempt.approval) })
    }
  })
}
