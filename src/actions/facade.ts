import type { FastifyBaseLogger } from 'fastify'
import type { AuditLog } from '../audit/log.js'
import type { Config } from '../config.js'
import { problem, type GatewayError } from '../errors.js'
import type { Metrics } from '../metrics.js'
import { callFailure, lookedUpUser, type LookedUpUser } from '../synapse/answers.js'
import { SYNAPSE_CALLS, trackedSynapse, type TrackedSynapse } from '../synapse/calls.js'
import { SynapseCallError, type SynapseCall, type SynapseClient, type SynapseResponse } from '../synapse/client.js'
import { snapshot, type RoomDirectory, type RoomSnapshot } from '../synapse/rooms.js'
import { createVersionWatch, hasRelease, notSupported, type VersionWatch } from '../synapse/version.js'
import type { ActionContext } from './action.js'
import { intentRecord, type Attempt } from './attempt.js'

const tenths = (ms: number) => Math.round(ms * 10) / 10

export interface FacadeOptions {
  config: Config
  synapse: SynapseClient
  rooms: RoomDirectory
  audit: AuditLog
  metrics: Metrics
  /** The gateway's own account, asked of Synapse (whoami) once and remembered. */
  adminUserId: (synapse: TrackedSynapse) => Promise<string>
  /** Synapse's version, for calls that need a release (`needs`); default: one of its own. */
  versions?: VersionWatch
}

export function auditUnavailable (): GatewayError {
  return problem('audit_unavailable', 'The audit log cannot be written, so no action is performed; the operator must fix it.', { retryAfterS: 5 })
}

/**
 * The per-attempt view of Synapse that actions get instead of the client. Every call is tracked
 * (the attempt's deadline, metrics, the audit's `upstream`); a changing call is sent only once
 * its intent record is on disk, so an action cannot reach Synapse without it.
 */
export function createContexts ({ config, synapse, rooms, audit, metrics, adminUserId, versions = createVersionWatch({ onChange: () => {} }) }: FacadeOptions) {
  async function track (attempt: Attempt, requestId: string, log: FastifyBaseLogger, call: SynapseCall): Promise<SynapseResponse> {
    // Before the intent record: a call this Synapse cannot honour is refused unsent.
    if (call.needs !== undefined) {
      const version = await versions.fresh(async () => await track(attempt, requestId, log, SYNAPSE_CALLS.serverVersion()))
      if (!hasRelease(version, call.needs.since)) throw notSupported(call.needs, version)
    }
    if (call.changes && !attempt.intentWritten) {
      if (!audit.intent(requestId, intentRecord(attempt))) throw auditUnavailable()
      attempt.intentWritten = true
    }
    attempt.deadline ??= performance.now() + config.synapse.timeoutMs
    // A call declared with its own timeout (a slow one) gets it whatever is left of the request's.
    const deadline = call.timeoutMs === undefined ? attempt.deadline : Math.max(attempt.deadline, performance.now() + call.timeoutMs)
    const before = attempt.upstream?.duration_ms ?? 0
    const { name } = call
    try {
      const response = await synapse.perform(call, deadline)
      metrics.synapseDuration.observe({ call: name }, response.durationMs / 1000)
      if (response.status >= 500) metrics.synapseErrors.inc({ call: name, kind: 'http_5xx' })
      const errcode = (response.json as { errcode?: unknown } | undefined)?.errcode
      attempt.upstream = { call: name, status: response.status, matrix_errcode: typeof errcode === 'string' ? errcode.slice(0, 64) : null, duration_ms: tenths(before + response.durationMs) }
      return response
    } catch (error) {
      if (!(error instanceof SynapseCallError)) throw error
      metrics.synapseErrors.inc({ call: name, kind: error.kind })
      attempt.upstream = { call: name, status: null, matrix_errcode: null, duration_ms: tenths(before + error.durationMs) }
      if (error.sent) log.warn({ call: name, kind: error.kind }, 'Synapse call failed')
      throw callFailure(error, call.changes, synapse.retryAfterS)
    }
  }

  /** What the action (and the pipeline's own steps) may use during one attempt. */
  return function contextFor (attempt: Attempt, requestId: string, log: FastifyBaseLogger, query: unknown, body?: unknown): ActionContext {
    const tracked = trackedSynapse(async (call) => await track(attempt, requestId, log, call))
    const users = new Map<string, Promise<LookedUpUser>>()
    const states = new Map<string, Promise<RoomSnapshot>>()
    const once = <T>(memo: Map<string, Promise<T>>, key: string, fetch: () => Promise<T>): Promise<T> => {
      let known = memo.get(key)
      if (known === undefined) memo.set(key, known = fetch())
      return known
    }
    return {
      caller: attempt.actor as NonNullable<Attempt['actor']>,
      query,
      body,
      config,
      synapse: tracked,
      rooms,
      adminUserId: async () => await adminUserId(tracked),
      synapseVersion: async () => await versions.fresh(tracked.serverVersion),
      facts: {
        user: async (userId) => await once(users, userId, async () => lookedUpUser(await tracked.lookupUser(userId))),
        room: async (roomId, scope = {}) => await once(states, `${roomId} ${scope.powerUsers === true}`, async () => {
          // Only the memberships the checks read are kept: a room of any size costs the same memory.
          const users = [...(attempt.target?.userId === undefined ? [] : [attempt.target.userId]), await adminUserId(tracked)]
          return await snapshot(tracked, roomId, { users, powerUsers: scope.powerUsers === true })
        })
      }
    }
  }
}

export type ContextFor = ReturnType<typeof createContexts>
