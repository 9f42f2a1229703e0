/**
 * What the simulated homeserver does to rooms, with Synapse 1.67.0's checks in Synapse's order:
 * alias lookups, the admin join, kick, leave and make_room_admin. The answers and their order
 * are the ones recorded in test/fixtures/synapse (join-contract.json, actions-contract.json;
 * actions-findings.md explains them).
 */
import { AnswerError, domainOf, fail, internalError, matrixError, parseUserId, type Answer } from './answers.js'
import type { HomeserverState, Membership, SimRoom } from './state.js'
import { creatorHasUnlimitedPower, memberEventOf, powerLevel } from './views.js'

const OK: Answer = { status: 200, body: {} }

export function roomByAlias (state: HomeserverState, alias: string): SimRoom | undefined {
  for (const room of state.rooms.values()) if (room.aliases.includes(alias)) return room
  return undefined
}

/** GET /_matrix/client/v3/directory/room/{alias} (cases x1–x4, t7*). */
export function directory (state: HomeserverState, alias: string): Answer {
  if (!alias.startsWith('#') || !alias.includes(':')) return matrixError(400, 'M_INVALID_PARAM', 'Room alias invalid')
  if (domainOf(alias) !== state.serverName) return matrixError(502, 'M_UNKNOWN', 'Failed to fetch alias')
  const room = roomByAlias(state, alias)
  if (room === undefined) return matrixError(404, 'M_NOT_FOUND', `Room alias ${alias} not found`)
  return { status: 200, body: { room_id: room.id, servers: [state.serverName] } }
}

/** resolve_room_id of the admin API: a room ID as it is (known or not), an alias through the directory. */
export function resolveRoom (state: HomeserverState, identifier: string): { roomId: string, room: SimRoom | undefined } {
  const isRoomId = identifier.startsWith('!') && identifier.includes(':')
  const isAlias = identifier.startsWith('#') && identifier.includes(':')
  if (!isRoomId && !isAlias) fail(400, 'M_UNKNOWN', `${identifier} was not legal room ID or room alias`)
  if (isRoomId) return { roomId: identifier, room: state.rooms.get(identifier) }
  const answer = directory(state, identifier)
  if (answer.status !== 200) throw new AnswerError(answer)
  const room = roomByAlias(state, identifier) as SimRoom
  return { roomId: room.id, room }
}

/** Sends a new m.room.member event. */
export function setMembership (state: HomeserverState, room: SimRoom, userId: string, membership: Membership, sender: string, reason?: unknown): void {
  const replaces = room.members.has(userId)
  room.members.set(userId, membership)
  room.memberEvents.set(userId, { sender, eventId: `$sim${state.nextEvent++}`, replaces, ...(reason === undefined ? {} : { reason }) })
}

/** The admin join API (join-contract.json): Synapse invites first in rooms that are not public. */
export function adminJoin (state: HomeserverState, requester: string, room: SimRoom, userId: string): Answer {
  if (room.blocked) return matrixError(403, 'M_UNKNOWN', 'This room has been blocked on this server')
  const membership = room.members.get(userId)
  if (!room.public) {
    if (membership === 'ban') return matrixError(403, 'M_BAD_STATE', 'Cannot invite user who was banned')
    if (room.members.get(requester) !== 'join') return matrixError(403, 'M_FORBIDDEN', `${requester} not in room ${room.id}.`)
    if (membership === 'join') return matrixError(403, 'M_FORBIDDEN', `${userId} is already in the room.`)
    if (powerLevel(room, requester) < room.invitePowerLevel) return matrixError(403, 'M_FORBIDDEN', 'You don\'t have permission to invite users')
  } else if (membership === 'ban') {
    return matrixError(403, 'M_BAD_STATE', 'Cannot join user who was banned')
  }
  setMembership(state, room, userId, 'join', userId)
  return { status: 200, body: { room_id: room.id } }
}

/**
 * POST /_matrix/client/v3/rooms/{roomId}/join as `requester` (room.adopt's own join; cases a3–a9 of
 * adopt-1.163.2.json and adopt-1.67.0.json, the same in both). A joined member joining again gets
 * 200 (a4); an invited one (a3), or anyone in a public room (a8), joins; no invite: 403 (a7).
 * The ban and block answers are not recorded (Synapse's event auth rules).
 */
export function clientJoin (state: HomeserverState, requester: string, roomId: string): Answer {
  const room = state.rooms.get(roomId)
  if (room === undefined) return fail(404, 'M_UNKNOWN', 'Can\'t join remote room because no servers that are in the room have been provided.')
  if (room.blocked) return matrixError(403, 'M_UNKNOWN', 'This room has been blocked on this server')
  const membership = room.members.get(requester)
  if (membership === 'ban') return fail(403, 'M_FORBIDDEN', 'You are banned from this room')
  if (membership === 'join') return { status: 200, body: { room_id: room.id } }
  if (membership !== 'invite' && !room.public) return fail(403, 'M_FORBIDDEN', 'You are not invited to this room.')
  setMembership(state, room, requester, 'join', requester)
  return { status: 200, body: { room_id: room.id } }
}

/**
 * POST /_matrix/client/v3/rooms/{roomId}/kick as `requester` (cases k*). The target's membership
 * is checked before anything about the requester, so an unknown, remote or malformed room ID and
 * an alias all answer "The target user is not in the room" (there is no member event to find).
 */
export function kick (state: HomeserverState, requester: string, roomId: string, content: Record<string, unknown>): Answer {
  if (!Object.hasOwn(content, 'user_id')) fail(400, 'M_MISSING_PARAM', 'Missing params: [\'user_id\']')
  const target = parseUserId(content.user_id)
  const room = state.rooms.get(roomId)
  const membership = room?.members.get(target)
  if (room === undefined || membership === undefined || membership === 'leave') return fail(403, 'M_FORBIDDEN', 'The target user is not in the room')
  if (membership === 'ban') fail(403, 'M_BAD_STATE', 'Cannot kick user who was banned')
  if (room.members.get(requester) !== 'join') fail(403, 'M_FORBIDDEN', `${requester} not in room ${room.id}.`)
  if (target !== requester) {
    const level = powerLevel(room, requester)
    // Equal power is refused too (k11b).
    if (level < room.kickPowerLevel || level <= powerLevel(room, target)) fail(403, 'M_FORBIDDEN', `You cannot kick user ${target}.`)
  }
  setMembership(state, room, target, 'leave', requester, content.reason)
  return OK
}

/** POST /_matrix/client/v3/rooms/{roomId}/leave as `requester` (cases l5–l14c). */
export function leave (state: HomeserverState, requester: string, roomId: string, content: Record<string, unknown>): Answer {
  const room = state.rooms.get(roomId)
  if (room === undefined) return fail(404, 'M_UNKNOWN', 'Not a known room')
  const membership = room.members.get(requester)
  const reason = content.reason
  if (membership === 'leave') {
    // The same leave again is deduplicated to the existing event (l6).
    const previous = memberEventOf(room, requester)
    if (previous.sender === requester && previous.reason === reason) return OK
  }
  // Never in the room, left, or banned: the event auth rules refuse (l7, l12b).
  if (membership !== 'join' && membership !== 'invite') fail(403, 'M_FORBIDDEN', `${requester} not in room ${room.id}.`)
  setMembership(state, room, requester, 'leave', requester, reason)
  return OK
}

/**
 * POST /_synapse/admin/v1/rooms/{roomIdOrAlias}/make_room_admin (cases m*, h7–h8l): the power
 * level is granted by the joined local user with the highest power in users{} (the most recently
 * added among equals), then a target who is neither joined nor invited is invited to a room that
 * is not public. An invite that fails leaves the granted power level in place.
 */
export function makeRoomAdmin (state: HomeserverState, requester: string, identifier: string, content: Record<string, unknown>): Answer {
  const { room } = resolveRoom(state, identifier)
  const userToAdd = Object.hasOwn(content, 'user_id') ? content.user_id : requester
  if (room === undefined) return fail(400, 'M_UNKNOWN', 'Server not in room')
  if (typeof userToAdd !== 'string') throw new AnswerError(internalError())
  const candidates = [...room.powerLevels.keys()]
    .filter((userId) => domainOf(userId) === state.serverName && room.members.get(userId) === 'join')
    .map((userId, index) => ({ userId, level: powerLevel(room, userId), index }))
    .sort((a, b) => b.level - a.level || b.index - a.index)
  // Version 12: a joined local creator is tried first (Synapse 1.163's make_room_admin, from its source).
  const creatorSends = creatorHasUnlimitedPower(room) && domainOf(room.creator) === state.serverName && room.members.get(room.creator) === 'join'
  const sender = creatorSends ? room.creator : candidates[0]?.userId
  if (sender === undefined) return fail(400, 'M_UNKNOWN', 'No local admin user in room')
  // A power-level event naming something that is not a user ID fails validation: 500, nothing changes (m8c).
  if (!userToAdd.startsWith('@') || !userToAdd.includes(':')) throw new AnswerError(internalError())
  // The target gets the sender's listed level; a creator, who is not listed, grants 100.
  const senderLevel = room.powerLevels.get(sender) ?? (creatorSends ? 100 : room.usersDefault)
  const previous = room.powerLevels.get(userToAdd)
  const senderPower = powerLevel(room, sender)
  const changesHigherUser = previous !== undefined && previous !== senderLevel && previous >= senderPower && userToAdd !== sender
  if (senderPower < room.powerLevelsChangeLevel || changesHigherUser) {
    fail(400, 'M_UNKNOWN', 'No local admin user in room with power to update power levels.')
  }
  // Synapse deduplicates a power-level event with the same sender and content (m9), not a new sender (m1b).
  if (previous !== senderLevel || room.powerLevelsSender !== sender) {
    room.powerLevels.set(userToAdd, senderLevel)
    room.powerLevelsSender = sender
    room.powerLevelsEventId = `$sim${state.nextEvent++}`
  }
  const membership = room.members.get(userToAdd)
  if (membership === 'join' || membership === 'invite' || room.public) return OK
  if (membership === 'ban') fail(403, 'M_BAD_STATE', 'Cannot invite user who was banned')
  if (domainOf(userToAdd) !== state.serverName) fail(502, 'M_UNKNOWN', `Can't connect to server ${domainOf(userToAdd)}`)
  setMembership(state, room, userToAdd, 'invite', sender)
  return OK
}
