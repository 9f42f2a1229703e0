import { hash } from 'node:crypto'
import type { Caller } from '../auth/claims.js'

const MAX_AUDITED_TEXT = 512

/** Caller-supplied text as it goes into a record: strings only, cut to a bounded length. */
export const auditedText = (value: unknown): string | null => typeof value === 'string' ? value.slice(0, MAX_AUDITED_TEXT) : null

/** Who acted, as records show it: never the token's other claims. */
export function auditActor (caller: Caller | null): Record<string, unknown> | null {
  if (caller === null) return null
  return { sub: caller.sub, org: caller.org, roles: caller.roles, ...(caller.iss === undefined ? {} : { iss: caller.iss }), ...(caller.jti === undefined ? {} : { jti: caller.jti }) }
}

/** An Idempotency-Key as records keep it: its SHA-256, since the raw key is a bearer of the stored answer. */
export function idempotencyKeyField (key: unknown): { idempotency_key: string } | Record<string, never> {
  return typeof key === 'string' ? { idempotency_key: hash('sha256', key, 'hex') } : {}
}

const tenths = (ms: number) => Math.round(ms * 10) / 10

/** Where a request came from, as every result record shows it. */
export interface RequestOrigin {
  ip: string
  userAgent: unknown
  /** The caller's x-request-id when it was replaced (not fit to be the request ID). */
  clientRequestId?: string | undefined
  /** The Idempotency-Key header as sent (only its digest is recorded). */
  idempotencyKey?: unknown
}

/** The fields of a `result` record (the one record builder: action routes, batch items, the batch itself, unroutable requests). */
export interface ResultParts {
  action: string
  outcome: string
  status: number
  code?: string | undefined
  actor: Caller | null
  /** The attempt's own fields, in record order, between the actor and the duration (target, upstream, policy, reason…). */
  fields?: Record<string, unknown>
  origin: RequestOrigin
  durationMs: number
}

export function resultRecord ({ action, outcome, status, code, actor, fields, origin, durationMs }: ResultParts): Record<string, unknown> {
  return {
    action,
    outcome,
    status,
    ...(code === undefined ? {} : { code }),
    actor: auditActor(actor),
    client: { ip: origin.ip, user_agent: auditedText(origin.userAgent) },
    ...(origin.clientRequestId === undefined ? {} : { client_request_id: origin.clientRequestId }),
    ...fields,
    ...idempotencyKeyField(origin.idempotencyKey),
    duration_ms: tenths(durationMs)
  }
}
