import { DETAILS, problem, type GatewayError } from '../errors.js'
import type { SynapseCallError, SynapseResponse } from './client.js'

/**
 * Synapse's answers, as recorded from a real homeserver (test/fixtures/synapse), turned into
 * the gateway's problems. Synapse reuses M_FORBIDDEN and M_UNKNOWN for very different causes,
 * so some cases are told apart by their message, exactly as Synapse words them.
 */
interface MatrixError { errcode: string | undefined, error: string | undefined }

function matrixError (json: unknown): MatrixError {
  const body = (typeof json === 'object' && json !== null ? json : {}) as Record<string, unknown>
  return {
    errcode: typeof body.errcode === 'string' ? body.errcode.slice(0, 64) : undefined,
    error: typeof body.error === 'string' ? body.error.slice(0, 300) : undefined
  }
}

const quote = (error: string | undefined) => error === undefined ? '' : ` Synapse said: "${error}"`

function retryAfterSeconds (response: SynapseResponse): number {
  if (response.retryAfterS !== undefined) return Math.max(1, response.retryAfterS)
  const ms = (response.json as { retry_after_ms?: unknown } | undefined)?.retry_after_ms
  return typeof ms === 'number' && ms > 0 ? Math.ceil(ms / 1000) : 1
}

/** Answers that mean the same whichever endpoint gave them; undefined for the others. */
function commonProblem (response: SynapseResponse): GatewayError | undefined {
  const { errcode, error } = matrixError(response.json)
  const isObject = typeof response.json === 'object' && response.json !== null && !Array.isArray(response.json)
  if (!isObject) {
    return problem('upstream_error', `Synapse answered HTTP ${response.status} with a body that is not its API; check SYNAPSE_URL.`)
  }
  if (response.status === 401 || (response.status === 403 && error === 'You are not a server admin')) {
    return problem('upstream_auth_failed', 'The gateway\'s Synapse admin token was rejected; the operator must fix the gateway\'s configuration.', { matrixErrcode: errcode })
  }
  if (response.status === 429) {
    return problem('rate_limited', `Synapse is rate-limiting; retry later.${quote(error)}`, { matrixErrcode: errcode, retryAfterS: retryAfterSeconds(response), outcome: 'failed' })
  }
  if (response.status >= 500) {
    return problem('upstream_error', `Synapse failed to handle the request (HTTP ${response.status}).${quote(error)}`, { matrixErrcode: errcode })
  }
  return undefined
}

function unexpected (response: SynapseResponse): GatewayError {
  const { errcode, error } = matrixError(response.json)
  return problem('upstream_error', `Synapse gave an unexpected answer (HTTP ${response.status}).${quote(error)}`, { matrixErrcode: errcode })
}

/** A call that got no answer: nothing was sent, it timed out, or the connection broke. */
export function callFailure (failure: SynapseCallError, mayHaveActed: boolean, retryAfterS: number): GatewayError {
  const outcome = mayHaveActed && failure.sent ? 'unknown' : 'failed'
  switch (failure.kind) {
    case 'saturated':
      return problem('upstream_unavailable', 'Too many requests to Synapse are in flight; retry in a moment.', { retryAfterS: 1 })
    case 'circuit_open':
      return problem('upstream_unavailable', 'Synapse keeps failing, so requests to it are paused; retry shortly.', { retryAfterS })
    case 'unavailable':
      return problem('upstream_unavailable', 'Synapse cannot be reached; retry shortly or ask the operator to check it.', { retryAfterS: 5 })
    case 'timeout':
      return problem('upstream_timeout', DETAILS.upstream_timeout, { outcome })
    case 'broken':
      return problem('upstream_error', 'The connection to Synapse broke or its answer was unreadable. The action may or may not have happened.', { outcome })
  }
}

/** GET /_synapse/admin/v2/users/<id>: the user's state, or why we cannot act on them. */
export function lookedUpUser (response: SynapseResponse): { deactivated: boolean } {
  const common = commonProblem(response)
  if (common !== undefined) throw common
  const { errcode, error } = matrixError(response.json)
  if (response.status === 200) {
    const deactivated = (response.json as { deactivated?: unknown }).deactivated
    return { deactivated: deactivated === true || deactivated === 1 }
  }
  if (response.status === 404) {
    throw problem('user_not_found', 'Synapse has no such user: check the user ID (it is case-sensitive).', { matrixErrcode: errcode })
  }
  if (response.status === 400 && error?.includes('local users') === true) {
    throw problem('user_not_local', 'Only users of this homeserver can be joined.', { matrixErrcode: errcode, outcome: 'failed' })
  }
  throw unexpected(response)
}

export type JoinAnswer = { joined: true, roomId: string } | { joined: true, roomId: undefined }

/** POST /_synapse/admin/v1/join/<room>: joined (maybe already), or why not. */
export function joinAnswer (response: SynapseResponse, userId: string): JoinAnswer {
  const common = commonProblem(response)
  if (common !== undefined) throw common
  const { errcode, error } = matrixError(response.json)
  const roomId = (response.json as { room_id?: unknown }).room_id
  if (response.status === 200) {
    if (typeof roomId === 'string') return { joined: true, roomId }
    throw unexpected(response)
  }
  if (response.status === 403) {
    // Synapse answers a repeat join into a non-public room with 403; for the caller it is done.
    if (error === `${userId} is already in the room.`) return { joined: true, roomId: undefined }
    if (errcode === 'M_BAD_STATE') {
      throw problem('user_banned', `The user is banned from this room; unban them first.${quote(error)}`, { matrixErrcode: errcode })
    }
    if (error !== undefined && / not in room /.test(error)) {
      throw problem('admin_not_in_room', `The room is not public and the gateway's admin account is not in it; a room admin must invite it (or use Synapse's make_room_admin).${quote(error)}`, { matrixErrcode: errcode })
    }
    if (error === 'You don\'t have permission to invite users') {
      throw problem('admin_cannot_invite', `The gateway's admin account is in the room but may not invite; a room admin must raise its power level.${quote(error)}`, { matrixErrcode: errcode })
    }
    if (error === 'This room has been blocked on this server') {
      throw problem('room_blocked', `The room is blocked on this homeserver.${quote(error)}`, { matrixErrcode: errcode })
    }
    throw problem('synapse_forbidden', `Synapse refused to join the user.${quote(error)}`, { matrixErrcode: errcode })
  }
  if (response.status === 404) {
    if (error === 'User not found') {
      throw problem('user_not_found', 'Synapse has no such user: check the user ID (it is case-sensitive).', { matrixErrcode: errcode })
    }
    throw problem('room_not_found', `Synapse does not know this room: check the room ID or alias.${quote(error)}`, { matrixErrcode: errcode })
  }
  if (response.status === 400) {
    if (error?.endsWith('was not legal room ID or room alias') === true) {
      throw problem('invalid_room', `Synapse does not accept this room ID or alias.${quote(error)}`, { matrixErrcode: errcode, outcome: 'failed' })
    }
    if (error?.includes('local users') === true) {
      throw problem('user_not_local', 'Only users of this homeserver can be joined.', { matrixErrcode: errcode, outcome: 'failed' })
    }
    if (errcode === 'M_INVALID_PARAM') {
      throw problem('invalid_user_id', `Synapse does not accept this user ID.${quote(error)}`, { matrixErrcode: errcode, outcome: 'failed' })
    }
  }
  throw unexpected(response)
}

/** GET /_matrix/client/v3/directory/room/<alias>: the alias's room ID, when it resolves. */
export function resolvedRoomId (response: SynapseResponse): string | undefined {
  const roomId = (response.json as { room_id?: unknown } | undefined)?.room_id
  return response.status === 200 && typeof roomId === 'string' ? roomId : undefined
}
