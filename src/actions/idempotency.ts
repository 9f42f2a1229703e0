import { createHash } from 'node:crypto'
import { Type } from '@sinclair/typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Config } from '../config.js'
import { PROBLEMS, problem, type Outcome, type ProblemCode } from '../errors.js'
import { fingerprint, type IdempotencyStore } from '../state/idempotency.js'
import { StateUnavailableError } from '../state/shared.js'

/** draft-ietf-httpapi-idempotency-key-header: a short printable token. */
const KEY = /^[\x21-\x7E]{1,255}$/

export const INVALID_KEY_DETAIL = 'Idempotency-Key must be one header of at most 255 printable ASCII characters, e.g. a UUID.'

/** The request header of acting routes and batches, as the route schemas declare (and validate) it. */
export const IdempotencyKeyHeader = Type.Object({
  'idempotency-key': Type.Optional(Type.String({
    pattern: KEY.source,
    description: 'Optional. A retry with the same key within IDEMPOTENCY_TTL_S gets the first complete answer back (Idempotent-Replayed: true) instead of acting again; 1 to 255 printable ASCII characters, e.g. a UUID.',
    examples: ['6f1c0e52-join-alice']
  }))
})

export interface IdempotencyClaim { scope: string, key: string }

/** The Idempotency-Key the caller sent, checked; undefined when none. */
export function idempotencyKeyOf (request: FastifyRequest): string | undefined {
  const value = request.headers['idempotency-key']
  if (value === undefined) return undefined
  if (typeof value !== 'string' || !KEY.test(value)) {
    throw problem('invalid_request', INVALID_KEY_DETAIL)
  }
  return value
}

export function stateUnavailable (): ReturnType<typeof problem> {
  return problem('state_unavailable', 'The gateway\'s shared state (Redis) cannot be reached, so actions are refused rather than run without their limits and idempotency records; retry shortly.', { retryAfterS: 2 })
}

/**
 * Claims the key for this caller, or answers for it: the stored first answer (Idempotent-Replayed),
 * 409 while the first is still running, 422 when the key came with another request.
 * Returns the claim to settle once answered, or undefined when a replay was sent. `onReplay` runs
 * before the replay is sent: sending runs the onSend hooks (the audit record) at once.
 */
export async function claimKey (store: IdempotencyStore, request: FastifyRequest, reply: FastifyReply, scope: string, key: string, onReplay: () => void, fingerprintKey?: Buffer): Promise<IdempotencyClaim | undefined> {
  let claim
  try {
    claim = await store.claim(scope, key, fingerprint(request.method, request.url, JSON.stringify(request.body ?? null), fingerprintKey))
  } catch (error) {
    if (error instanceof StateUnavailableError) throw stateUnavailable()
    throw error
  }
  switch (claim.kind) {
    case 'new':
      return { scope, key }
    case 'in_progress':
      throw problem('idempotency_in_progress', 'A request with this Idempotency-Key is still running; wait for its answer, then retry with the same key to get it.', { retryAfterS: 1 })
    case 'mismatch':
      throw problem('idempotency_key_reused', 'This Idempotency-Key was used with a different request (method, path or body); use a new key for a new request.')
    case 'replay':
      onReplay()
      reply.code(claim.answer.status).headers(claim.answer.headers).header('idempotent-replayed', 'true')
      await reply.send(claim.answer.body)
      return undefined
  }
}

/**
 * Stores the first complete answer, or frees the key when the answer says "try again" (429, 5xx,
 * 409 in progress): a retry with the same key then runs again, which the actions tolerate
 * (a second join or removal changes nothing).
 */
export async function settleKey (store: IdempotencyStore, claim: IdempotencyClaim, reply: FastifyReply, payload: unknown): Promise<void> {
  const status = reply.statusCode
  const worthStoring = status < 500 && status !== 429 && status !== 409 && status !== 408 && typeof payload === 'string'
  try {
    if (!worthStoring) {
      await store.release(claim.scope, claim.key)
      return
    }
    // A request held for approval replays its 202 with the same Location.
    const location = reply.getHeader('location')
    await store.complete(claim.scope, claim.key, { status, headers: { 'content-type': String(reply.getHeader('content-type') ?? 'application/json'), ...(typeof location === 'string' ? { location } : {}) }, body: payload })
  } catch (error) {
    // The claim then expires by itself; the answer has been given either way.
    reply.request.log.warn({ err: { message: (error as Error).message } }, 'could not store the idempotent answer')
  }
}

/** Removes the fields from an answer's body; true when one was there. */
function strip (body: unknown, fields: readonly string[] | undefined): boolean {
  if (fields === undefined || typeof body !== 'object' || body === null) return false
  let stripped = false
  for (const field of fields) {
    if (!Object.hasOwn(body, field)) continue
    delete (body as Record<string, unknown>)[field]
    stripped = true
  }
  return stripped
}

/**
 * The answer as stored for replays: without the fields an action gives only once (a generated
 * password), in the answer itself (`fieldsOf(undefined)`) or in each item of a batch's `results`
 * (`fieldsOf(index)`). An answer that cannot be read is not stored (undefined) rather than stored whole.
 */
export function storedAnswer (payload: unknown, fieldsOf: (index: number | undefined) => readonly string[] | undefined, batch: boolean): unknown {
  if (typeof payload !== 'string') return payload
  let answer: unknown
  try {
    answer = JSON.parse(payload)
  } catch {
    return undefined
  }
  let changed = false
  if (!batch) changed = strip(answer, fieldsOf(undefined))
  for (const result of batch ? (answer as { results?: Array<{ index?: unknown, body?: unknown }> } | null)?.results ?? [] : []) {
    if (typeof result.index === 'number' && strip(result.body, fieldsOf(result.index))) changed = true
  }
  return changed ? JSON.stringify(answer) : payload
}

/** The outcome a replayed answer stands for, for its audit record. */
export function replayedOutcome (status: number, body: string): Outcome {
  // Only a request held for approval answers 202.
  if (status === 202) return 'approval_requested'
  if (status < 400) return 'success'
  try {
    const code = (JSON.parse(body) as { code?: string }).code
    if (code !== undefined && code in PROBLEMS) return PROBLEMS[code as ProblemCode].outcome
  } catch {}
  return 'failed'
}

/**
 * The key of the request fingerprints kept with idempotency records: derived from the admin token,
 * which every replica shares and no caller knows, so the fingerprint of a body holding a password
 * cannot be tested against guesses by whoever reads Redis.
 */
export function fingerprintKeyOf (config: Config): Buffer {
  return createHash('sha256').update('synapse-admin-gateway idempotency fingerprint\0').update(config.synapse.adminToken).digest()
}
