import { ADOPT_FIRST, DETAILS, problem, type GatewayError, type Outcome, type ProblemCode } from '../errors.js'
import { isRoomId } from '../matrix-ids.js'
import { MAX_RESPONSE_BYTES, type SynapseCallError, type SynapseResponse } from './client.js'

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
function commonProblem (response: SynapseResponse, outcomeIfUnclear: Outcome): GatewayError | undefined {
  const { errcode, error } = matrixError(response.json)
  if (response.tooBig === true) {
    return problem('upstream_error', `Synapse answered HTTP ${response.status} with a body larger than the gateway reads for this call (${MAX_RESPONSE_BYTES / 1024} KiB).`, { outcome: outcomeIfUnclear })
  }
  if (!isObject(response.json)) {
    return problem('upstream_error', `Synapse answered HTTP ${response.status} with a body that is not its API; check SYNAPSE_URL.`, { outcome: outcomeIfUnclear })
  }
  if (errcode === 'M_UNRECOGNIZED') {
    return problem('upstream_error', 'Synapse does not know this endpoint: SYNAPSE_URL must point at Synapse itself (e.g. http://127.0.0.1:8008, no path), or at a proxy that forwards /_synapse/admin and /_matrix.', { matrixErrcode: errcode })
  }
  if (response.status === 401 || (response.status === 403 && error === 'You are not a server admin')) {
    return problem('upstream_auth_failed', 'The gateway\'s Synapse admin token was rejected; the operator must fix the gateway\'s configuration.', { matrixErrcode: errcode })
  }
  if (response.status === 429) {
    return problem('rate_limited', `Synapse is rate-limiting; retry later.${quote(error)}`, { matrixErrcode: errcode, retryAfterS: retryAfterSeconds(response), outcome: 'failed' })
  }
  if (response.status >= 500) {
    return problem('upstream_error', `Synapse failed to handle the request (HTTP ${response.status}).${quote(error)}`, { matrixErrcode: errcode, outcome: outcomeIfUnclear })
  }
  return undefined
}

const isObject = (json: unknown): json is Record<string, unknown> => typeof json === 'object' && json !== null && !Array.isArray(json)

/** `acting`: the call may have changed Synapse; then only a clear refusal (4xx) is a failure. */
export function unexpected (response: SynapseResponse, acting = false): GatewayError {
  const { errcode, error } = matrixError(response.json)
  const outcome: Outcome = acting && (response.status < 400 || response.status >= 500) ? 'unknown' : 'failed'
  return problem('upstream_error', `Synapse gave an unexpected answer (HTTP ${response.status}).${quote(error)}`, { matrixErrcode: errcode, outcome })
}

/** The checks every answer passes before it is read. An acting call's unclear answer may hide an action done. */
export function checked (response: SynapseResponse, acting: boolean): { errcode: string | undefined, error: string | undefined } {
  const common = commonProblem(response, acting ? 'unknown' : 'failed')
  if (common !== undefined) throw common
  return matrixError(response.json)
}

/** What a call that got no answer leaves behind, said truthfully: only an acting call that was sent leaves doubt. */
function aftermath (mayHaveActed: boolean, sent: boolean): string {
  if (!mayHaveActed) return 'Synapse failed to answer the read; nothing was changed; retry later.'
  return sent ? 'The action may or may not have happened.' : 'The request never reached Synapse; nothing was changed; retry later.'
}

/** A call that got no answer: nothing was sent, it timed out, or the connection broke. */
export function callFailure (failure: SynapseCallError, mayHaveActed: boolean, retryAfterS: number): GatewayError {
  const outcome = mayHaveActed && failure.sent ? 'unknown' : 'failed'
  switch (failure.kind) {
    case 'saturated':
      return problem('upstream_unavailable', 'Too many requests to Synapse are waiting; retry in a moment.', { retryAfterS: 1 })
    case 'circuit_open':
      return problem('upstream_unavailable', 'Synapse keeps failing this kind of call, so such calls are paused; retry shortly.', { retryAfterS: failure.retryAfterS ?? retryAfterS })
    case 'unavailable':
      return problem('upstream_unavailable', 'Synapse cannot be reached; retry shortly or ask the operator to check it.', { retryAfterS: 5 })
    case 'timeout':
      return problem('upstream_timeout', outcome === 'unknown' ? DETAILS.upstream_timeout : `Synapse did not answer in time. ${aftermath(mayHaveActed, failure.sent)}`, { outcome })
    case 'broken':
      return problem('upstream_error', `The connection to Synapse broke or its answer was unreadable. ${aftermath(mayHaveActed, failure.sent)}`, { outcome })
  }
}

const USER_NOT_FOUND = 'Synapse has no such user: check the user ID (it is case-sensitive).'

/** Synapse 1.67 reports flags as 0/1, newer versions as booleans; anything else is not believed. */
function flag (value: unknown): boolean | undefined {
  if (value === false || value === 0) return false
  if (value === true || value === 1) return true
  return undefined
}

export interface LookedUpUser {
  deactivated: boolean
  admin: boolean
  shadowBanned: boolean
  displayname: string | null
  creationTs: number | null
  /** undefined where Synapse does not say (1.67 reports none of these three). */
  locked: boolean | undefined
  suspended: boolean | undefined
  erased: boolean | undefined
}

/** GET /_synapse/admin/v2/users/<id>: the user's state, or why we cannot act on them. */
export function lookedUpUser (response: SynapseResponse): LookedUpUser {
  const { errcode, error } = checked(response, false)
  if (response.status === 200) {
    const body = response.json as Record<string, unknown>
    const deactivated = flag(body.deactivated)
    // A join must never go through on an answer that does not clearly say "active".
    if (deactivated === undefined) throw unexpected(response)
    return {
      deactivated,
      admin: flag(body.admin) ?? false,
      shadowBanned: flag(body.shadow_banned) ?? false,
      displayname: typeof body.displayname === 'string' ? body.displayname : null,
      creationTs: typeof body.creation_ts === 'number' ? body.creation_ts : null,
      locked: flag(body.locked),
      suspended: flag(body.suspended),
      erased: flag(body.erased)
    }
  }
  if (response.status === 404) throw problem('user_not_found', USER_NOT_FOUND, { matrixErrcode: errcode })
  if (response.status === 400 && error?.includes('local users') === true) {
    throw problem('user_not_local', 'Only users of this homeserver can be acted on.', { matrixErrcode: errcode, outcome: 'failed' })
  }
  throw unexpected(response)
}

/** Synapse's 400 for a room ID it cannot parse: a room version 12 ID (no server part) on a Synapse that predates it (c4, m5c). */
const isIllegalRoom = (error: string | undefined) => error?.endsWith('was not legal room ID or room alias') === true
const illegalRoom = (errcode: string | undefined, error: string | undefined) =>
  problem('invalid_room', `Synapse does not accept this room ID or alias.${quote(error)}`, { matrixErrcode: errcode, outcome: 'failed' })

/** POST /_synapse/admin/v1/join/<room>: joined (maybe already), or why not. */
export function joinAnswer (response: SynapseResponse, userId: string): void {
  const { errcode, error } = checked(response, true)
  if (response.status === 200) {
    const roomId = (response.json as { room_id?: unknown }).room_id
    if (typeof roomId === 'string' && isRoomId(roomId)) return
    throw unexpected(response, true)
  }
  if (response.status === 403) {
    // Synapse answers a repeat join into a non-public room with 403; for the caller it is done.
    if (error === `${userId} is already in the room.`) return
    if (errcode === 'M_BAD_STATE') {
      throw problem('user_banned', `The user is banned from this room; unban them first.${quote(error)}`, { matrixErrcode: errcode })
    }
    if (error !== undefined && / not in room /.test(error)) {
      throw problem('admin_not_in_room', `The room is not public and the gateway's admin account is not in it; ${ADOPT_FIRST}${quote(error)}`, { matrixErrcode: errcode })
    }
    if (error === 'You don\'t have permission to invite users') {
      throw problem('admin_cannot_invite', `The gateway's admin account is in the room but may not invite; ${ADOPT_FIRST}${quote(error)}`, { matrixErrcode: errcode })
    }
    if (error === 'This room has been blocked on this server') {
      throw problem('room_blocked', `The room is blocked on this homeserver.${quote(error)}`, { matrixErrcode: errcode })
    }
    throw problem('synapse_forbidden', `Synapse refused to join the user.${quote(error)}`, { matrixErrcode: errcode })
  }
  if (response.status === 404) {
    if (error === 'User not found') throw problem('user_not_found', USER_NOT_FOUND, { matrixErrcode: errcode })
    throw problem('room_not_found', `Synapse does not know this room: check the room ID or alias.${quote(error)}`, { matrixErrcode: errcode })
  }
  if (response.status === 400) {
    if (isIllegalRoom(error)) throw illegalRoom(errcode, error)
    if (error?.includes('local users') === true) {
      throw problem('user_not_local', 'Only users of this homeserver can be joined.', { matrixErrcode: errcode, outcome: 'failed' })
    }
    if (errcode === 'M_INVALID_PARAM') {
      throw problem('invalid_user_id', `Synapse does not accept this user ID.${quote(error)}`, { matrixErrcode: errcode, outcome: 'failed' })
    }
  }
  throw unexpected(response, true)
}

export interface ResolvedAlias { roomId: string, servers: string[] }

/** GET /_matrix/client/v3/directory/room/<alias>: the alias's room, or why it does not resolve. */
export function resolvedAlias (response: SynapseResponse): ResolvedAlias {
  const { errcode, error } = checked(response, false)
  if (response.status === 200) {
    const { room_id: roomId, servers } = response.json as { room_id?: unknown, servers?: unknown }
    if (typeof roomId !== 'string' || !isRoomId(roomId)) throw unexpected(response)
    return { roomId, servers: Array.isArray(servers) ? servers.filter((server): server is string => typeof server === 'string').slice(0, 8) : [] }
  }
  if (response.status === 404) throw problem('room_not_found', `No room has this alias.${quote(error)}`, { matrixErrcode: errcode })
  if (response.status === 400) throw problem('invalid_room', `Synapse does not accept this alias.${quote(error)}`, { matrixErrcode: errcode, outcome: 'failed' })
  if (response.status === 502) {
    throw problem('upstream_error', `Synapse could not ask the alias's homeserver.${quote(error)}`, { matrixErrcode: errcode })
  }
  throw unexpected(response)
}

export type KickAnswer = 'removed' | 'not_in_room' | 'banned'

/** POST /_matrix/client/v3/rooms/<id>/kick, as the admin account. */
export function kickAnswer (response: SynapseResponse): KickAnswer {
  const { errcode, error } = checked(response, true)
  if (response.status === 200) return 'removed'
  // Synapse 1.163 (not 1.67, which answers 403 "not in the room") for an unknown room.
  if (response.status === 404 && error === 'Not a known room') {
    throw problem('room_not_found', `Synapse does not know this room: check the room ID or alias.${quote(error)}`, { matrixErrcode: errcode })
  }
  if (response.status === 403) {
    // Also said for unknown rooms: the caller tells those apart with the room details.
    if (error === 'The target user is not in the room') return 'not_in_room'
    if (errcode === 'M_BAD_STATE') return 'banned'
    if (error?.startsWith('You cannot kick user') === true) {
      throw problem('admin_cannot_kick', `The gateway's admin account may not remove this user: it needs kick power in the room and a higher power level than the user; ${ADOPT_FIRST}${quote(error)}`, { matrixErrcode: errcode })
    }
    if (error !== undefined && / not in room /.test(error)) {
      throw problem('admin_not_in_room', `The gateway's admin account is not in this room, so it cannot remove anyone from it; ${ADOPT_FIRST}${quote(error)}`, { matrixErrcode: errcode })
    }
    throw problem('synapse_forbidden', `Synapse refused to remove the user.${quote(error)}`, { matrixErrcode: errcode })
  }
  throw unexpected(response, true)
}

/** GET /_synapse/admin/v1/rooms/<id>: whether Synapse knows the room (its details are not needed). */
export function roomKnown (response: SynapseResponse): boolean {
  const { errcode } = checked(response, false)
  if (response.status === 404 && errcode === 'M_NOT_FOUND') return false
  if (response.status !== 200) throw unexpected(response)
  return true
}

export interface StateEvent { type: string, state_key: string, content: Record<string, unknown> }

/** GET /_synapse/admin/v1/rooms/<id>/state: the current state events, or undefined for an unknown room. */
export function roomState (response: SynapseResponse): StateEvent[] | undefined {
  const { errcode } = checked(response, false)
  if (response.status === 404 && errcode === 'M_NOT_FOUND') return undefined
  const state = (response.json as { state?: unknown }).state
  if (response.status !== 200 || !Array.isArray(state)) throw unexpected(response)
  return state.filter((event): event is StateEvent =>
    isObject(event) && typeof event.type === 'string' && typeof event.state_key === 'string' && isObject(event.content))
}

/** GET /_synapse/admin/v1/rooms/<id>/members, read with membersSelection: one page and the count of all. */
export function roomMembers (response: SynapseResponse): { members: string[], total: number } {
  const { errcode, error } = checked(response, false)
  if (response.status === 404) throw problem('room_not_found', `Synapse does not know this room.${quote(error)}`, { matrixErrcode: errcode })
  const { members, total } = response.json as { members?: unknown, total?: unknown }
  if (response.status !== 200 || !Array.isArray(members) || typeof total !== 'number') throw unexpected(response)
  return { members: members.filter((member): member is string => typeof member === 'string'), total }
}

/** GET /_synapse/admin/v1/users/<id>/joined_rooms (200 with an empty list for unknown users: look them up first). */
export function joinedRooms (response: SynapseResponse): string[] {
  checked(response, false)
  const rooms = (response.json as { joined_rooms?: unknown }).joined_rooms
  if (response.status !== 200 || !Array.isArray(rooms)) throw unexpected(response)
  return rooms.filter((room): room is string => typeof room === 'string')
}

/** GET /_synapse/admin/v1/rooms/<id>/block: whether the room is blocked on this server. */
export function blockStatus (response: SynapseResponse): boolean {
  checked(response, false)
  const block = (response.json as { block?: unknown }).block
  if (response.status !== 200 || typeof block !== 'boolean') throw unexpected(response)
  return block
}

/**
 * POST /_synapse/admin/v1/rooms/<room>/make_room_admin. It can half-succeed: the power level is
 * granted before a 403 (banned target) or a 502 (remote target) comes back, so those are `unknown`.
 */
export function makeRoomAdminAnswer (response: SynapseResponse, noPower: { code: ProblemCode, detail: string } = NO_POWER_TO_PROMOTE): void {
  const { errcode, error } = checked(response, true)
  if (response.status === 200) return
  if (response.status === 403 && errcode === 'M_BAD_STATE') {
    throw problem('user_banned', `The user is banned from this room; Synapse may already have raised their power level before refusing the invite: check the room.${quote(error)}`, { matrixErrcode: errcode, outcome: 'unknown' })
  }
  if ((response.status === 400 && error === 'Server not in room') || response.status === 404) {
    throw problem('room_not_found', `Synapse does not know this room.${quote(error)}`, { matrixErrcode: errcode })
  }
  if (response.status === 400 && isIllegalRoom(error)) throw illegalRoom(errcode, error)
  if (response.status === 400 && error?.startsWith('No local admin user in room') === true) {
    throw problem(noPower.code, `${noPower.detail}${quote(error)}`, { matrixErrcode: errcode })
  }
  throw unexpected(response, true)
}

const NO_POWER_TO_PROMOTE = { code: 'synapse_forbidden', detail: 'No local member of this room has the power to change its power levels, so Synapse cannot promote anyone.' } as const

/**
 * POST /_matrix/client/v3/rooms/<id>/join as the gateway's own account (room.adopt): joined, maybe
 * already (a3, a4), or why not: no invite 403 (a7), unknown room 404 (a9) (adopt-*.json).
 */
export function ownJoinAnswer (response: SynapseResponse): void {
  const { errcode, error } = checked(response, true)
  if (response.status === 200) {
    const roomId = (response.json as { room_id?: unknown }).room_id
    if (typeof roomId === 'string' && isRoomId(roomId)) return
    throw unexpected(response, true)
  }
  if (response.status === 404) throw problem('room_not_found', `Synapse does not know this room.${quote(error)}`, { matrixErrcode: errcode })
  if (response.status === 403) throw problem('synapse_forbidden', `Synapse refused the gateway's account's join.${quote(error)}`, { matrixErrcode: errcode })
  throw unexpected(response, true)
}
