import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { resultRecord } from '../audit/fields.js'
import type { AuditLog } from '../audit/log.js'
import type { Caller } from '../auth/claims.js'
import type { Config } from '../config.js'
import type { Policy } from '../policy/index.js'
import { problem, problemBody } from '../errors.js'
import { logProblem, toGatewayError } from '../error-handler.js'
import { DryRunQuery, problemResponses } from '../schemas.js'
import type { SharedState } from '../state/shared.js'
import type { ActionDefinition } from './action.js'
import { heldApproval } from './approval.js'
import { newAttempt } from './attempt.js'
import { checkOrg, policyCaller, refusal } from './decision.js'
import { claimKey, fingerprintKeyOf, IdempotencyKeyHeader, idempotencyKeyOf, replayedOutcome, settleKey, storedAnswer, type IdempotencyClaim } from './idempotency.js'
import type { RequestLimits } from './limits.js'
import { successOutcome, type Pipeline } from './pipeline.js'
import type { createActionValidators } from './validation.js'

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

export interface BatchOptions {
  config: Config
  audit: AuditLog
  state: SharedState
  pipeline: Pipeline
  limits: RequestLimits
  /** The policy in force (SIGHUP may replace it): the front door asks it once per batch. */
  policy: () => Policy
  actions: readonly ActionDefinition[]
  validate: ReturnType<typeof createActionValidators>['validate']
}

interface Item { action: string, room?: string, user_id?: string, reason?: string, [field: string]: unknown }

/** An item as its single route would receive it: `room` and `user_id` in the path where the route has them, the rest in the body. */
function inputOf (action: ActionDefinition, item: Item): { params: Record<string, unknown>, body: Record<string, unknown> | null } {
  const { action: _name, room, user_id: userId, ...rest } = item
  const params: Record<string, unknown> = {}
  if (action.url.includes(':roomIdOrAlias') && room !== undefined) params.roomIdOrAlias = room
  const userInPath = action.url.includes(':userId')
  if (userInPath && userId !== undefined) params.userId = userId
  const body: Record<string, unknown> = { ...(userInPath || userId === undefined ? {} : { user_id: userId }), ...rest }
  // No body field: no body, as a single route without one (an optional body is then fine, a required one is not).
  return { params, body: Object.keys(body).length === 0 ? null : body }
}

/**
 * POST /v1/batch: each item goes through the very same pipeline as its single route (limits,
 * policy, validation by the route's own schemas, checks, audit), at most BATCH_CONCURRENCY at a time.
 */
export const batchRoute: FastifyPluginAsyncTypebox<BatchOptions> = async (fastify, { config, audit, state, pipeline, limits, policy, actions, validate }) => {
  const fingerprintKey = fingerprintKeyOf(config)
  const acting = actions.filter((action) => action.acting)
  const byName = new Map(acting.map((action) => [action.name, action]))
  const BatchItem = Type.Object({
    action: Type.Union(acting.map((action) => Type.Literal(action.name)), { description: 'Any acting action of the catalog.' }),
    room: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'A room ID or alias, as on the single routes (not percent-encoded here), for actions on a room.' })),
    user_id: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'The target user, for actions on a user.' })),
    reason: Type.Optional(Type.String())
  }, { additionalProperties: true, description: 'The action, its room and user, and the fields of its single route\'s body.' })
  const BatchBody = Type.Object({ items: Type.Array(BatchItem, { minItems: 1, maxItems: 10_000 }) }, { additionalProperties: false })
  const BatchResult = Type.Object({
    results: Type.Array(Type.Object({
      index: Type.Integer(),
      status: Type.Integer(),
      body: Type.Unknown({ description: 'The item\'s own answer: the action\'s success body, a dry-run report, or a problem.' })
    }))
  })

  /** One item: its own limits, policy, validation, checks, audit records and answer. */
  async function runItem (request: FastifyRequest, caller: Caller, item: Item, index: number, dryRun: boolean): Promise<{ index: number, status: number, body: unknown }> {
    const started = performance.now()
    const action = byName.get(item.action) as ActionDefinition
    const attempt = newAttempt(action.name, { id: request.id, index })
    const input = inputOf(action, item)
    const origin = { id: request.id, ip: request.ip, userAgent: request.headers['user-agent'] }
    try {
      await pipeline.admit(request, attempt, action, caller)
      const invalid = validate(action, 'params', input.params) ?? (action.body === undefined ? undefined : validate(action, 'body', input.body))
      if (invalid !== undefined) throw invalid
      const body = await pipeline.perform(request.id, request.log, attempt, action, { ...input, dryRun })
      // An item the policy allows only after an approval is held on its own: 202 and its {approval}.
      const status = heldApproval(attempt) === undefined ? 200 : 202
      pipeline.finish(attempt, origin, status, undefined, successOutcome(attempt), performance.now() - started)
      return { index, status, body }
    } catch (thrown) {
      const error = toGatewayError(thrown as Parameters<typeof toGatewayError>[0], action.body)
      logProblem(request.log, thrown, error)
      attempt.target ??= { room: item.room, userId: item.user_id }
      const status = error.statusCode as number
      pipeline.finish(attempt, origin, status, error, error.outcome, performance.now() - started)
      return { index, status, body: problemBody(error, request.id) }
    }
  }

  /**
   * The front door: a batch whose caller may use none of its actions (org outside ALLOWED_ORGS, no
   * rule giving any of them) is refused whole, before any item runs or its key is claimed: one
   * result record, nothing stored.
   */
  function admitBatch (caller: Caller, items: Item[]): void {
    checkOrg(config.allowedOrgs, caller)
    const names = [...new Set(items.map((item) => item.action))]
    const inForce = policy()
    // What /v1/me lists: a rule for the caller's roles and org names it, and no deny takes it away outright.
    const granted = new Set<string>(inForce.allowedActions(policyCaller(caller)))
    if (!names.some((name) => granted.has(name))) {
      throw refusal(inForce, config.joinRoles, caller, names.join(' or '), undefined)
    }
  }

  fastify.decorateRequest('batchRun', null)
  fastify.addHook('onSend', (request, reply, payload, done) => {
    const error = request.gatewayError
    const run = request.batchRun
    audit.result(request.id, resultRecord({
      action: 'batch',
      outcome: run?.replayed === true ? replayedOutcome(reply.statusCode, String(payload)) : error === undefined ? 'success' : error.outcome,
      status: reply.statusCode,
      code: error?.problem,
      actor: run?.actor ?? null,
      // Only the Idempotency-Key's SHA-256: the raw key is a bearer of the stored answer.
      origin: { ip: request.ip, userAgent: request.headers['user-agent'], idempotencyKey: request.headers['idempotency-key'] },
      fields: {
        items: (request.body as { items?: unknown[] } | undefined)?.items?.length ?? null,
        ...(run?.replayed === true ? { replayed: true } : {}),
        ...((request.query as { dry_run?: string } | undefined)?.dry_run === 'true' ? { dry_run: true } : {})
      },
      durationMs: reply.elapsedTime
    }))
    const claim = run?.idempotency
    if (claim === undefined) {
      done(null, payload)
      return
    }
    // Items' fields given once (a generated password) are never stored: a replay answers without them.
    const items = (request.body as { items?: Array<{ action?: unknown }> } | undefined)?.items ?? []
    const fieldsOf = (index: number | undefined) => byName.get(String(items[index ?? -1]?.action))?.answeredOnce
    const stored = items.some((_item, index) => fieldsOf(index) !== undefined) ? storedAnswer(payload, fieldsOf, true) : payload
    settleKey(state.idempotency, claim, reply, stored).finally(() => { done(null, payload) })
  })

  fastify.post('/v1/batch', {
    // Before the body is read and the token checked: a flood of junk tokens is refused cheaply.
    onRequest: async (request) => { await limits.admitAddress(request, true) },
    // Each item is a few hundred bytes at most.
    bodyLimit: Math.max(4096, config.batchMaxItems * 2048),
    schema: {
      tags: ['rooms'],
      operationId: 'runBatch',
      summary: 'Run many acting actions at once',
      description: `Items are \`{"action", "room"?, "user_id"?, "reason"?, …the action's body fields}\` for any acting action (${acting.map((action) => `\`${action.name}\``).join(', ')}). Each item goes through the same policy, checks, rate limit and audit as its single route; the answer lists each item's own status and body, in the order sent. \`?dry_run=true\` applies to every item; an Idempotency-Key covers the whole batch.`,
      security: [{ bearerAuth: [] }],
      querystring: DryRunQuery,
      headers: IdempotencyKeyHeader,
      body: BatchBody,
      response: {
        200: BatchResult,
        ...problemResponses(['invalid_body', 'batch_too_large', 'missing_token', 'invalid_token', 'token_expired', 'keys_unavailable', 'org_not_allowed', 'policy_denied', 'insufficient_role', 'rate_limited', 'idempotency_in_progress', 'idempotency_key_reused', 'state_unavailable', 'shutting_down'])
      }
    }
  }, async (request, reply) => {
    const caller = await fastify.authenticate(request)
    const run: BatchRun = { actor: caller, idempotency: undefined, replayed: false }
    request.batchRun = run
    request.caller = caller
    const items = request.body.items as Item[]
    admitBatch(caller, items)
    if (items.length > config.batchMaxItems) {
      throw problem('batch_too_large', `A batch takes at most ${config.batchMaxItems} items (BATCH_MAX_ITEMS); split it.`)
    }
    const key = idempotencyKeyOf(request)
    if (key !== undefined) {
      run.idempotency = await claimKey(state.idempotency, request, reply, caller.sub, key, () => { run.replayed = true }, fingerprintKey)
      if (run.idempotency === undefined) return reply
    }
    const dryRun = request.query.dry_run === 'true'
    const results: Array<{ index: number, status: number, body: unknown }> = new Array(items.length)
    let next = 0
    const worker = async () => {
      while (next < items.length) {
        const index = next++
        results[index] = await runItem(request, caller, items[index] as Item, index, dryRun)
      }
    }
    await Promise.all(Array.from({ length: Math.min(config.batchConcurrency, items.length) }, worker))
    return { results }
  })
}
