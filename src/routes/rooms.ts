import rateLimit from '@fastify/rate-limit'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import type { AuditLog, AuditUpstream } from '../audit.js'
import { authorize, type Caller } from '../auth/claims.js'
import type { Config } from '../config.js'
import type { Metrics } from '../metrics.js'
import { DETAILS, problem } from '../errors.js'
import { serverOf } from '../matrix-ids.js'
import { callFailure, joinAnswer, lookedUpUser, resolvedRoomId } from '../synapse/answers.js'
import { SynapseCallError, type SynapseClient, type SynapseResponse } from '../synapse/client.js'
import { JOIN_PROBLEMS, JoinBody, JoinResult, RoomParams, problemResponses } from '../schemas.js'

/** What one action request did, gathered as it goes and written as its audit entry. */
interface Attempt {
  actor: Caller | null
  roomId: string | undefined
  upstream: AuditUpstream | undefined
}

declare module 'fastify' {
  interface FastifyRequest {
    attempt: Attempt
  }
  interface FastifyContextConfig {
    /** The action a route performs: it decides which roles may call it. */
    scope?: 'room.join'
  }
}

const newAttempt = (): Attempt => ({ actor: null, roomId: undefined, upstream: undefined })
const tenths = (ms: number) => Math.round(ms * 10) / 10
const MAX_AUDITED_TEXT = 512
const auditedText = (value: unknown): string | null => typeof value === 'string' ? value.slice(0, MAX_AUDITED_TEXT) : null

export interface RoomRoutesOptions { config: Config, synapse: SynapseClient, audit: AuditLog, metrics: Metrics }

export const roomRoutes: FastifyPluginAsyncTypebox<RoomRoutesOptions> = async (fastify, { config, synapse, audit, metrics }) => {
  const rolesByScope = { 'room.join': config.joinRoles }
  const { serverName } = config.synapse

  fastify.decorateRequest('attempt', null as unknown as Attempt)

  await fastify.register(rateLimit, { global: false })
  // Per client IP before any token crypto, so a flood of junk tokens stays cheap to refuse.
  const ipLimit = fastify.createRateLimit({ max: config.rateLimitPerIpPerMinute, timeWindow: 60_000, keyGenerator: (request) => `ip:${request.ip}` })
  const callerLimit = fastify.createRateLimit({ max: config.rateLimitPerMinute, timeWindow: 60_000, keyGenerator: (request) => `sub:${request.attempt.actor?.sub ?? ''}` })
  async function enforce (limiter: typeof ipLimit, request: FastifyRequest, who: 'address' | 'caller'): Promise<void> {
    const limit = await limiter(request)
    if (!limit.isAllowed && limit.isExceeded) {
      metrics.rateLimited.inc({ limit: who === 'address' ? 'ip' : 'caller' })
      throw problem('rate_limited', `Too many requests from this ${who} (${limit.max} a minute); retry later.`, { retryAfterS: Math.max(1, limit.ttlInSeconds) })
    }
  }

  fastify.addHook('onRequest', async (request) => {
    request.attempt = newAttempt()
    await enforce(ipLimit, request, 'address')
    const caller = await fastify.authenticate(request)
    request.attempt.actor = caller
    const scope = request.routeOptions.config.scope
    authorize(caller, config.allowedOrgs, scope === undefined ? [] : rolesByScope[scope])
    await enforce(callerLimit, request, 'caller')
  })

  fastify.addHook('onSend', (request, reply, payload, done) => {
    const error = request.gatewayError
    // Requests refused before the route's own hooks ran (e.g. while shutting down) have none yet.
    request.attempt ??= newAttempt()
    const action = request.routeOptions.config.scope ?? 'unknown'
    const outcome = error === undefined ? 'success' : error.outcome
    metrics.actions.inc({ action, outcome, code: error?.problem ?? 'none' })
    const body = request.body as { user_id?: unknown } | undefined
    const params = request.params as { roomIdOrAlias?: unknown }
    audit.record({
      request_id: request.id,
      action,
      outcome,
      status: reply.statusCode,
      ...(error === undefined ? {} : { code: error.problem }),
      actor: request.attempt.actor,
      target: {
        room: auditedText(params.roomIdOrAlias),
        user_id: auditedText(typeof body === 'object' && body !== null ? body.user_id : undefined),
        ...(request.attempt.roomId === undefined ? {} : { room_id: request.attempt.roomId })
      },
      client: { ip: request.ip, user_agent: auditedText(request.headers['user-agent']) },
      ...(request.attempt.upstream === undefined ? {} : { upstream: request.attempt.upstream }),
      duration_ms: tenths(reply.elapsedTime)
    })
    done(null, payload)
  })

  /** Calls Synapse, remembers what it answered for the audit entry, and names failures. */
  async function track (request: FastifyRequest, call: string, mayHaveActed: boolean, send: () => Promise<SynapseResponse>): Promise<SynapseResponse> {
    const before = request.attempt.upstream?.duration_ms ?? 0
    try {
      const response = await send()
      metrics.synapseDuration.observe({ call }, response.durationMs / 1000)
      if (response.status >= 500) metrics.synapseErrors.inc({ call, kind: 'http_5xx' })
      const errcode = (response.json as { errcode?: unknown } | undefined)?.errcode
      request.attempt.upstream = {
        call,
        status: response.status,
        matrix_errcode: typeof errcode === 'string' ? errcode.slice(0, 64) : null,
        duration_ms: tenths(before + response.durationMs)
      }
      return response
    } catch (error) {
      if (!(error instanceof SynapseCallError)) throw error
      metrics.synapseErrors.inc({ call, kind: error.kind })
      request.attempt.upstream = { call, status: null, matrix_errcode: null, duration_ms: tenths(before + error.durationMs) }
      if (error.sent) request.log.warn({ call, kind: error.kind }, 'Synapse call failed')
      throw callFailure(error, mayHaveActed, synapse.retryAfterS)
    }
  }

  fastify.post('/v1/rooms/:roomIdOrAlias/members', {
    config: { scope: 'room.join' },
    bodyLimit: 4096,
    schema: {
      tags: ['rooms'],
      summary: 'Join a local user to a room',
      description: 'Looks the user up (unknown: 404, deactivated: 409), then joins them through Synapse\'s admin API. Joining a user who is already in the room succeeds. For an alias, the answer carries the resolved room ID. Every attempt is audited.',
      security: [{ bearerAuth: [] }],
      params: RoomParams,
      body: JoinBody,
      response: { 200: { description: 'The user is in the room.', ...JoinResult }, ...problemResponses(JOIN_PROBLEMS) }
    }
  }, async (request) => {
    const room = request.params.roomIdOrAlias
    const userId = request.body.user_id
    if (serverOf(userId) !== serverName) {
      throw problem('user_not_local', `Only users of this homeserver (${serverName}) can be joined.`)
    }
    if (room.startsWith('#') && !config.allowRemoteRooms && serverOf(room) !== serverName) {
      throw problem('room_not_local', `Only aliases of this homeserver (${serverName}) are accepted; use the room ID instead.`)
    }
    if (!audit.available) {
      throw problem('audit_unavailable', 'The audit log cannot be written, so no action is performed; the operator must fix it.', { retryAfterS: 5 })
    }

    // Synapse would join a deactivated user without complaint: look the user up first.
    const user = lookedUpUser(await track(request, 'user_lookup', false, async () => await synapse.lookupUser(userId)))
    if (user.deactivated) {
      throw problem('user_deactivated', DETAILS.user_deactivated)
    }

    const answer = joinAnswer(await track(request, 'join', true, async () => await synapse.join(room, userId)), userId)
    let roomId = answer.roomId ?? (room.startsWith('!') ? room : undefined)
    if (roomId === undefined) {
      // Synapse's "already in the room" answer names no room: resolve the alias ourselves.
      roomId = resolvedRoomId(await track(request, 'directory', false, async () => await synapse.resolveAlias(room)))
      if (roomId === undefined) {
        throw problem('upstream_error', 'The user is in the room, but Synapse did not resolve the alias to a room ID.')
      }
    }
    request.attempt.roomId = roomId
    return { room_id: roomId, user_id: userId }
  })
}
