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
