/**
 * Rooms at an organisation's scale, for tests and the bench (issue 18): a room with 5,000 members
 * and a room whose state holds events of 60 KB. Not recorded; shaped as the other rooms of the
 * simulator (the answers are Synapse 1.67's). Added to a running simulator's state on demand, so
 * the recorded fixtures stay as they were:
 *
 *   addBigRooms(homeserver.state)
 *
 * Both rooms are invite-only with the admin joined at power level 100, have a canonical alias
 * and an alt alias, and are children of the #support space, so policies with alias patterns,
 * spaces and `when` can decide on them.
 */
import { buildRoom, SPEC_ROOMS, type HomeserverState, type Membership } from './state.js'

export const BIG_ROOMS = {
  /** #company-wide:test.local (alt #everyone): 5,000 joined members @member0001… plus the admin. */
  members: '!simCompanyWide:test.local',
  /** #big-state:test.local (alt #big-state-old): member events whose content is 60 KB each. */
  state: '!simBigState:test.local'
} as const

export const BIG_ROOM_MEMBERS = 5000
/** How many members of the big-state room carry a 60 KB member event (together well over 256 KiB). */
export const BIG_STATE_EVENTS = 8
export const BIG_EVENT_BYTES = 60 * 1024

/** The n-th member of the company-wide room (1-based): @member0001:test.local … */
export const bigMember = (n: number, serverName = 'test.local') => `@member${String(n).padStart(4, '0')}:${serverName}`

function register (state: HomeserverState, userId: string): void {
  if (!state.users.has(userId)) {
    state.users.set(userId, { admin: false, deactivated: false, shadowBanned: false, creationTs: 1796228600, devices: [], lastSeenTs: undefined })
  }
}

/** An invite-only room of `count` joined members @member0001… (registered) and the admin. */
export function addMembersRoom (state: HomeserverState, id: string, alias: string, count: number, altAliases: string[] = []): void {
  const admin = `@admin:${state.serverName}`
  const members: Array<[string, Membership]> = [[admin, 'join']]
  for (let n = 1; n <= count; n++) {
    register(state, bigMember(n, state.serverName))
    members.push([bigMember(n, state.serverName), 'join'])
  }
  state.rooms.set(id, buildRoom({
    id,
    name: alias,
    creator: admin,
    isPublic: false,
    aliases: [alias, ...altAliases],
    altAliases,
    members,
    // A moderator besides the admin: make_room_admin's sender is chosen among these.
    powerLevels: { [admin]: 100, [bigMember(1, state.serverName)]: 50 },
    invitePowerLevel: 50
  }, state))
}

export function addBigRooms (state: HomeserverState): void {
  const admin = `@admin:${state.serverName}`
  addMembersRoom(state, BIG_ROOMS.members, '#company-wide:test.local', BIG_ROOM_MEMBERS, ['#everyone:test.local'])

  const bigState: Array<[string, Membership, { reason: string }] | [string, Membership]> = [[admin, 'join']]
  for (let n = 1; n <= BIG_STATE_EVENTS; n++) {
    const userId = `@bigstate${n}:${state.serverName}`
    register(state, userId)
    // Synapse keeps whatever a client puts in a member event's content (up to the 64 KB event limit).
    bigState.push([userId, 'join', { reason: `${n}`.padEnd(BIG_EVENT_BYTES, '.') }])
  }
  state.rooms.set(BIG_ROOMS.state, buildRoom({
    id: BIG_ROOMS.state,
    name: 'Big state',
    creator: admin,
    isPublic: false,
    aliases: ['#big-state:test.local', '#big-state-old:test.local'],
    altAliases: ['#big-state-old:test.local'],
    members: bigState,
    powerLevels: { [admin]: 100 },
    invitePowerLevel: 50
  }, state))

  const space = state.rooms.get(SPEC_ROOMS.supportSpace)
  if (space !== undefined) space.spaceChildren.push(BIG_ROOMS.members, BIG_ROOMS.state)
}
