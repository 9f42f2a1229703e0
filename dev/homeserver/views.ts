/**
 * How Synapse 1.67.0 shows a room: its current state events and the admin API's room details,
 * in the shapes recorded in actions-contract.json (t4*, t6, t8). The m.space.child events and
 * the `type` of a space's create event are not recorded; they follow the Matrix specification.
 */
import type { HomeserverState, MemberEvent, SimRoom } from './state.js'

export interface StateEvent {
  type: string
  room_id: string
  sender: string
  content: Record<string, unknown>
  state_key: string
  origin_server_ts: number
  unsigned: { age: number, replaces_state?: string }
  event_id: string
  user_id: string
  age: number
  replaces_state?: string
}

/** When the fixture rooms were made (the timestamps are not meaningful, only present). */
const CREATED_TS = 1796228533041

/** Room version 12 and later (MSC4289): the creator has unlimited power. */
export const creatorHasUnlimitedPower = (room: SimRoom) => Number(room.roomVersion ?? '9') >= 12

export function powerLevel (room: SimRoom, userId: string): number {
  if (userId === room.creator && creatorHasUnlimitedPower(room)) return Number.POSITIVE_INFINITY
  return room.powerLevels.get(userId) ?? room.usersDefault
}

export function joinedMembers (room: SimRoom): string[] {
  return [...room.members].filter(([, membership]) => membership === 'join').map(([userId]) => userId)
}

export function memberEventOf (room: SimRoom, userId: string): MemberEvent {
  const membership = room.members.get(userId)
  // Set directly by a test (room.members.set) without an event: shown as the obvious sender.
  return room.memberEvents.get(userId) ?? {
    sender: membership === 'join' || membership === 'leave' ? userId : room.creator,
    eventId: `$direct_${userId}`,
    replaces: membership === 'leave' || membership === 'ban'
  }
}

export function powerLevelsContent (room: SimRoom): Record<string, unknown> {
  return {
    users: Object.fromEntries(room.powerLevels),
    users_default: room.usersDefault,
    events: {
      'm.room.name': 50,
      'm.room.power_levels': room.powerLevelsChangeLevel,
      'm.room.history_visibility': 100,
      'm.room.canonical_alias': 50,
      'm.room.avatar': 50,
      'm.room.tombstone': 100,
      'm.room.server_acl': 100,
      'm.room.encryption': 100
    },
    events_default: 0,
    state_default: room.stateDefault,
    ban: room.banPowerLevel,
    kick: room.kickPowerLevel,
    redact: 50,
    invite: room.invitePowerLevel,
    historical: 100
  }
}

function localpart (userId: string): string {
  return userId.slice(1, userId.indexOf(':'))
}

/** The room's current state, sorted as Synapse's admin API returned it: by type, then state key. */
export function stateEvents (room: SimRoom, serverName: string): StateEvent[] {
  const now = Date.now()
  const event = (type: string, stateKey: string, sender: string, content: Record<string, unknown>, eventId: string, replaces = false): StateEvent => {
    const age = Math.max(0, now - CREATED_TS)
    const replacesState = replaces ? `${eventId}_previous` : undefined
    return {
      type,
      room_id: room.id,
      sender,
      content,
      state_key: stateKey,
      origin_server_ts: CREATED_TS,
      unsigned: replacesState === undefined ? { age } : { replaces_state: replacesState, age },
      event_id: eventId,
      user_id: sender,
      age,
      ...(replacesState === undefined ? {} : { replaces_state: replacesState })
    }
  }
  const creator = room.creator
  const events: StateEvent[] = [
    // Version 12's create event has no `creator` (g21): its sender is the creator.
    event('m.room.create', '', creator, { room_version: room.roomVersion ?? '9', ...(creatorHasUnlimitedPower(room) ? {} : { creator }), ...(room.roomType === null ? {} : { type: room.roomType }) }, `$create_${room.id}`),
    event('m.room.power_levels', '', room.powerLevelsSender, powerLevelsContent(room), room.powerLevelsEventId),
    event('m.room.join_rules', '', creator, { join_rule: room.public ? 'public' : 'invite' }, `$join_rules_${room.id}`),
    event('m.room.history_visibility', '', creator, { history_visibility: 'shared' }, `$history_${room.id}`),
    event('m.room.name', '', creator, { name: room.name }, `$name_${room.id}`)
  ]
  if (room.guestAccess !== null) events.push(event('m.room.guest_access', '', creator, { guest_access: room.guestAccess }, `$guest_${room.id}`))
  if (room.canonicalAlias !== null || room.altAliases.length > 0) {
    const content: Record<string, unknown> = room.canonicalAlias === null ? {} : { alias: room.canonicalAlias }
    if (room.altAliases.length > 0) content.alt_aliases = room.altAliases
    events.push(event('m.room.canonical_alias', '', creator, content, `$alias_${room.id}`))
  }
  // Spec (not recorded): a space names its children with m.space.child, state key = child room ID.
  for (const child of room.spaceChildren) events.push(event('m.space.child', child, creator, { via: [serverName] }, `$child_${child}`))
  for (const [userId, membership] of room.members) {
    const member = memberEventOf(room, userId)
    const content: Record<string, unknown> = {}
    if (member.reason !== undefined) content.reason = member.reason
    content.membership = membership
    if (membership === 'join') content.displayname = localpart(userId)
    events.push(event('m.room.member', userId, member.sender, content, member.eventId, member.replaces))
  }
  return events.sort((a, b) => a.type < b.type ? -1 : a.type > b.type ? 1 : a.state_key < b.state_key ? -1 : a.state_key > b.state_key ? 1 : 0)
}

/** One entry of the admin room list (GET /_synapse/admin/v1/rooms). */
export function roomSummary (room: SimRoom, serverName: string): Record<string, unknown> {
  const joined = joinedMembers(room)
  return {
    room_id: room.id,
    name: room.name,
    canonical_alias: room.canonicalAlias,
    joined_members: joined.length,
    joined_local_members: joined.filter((userId) => userId.endsWith(`:${serverName}`)).length,
    version: room.roomVersion ?? '9',
    creator: room.creator,
    encryption: null,
    federatable: true,
    public: room.published,
    join_rules: room.public ? 'public' : 'invite',
    guest_access: room.guestAccess,
    history_visibility: 'shared',
    state_events: stateEvents(room, serverName).length,
    room_type: room.roomType
  }
}

/** GET /_synapse/admin/v1/rooms/{roomId}: the summary plus devices, avatar, topic, forgotten. */
export function roomDetails (room: SimRoom, state: HomeserverState): Record<string, unknown> {
  const devices = joinedMembers(room).reduce((sum, userId) => sum + (state.users.get(userId)?.devices.length ?? 0), 0)
  return { ...roomSummary(room, state.serverName), avatar: null, topic: null, joined_local_devices: devices, forgotten: false }
}
