/**
 * The homeserver state that the recordings in test/fixtures/synapse were made against
 * (Synapse 1.67.0, server name test.local): users, rooms, aliases, memberships, bans and
 * power levels, as the recorded answers reveal them.
 */
export type Membership = 'join' | 'invite' | 'leave' | 'ban'

export interface SimUser { admin: boolean, deactivated: boolean, shadowBanned: boolean, creationTs: number }

export interface SimRoom {
  id: string
  name: string
  public: boolean
  blocked: boolean
  aliases: string[]
  members: Map<string, Membership>
  powerLevels: Map<string, number>
  invitePowerLevel: number
}

export interface HomeserverState {
  serverName: string
  users: Map<string, SimUser>
  rooms: Map<string, SimRoom>
  /** access token → user ID */
  tokens: Map<string, string>
}

export const RECORDED_ROOMS = {
  publicTest: '!zfjAIbbHHrGJMZdmwr:test.local',
  privateAdmin: '!tZlyMQQmmQzsJqFLeL:test.local',
  alicePrivate: '!pgkEYrLBDvVkCxmzyq:test.local',
  bobPrivate: '!nGdnYJPvqndxPAEhrE:test.local',
  publicBob: '!trZNgSCTXTKgzkuaFC:test.local',
  blocked: '!kkZwAkzgeETpoThEbA:test.local',
  publicRate: '!nBFCjHZevpRiFoKglq:test.local'
} as const

const REGULAR_USERS = [
  'alice', 'bob', 'erin', 'frank', 'gina', 'hank', 'ivan', 'judy', 'kim', 'lena', 'nina',
  'oscar', 'paul', 'quinn', 'rita', 'uma',
  ...Array.from({ length: 30 }, (_, i) => `rl${String(i + 1).padStart(2, '0')}`)
]

function room (id: string, name: string, isPublic: boolean, aliases: string[], members: Record<string, Membership>, powerLevels: Record<string, number>, invitePowerLevel = 0): SimRoom {
  return {
    id,
    name,
    public: isPublic,
    blocked: false,
    aliases,
    members: new Map(Object.entries(members)),
    powerLevels: new Map(Object.entries(powerLevels)),
    invitePowerLevel
  }
}

export interface SeedOptions {
  adminToken: string
  /** Other tokens, e.g. a non-admin user's, to exercise Synapse's own auth answers. */
  userTokens?: Record<string, string>
}

export function recordedState ({ adminToken, userTokens = {} }: SeedOptions): HomeserverState {
  const serverName = 'test.local'
  const id = (local: string) => `@${local}:${serverName}`
  const users = new Map<string, SimUser>()
  let creationTs = 1795775729
  const addUser = (local: string, extra: Partial<SimUser> = {}) =>
    users.set(id(local), { admin: false, deactivated: false, shadowBanned: false, creationTs: creationTs++, ...extra })
  addUser('admin', { admin: true })
  for (const local of REGULAR_USERS) addUser(local)
  addUser('dave', { deactivated: true })
  addUser('sam', { shadowBanned: true })
  addUser('tina', { admin: true })

  const admin = id('admin')
  const rooms = new Map<string, SimRoom>([
    room(RECORDED_ROOMS.publicTest, 'Public test room', true, ['#public-test:test.local'],
      { [admin]: 'join', [id('erin')]: 'ban', [id('frank')]: 'leave' }, { [admin]: 100 }),
    room(RECORDED_ROOMS.privateAdmin, 'Private, admin in room', false, ['#private-admin:test.local'],
      { [admin]: 'join', [id('kim')]: 'invite', [id('erin')]: 'ban', [id('frank')]: 'leave' }, { [admin]: 100 }),
    room(RECORDED_ROOMS.alicePrivate, 'Alice\'s private room', false, [],
      { [id('alice')]: 'join' }, { [id('alice')]: 100 }),
    room(RECORDED_ROOMS.bobPrivate, 'Private, admin in room without invite power', false, [],
      { [id('bob')]: 'join', [admin]: 'join' }, { [id('bob')]: 100, [admin]: 0 }, 50),
    room(RECORDED_ROOMS.publicBob, 'Bob\'s public room', true, ['#public-bob:test.local'],
      { [id('bob')]: 'join' }, { [id('bob')]: 100 }),
    { ...room(RECORDED_ROOMS.blocked, 'Blocked room', true, [], { [id('bob')]: 'join' }, { [id('bob')]: 100 }), blocked: true },
    room(RECORDED_ROOMS.publicRate, 'Public rate-limit room', true, [],
      { [admin]: 'join', [id('rl02')]: 'leave' }, { [admin]: 100 })
  ].map((r) => [r.id, r]))

  const tokens = new Map<string, string>([[adminToken, admin]])
  for (const [token, userId] of Object.entries(userTokens)) tokens.set(token, userId)
  return { serverName, users, rooms, tokens }
}
