import { randomBytes } from 'node:crypto'
import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { auditActor, idempotencyKeyField } from '../audit/fields.js'
import type { AuditLog } from '../audit/log.js'
import type { Caller } from '../auth/claims.js'
import type { Config } from '../config.js'
import { problem } from '../errors.js'
import { DryRunQuery, problemResponses } from '../schemas.js'
import type { SharedState } from '../state/shared.js'
import { claimKey, idempotencyKeyOf, replayedOutcome, settleKey, type IdempotencyClaim } from './idempotency.js'

const BatchItem = Type.Object({
  action: Type.Union([Type.Literal('room.join'), Type.Literal('room.remove')]),
  room: Type.String({ minLength: 1, maxLength: 1024, description: 'A room ID or alias, as on the single routes (not percent-encoded here).' }),
  user_id: Type.String({ minLength: 1, maxLength: 1024 }),
  reason: Type.Optional(Type.String())
}, { additionalProperties: false })

const BatchBody = Type.Object({ items: Type.Array(BatchItem, { minItems: 1, maxItems: 10_000 }) }, { additionalProperties: false })

const BatchResult = Type.Object({
  results: Type.Array(Type.Object({
    index: Type.Integer(),
    status: Type.Integer(),
    body: Type.Unknown({ description: 'The item\'s own answer: the action\'s success body, a dry-run report, or a problem.' })
  }))
})

/**
 * Marks the requests a batch makes for its items, so their audit records carry `batch`. A random
 * secret per process: a caller cannot forge it to pass its own requests off as batch items.
 */
export const BATCH_HEADER = 'x-gateway-batch-item'
const secret = randomBytes(16).toString('hex')

/** The batch an item request belongs to, when it was made by this process's batch route. */
export function batchItemOf (request: FastifyRequest): { id: string, index: number } | undefined {
  const value = request.headers[BATCH_HEADER]
  if (typeof value !== 'string') return undefined
  const [sent, id, index] = value.split(' ')
  if (sent !== secret || id === undefined || index === undefined) return undefined
  return { id, index: Number(index) }
}

/** What the batch request itself did, for its own `result` record. */
interface BatchRun {
  actor: Caller | null
  idempotency: IdempotencyClaim | undefined
  replayed: boolean
}

declare module 'fastify' {
  interface FastifyRequest {
    batchRun: BatchRun | null
  }
}

export interface BatchOptions { config: Config, audit: AuditLog, state: SharedState }

/**
 * POST /v1/batch: each item goes through the very same pipeline as its single route (limits,
 * token, policy, checks, audit), as a request of its own, at most BATCH_CONCURRENCY at a time.
 */
export const batchRoute: FastifyPluginAsyncTypebox<BatchOptions> = async (fastify, { config, audit, state }) => {
  fastify.decorateRequest('batchRun', null)
  fastify.addHook('onSend', (request, reply, payload, done) => {
    const error = request.gatewayError
    const run = request.batchRun
    const actor = run?.actor ?? null
    audit.result(request.id, {
      action: 'batch',
      outcome: run?.replayed === true ? replayedOutcome(reply.statusCode, String(payload)) : error === undefined ? 'success' : error.outcome,
      status: reply.statusCode,
      ...(error === undefined ? {} : { code: error.problem }),
      actor: auditActor(actor),
      items: (request.body as { items?: unknown[] } | undefined)?.items?.length ?? null,
      client: { ip: request.ip, user_agent: typeof request.headers['user-agent'] === 'string' ? request.headers['user-agent'].slice(0, 512) : null },
      ...(run?.replayed === true ? { replayed: true } : {}),
      ...((request.query as { dry_run?: string } | undefined)?.dry_run === 'true' ? { dry_run: true } : {}),
      // Only its SHA-256: the raw key is a bearer of the stored answer.
      ...idempotencyKeyField(request.headers['idempotency-key']),
      duration_ms: Math.round(reply.elapsedTime * 10) / 10
    })
    const claim = run?.idempotency
    if (claim === undefined) {
      done(null, payload)
      return
    }
    settleKey(state.idempotency, claim, reply, payload).finally(() => { done(null, payload) })
  })

  fastify.post('/v1/batch', {
    // Each item is a few hundred bytes at most.
    bodyLimit: Math.max(4096, config.batchMaxItems * 2048),
    schema: {
      tags: ['rooms'],
      operationId: 'runBatch',
      summary: 'Join or remove users in many rooms at once',
      description: 'Each item goes through the same policy, checks, rate limit and audit as its single route; the answer lists each item\'s own status and body, in the order sent. `?dry_run=true` applies to every item; an Idempotency-Key covers the whole batch.',
      security: [{ bearerAuth: [] }],
      querystring: DryRunQuery,
      body: BatchBody,
      response: {
        200: BatchResult,
        ...problemResponses(['invalid_body', 'batch_too_large', 'missing_token', 'invalid_token', 'token_expired', 'keys_unavailable', 'idempotency_in_progress', 'idempotency_key_reused', 'state_unavailable', 'shutting_down'])
      }
    }
  }, async (request, reply) => {
    const caller = await fastify.authenticate(request)
    const run: BatchRun = { actor: caller, idempotency: undefined, replayed: false }
    request.batchRun = run
    const { items } = request.body
    if (items.length > config.batchMaxItems) {
      throw problem('batch_too_large', `A batch takes at most ${config.batchMaxItems} items (BATCH_MAX_ITEMS); split it.`)
    }
    const key = idempotencyKeyOf(request)
    if (key !== undefined) {
      run.idempotency = await claimKey(state.idempotency, request, reply, caller.sub, key, () => { run.replayed = true })
      if (run.idempotency === undefined) return reply
    }
    const query = request.query.dry_run === 'true' ? '?dry_run=true' : ''
    const results: Array<{ index: number, status: number, body: unknown }> = new Array(items.length)
    let next = 0
    const worker = async () => {
      while (next < items.length) {
        const index = next++
        const item = items[index] as (typeof items)[number]
        const room = encodeURIComponent(item.room)
        const body = item.action === 'room.join'
          ? { user_id: item.user_id, ...(item.reason === undefined ? {} : { reason: item.reason }) }
          : (item.reason === undefined ? undefined : { reason: item.reason })
        const response = await fastify.inject({
          method: item.action === 'room.join' ? 'POST' : 'DELETE',
          url: item.action === 'room.join' ? `/v1/rooms/${room}/members${query}` : `/v1/rooms/${room}/members/${encodeURIComponent(item.user_id)}${query}`,
          remoteAddress: request.ip,
          headers: {
            authorization: request.headers.authorization as string,
            'x-request-id': request.id,
            [BATCH_HEADER]: `${secret} ${request.id} ${index}`,
            ...(request.headers['user-agent'] === undefined ? {} : { 'user-agent': request.headers['user-agent'] }),
            ...(body === undefined ? {} : { 'content-type': 'application/json' })
          },
          ...(body === undefined ? {} : { payload: JSON.stringify(body) })
        })
        let parsed: unknown
        try { parsed = response.json() } catch { parsed = response.body }
        results[index] = { index, status: response.statusCode, body: parsed }
      }
    }
    await Promise.all(Array.from({ length: Math.min(config.batchConcurrency, items.length) }, worker))
    return { results }
  })
}
