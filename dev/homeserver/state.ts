/**
 * The homeserver state that the recordings in test/fixtures/synapse were made against
 * (Synapse 1.67.0, server name test.local): users, rooms, aliases, memberships, bans and
 * power levels, as the recorded answers reveal them.
 *
 * Two recordings, two fixture databases: join-contract.json (`fixture: 'join'`, the default)
 * and actions-contract.json (`fixture: 'actions'`). They cannot be merged: @alice is joined to
 * a room in the first and, per the second (case t2), to exactly one other room. Each fixture
 * also holds a space and a room with alternative aliases; those are NOT recorded, they follow
 * the Matrix specification (rooms marked "spec" below).
 */
export type Membership = 'join' | 'invite' | 'leave' | 'ban'

export interface SimUser {
  admin: boolean
  deactivated: boolean
  shadowBanned: boolean
  creationTs: number
  /** Device IDs; the first one is the device of the user's own access tokens. */
  devices: string[]
  /** When the user was last seen with one of its own tokens (whois shows one connection), if ever. */
  lastSeenTs?: number
  /** Account state (accounts.ts): absent means false, and the display name the localpart. */
  locked?: boolean
  suspended?: boolean
  erased?: boolean
  displayname?: string | null
  avatarUrl?: string | null
}

/** What the room's current m.room.member event for a user says besides the membership. */
export interface MemberEvent {
  sender: string
  /** Anything the client sent as `reason`; Synapse stores a number as a number (case k15). */
  reason?: unknown
  /** Changes whenever a new member event is sent; equal when Synapse deduplicated. */
  eventId: string
  /** Whether the event replaced an earlier member event (`unsigned.replaces_state`). */
  replaces: boolean
}

export interface SimRoom {
  id: string
  name: string
  /** Join rule `public`; otherwise `invite`. (Not the room directory: see `published`.) */
  public: boolean
  blocked: boolean
  /** Every local alias that resolves to the room. */
  aliases: string[]
  members: Map<string, Membership>
  powerLevels: Map<string, number>
  invitePowerLevel: number
  creator: string
  /** Listed in the room directory (`public` in the admin room details). */
  published: boolean
  canonicalAlias: string | null
  altAliases: string[]
  guestAccess: 'can_join' | null
  /** `m.space` for a space (spec), null for a room. */
  roomType: string | null
  kickPowerLevel: number
  /** '9' unless set; from '12' on (MSC4289) the creator has unlimited power and is not listed in `powerLevels`. */
  roomVersion?: string
  banPowerLevel: number
  stateDefault: number
  usersDefault: number
  /** `events["m.room.power_levels"]`: the power needed to change power levels. */
  powerLevelsChangeLevel: number
  powerLevelsSender: string
  /** Changes whenever a new m.room.power_levels event is sent. */
  powerLevelsEventId: string
  /** Child room IDs (m.space.child state events, spec). */
  spaceChildren: string[]
  /** The current member event per user; a user missing here is shown as a self-sent event. */
  memberEvents: Map<string, MemberEvent>
}

export interface HomeserverState {
  serverName: string
  users: Map<string, SimUser>
  rooms: Map<string, SimRoom>
  /** access token → user ID */
  tokens: Map<string, string>
  /** Tokens made by the admin login-as API: no device, and they work for deactivated users. */
  puppetTokens: Map<string, { validUntilMs: number | null }>
  /** Source of event IDs for new events. */
  nextEvent: number
}

export type Fixture = 'join' | 'actions'

export const RECORDED_ROOMS = {
  publicTest: '!zfjAIbbHHrGJMZdmwr:test.local',
  privateAdmin: '!tZlyMQQmmQzsJqFLeL:test.local',
  alicePrivate: '!pgkEYrLBDvVkCxmzyq:test.local',
  bobPrivate: '!nGdnYJPvqndxPAEhrE:test.local',
  publicBob: '!trZNgSCTXTKgzkuaFC:test.local',
  blocked: '!kkZwAkzgeETpoThEbA:test.local',
  publicRate: '!nBFCjHZevpRiFoKglq:test.local'
} as const

/** The rooms of the actions fixture (actions-contract.json), by what the recordings use them for. */
export const ACTION_ROOMS = {
  /** fresh_public, #fresh-public: public, admin PL 100; kick cases (k1–k25), bert banned, fay left, gus invited. */
  kickPublic: '!bpxxXtPLLmJbRmcGfk:test.local',
  /** fresh_private_admin, #fresh-private-admin: invite-only, admin PL 100; wes and rex joined, bert banned. */
  privateAdmin: '!tPeOOnSDqBnlAKUrun:test.local',
  /** fresh_private_admin_not_in_room, #fresh-private-not-in-room: alice's invite-only room without the admin; sue and lou joined, tom invited. */
  aliceNoAdmin: '!FXUrsgbXpHsoHAMPXA:test.local',
  /** fresh_private_admin_without_invite_power, #fresh-private-admin-without-invite-power: bob's room, admin joined with PL 0 (kick 50). */
  bobNoPower: '!HFxvvCRNIVuDMNjMdn:test.local',
  /** blocked_room, #blocked-room: public, blocked by the admin, oli joined before the block. */
  blocked: '!ZRMWbGmkWwKWsVkIkp:test.local',
  /** The admin's scratch room (k10: the admin kicks itself), uli joined. Name not recorded. */
  scratch: '!YTgnrYWfRHajQQTrpI:test.local',
  /** hal's room: admin PL 50 = kick level, hal PL 100, ivo PL 50, jan PL 0 (k11). Name not recorded. */
  halPowers: '!ixJvYqxBdQSppzRyoL:test.local',
  /** No joined local user in users{}: cara (PL 100) left, dan joined with PL 0 (m4). Name not recorded. */
  noAdminJoined: '!yFmXizKASZIhMcqPuk:test.local',
  /** The best joined user in users{} (dan) has only PL 10 (m4b). Name not recorded. */
  weakAdmin: '!XAmTwKeOvHTMlHBYRT:test.local'
} as const

/** Rooms in both fixtures that are not recorded; they follow the Matrix specification. */
export const SPEC_ROOMS = {
  /** #support:test.local, a space (room_type m.space) whose m.space.child events name rooms of the fixture. */
  supportSpace: '!simSupportSpace:test.local',
  /** #helpdesk:test.local, canonical alias with alt_aliases #helpdesk-old and #servicedesk. */
  helpdesk: '!simHelpdeskRoom:test.local'
} as const

/** The accounts of the actions fixture, by what they are for. */
export const ACTION_USERS = {
  admin: '@admin:test.local',
  /** Deactivated, never in a room; login-as still works for it (l13). */
  deactivated: '@dave:test.local',
  /** Banned from kickPublic (with reason "fixture: banned") and from privateAdmin. */
  banned: '@bert:test.local',
  /** Joined to aliceNoAdmin only; has a device PJBLKEUXUO (login-as, leave, logout: l1–l10c). */
  sue: '@sue:test.local',
  /** Invited to aliceNoAdmin (l11). */
  invited: '@tom:test.local',
  /** Left kickPublic by herself (k7). */
  leftByHerself: '@fay:test.local',
  /** Registered, never in a room (k6). */
  neverJoined: '@eli:test.local',
  /** Not registered (k12, l14, m8b). */
  unknown: '@ghost:test.local'
} as const

const JOIN_USERS = [
  'alice', 'bob', 'erin', 'frank', 'gina', 'hank', 'ivan', 'judy', 'kim', 'lena', 'nina',
  'oscar', 'paul', 'quinn', 'rita', 'uma',
  ...Array.from({ length: 30 }, (_, i) => `rl${String(i + 1).padStart(2, '0')}`)
]

const ACTION_USERS_LOCAL = [
  'bob', 'oscar', 'sue', 'tom', 'bert', 'ana', 'ben', 'cid', 'dot', 'eli', 'fay', 'gus', 'hal', 'ivo', 'jan',
  'kay', 'lou', 'max', 'ned', 'oli', 'pam', 'quin', 'rex', 'uli', 'vic', 'wes', 'xena', 'yan', 'zed',
  'cara', 'dan', 'ada', 'kai'
]

interface RoomSpec {
  id: string
  name: string
  creator: string
  isPublic: boolean
  aliases?: string[]
  /** Defaults to the first alias. */
  canonicalAlias?: string | null
  altAliases?: string[]
  /** In insertion order; this is the order of the members list. */
  members: Array<[string, Membership] | [string, Membership, Partial<MemberEvent>]>
  powerLevels: Record<string, number>
  invitePowerLevel?: number
  kickPowerLevel?: number
  roomVersion?: string
  blocked?: boolean
  roomType?: string | null
  spaceChildren?: string[]
}

export function buildRoom (spec: RoomSpec, state: Pick<HomeserverState, 'nextEvent'>): SimRoom {
  const eventId = () => `$sim${state.nextEvent++}`
  const memberEvents = new Map<string, MemberEvent>()
  const members = new Map<string, Membership>()
  for (const [userId, membership, event] of spec.members) {
    members.set(userId, membership)
    // A leave or ban replaced an earlier join; a first join or invite replaced nothing.
    const sender = membership === 'join' || membership === 'leave' ? userId : spec.creator
    memberEvents.set(userId, { sender, eventId: eventId(), replaces: membership === 'leave' || membership === 'ban', ...event })
  }
  const aliases = spec.aliases ?? []
  return {
    id: spec.id,
    name: spec.name,
    public: spec.isPublic,
    blocked: spec.blocked ?? false,
    aliases,
    members,
    powerLevels: new Map(Object.entries(spec.powerLevels)),
    invitePowerLevel: spec.invitePowerLevel ?? 50,
    creator: spec.creator,
    published: false,
    canonicalAlias: spec.canonicalAlias === undefined ? aliases[0] ?? null : spec.canonicalAlias,
    altAliases: spec.altAliases ?? [],
    // Synapse's private_chat preset lets guests join; public_chat does not set guest access.
    guestAccess: spec.isPublic ? null : 'can_join',
    roomType: spec.roomType ?? null,
    kickPowerLevel: spec.kickPowerLevel ?? 50,
    ...(spec.roomVersion === undefined ? {} : { roomVersion: spec.roomVersion }),
    banPowerLevel: 50,
    stateDefault: 50,
    usersDefault: 0,
    powerLevelsChangeLevel: 100,
    powerLevelsSender: spec.creator,
    powerLevelsEventId: eventId(),
    spaceChildren: spec.spaceChildren ?? [],
    memberEvents
  }
}

export interface SeedOptions {
  adminToken: string
  /** Other tokens, e.g. a non-admin user's, to exercise Synapse's own auth answers. */
  userTokens?: Record<string, string>
  /** Which recording's database to start from; `join` unless told. */
  fixture?: Fixture
}

/** Spec rooms: a space over `children` and a room with alternative aliases, both the admin's. */
function specRooms (admin: string, children: string[]): RoomSpec[] {
  return [
    {
      id: SPEC_ROOMS.supportSpace,
      name: 'Support',
      creator: admin,
      isPublic: false,
      aliases: ['#support:test.local'],
      members: [[admin, 'join']],
      powerLevels: { [admin]: 100 },
      roomType: 'm.space',
      spaceChildren: children
    },
    {
      id: SPEC_ROOMS.helpdesk,
      name: 'Helpdesk',
      creator: admin,
      isPublic: false,
      aliases: ['#helpdesk:test.local', '#helpdesk-old:test.local', '#servicedesk:test.local'],
      altAliases: ['#helpdesk-old:test.local', '#servicedesk:test.local'],
      members: [[admin, 'join']],
      powerLevels: { [admin]: 100 }
    }
  ]
}

function joinRooms (id: (local: string) => string): RoomSpec[] {
  const admin = id('admin')
  return [
    {
      id: RECORDED_ROOMS.publicTest,
      name: 'Public test room',
      creator: admin,
      isPublic: true,
      aliases: ['#public-test:test.local'],
      members: [[admin, 'join'], [id('erin'), 'ban'], [id('frank'), 'leave']],
      powerLevels: { [admin]: 100 },
      invitePowerLevel: 0
    },
    {
      id: RECORDED_ROOMS.privateAdmin,
      name: 'Private, admin in room',
      creator: admin,
      isPublic: false,
      aliases: ['#private-admin:test.local'],
      members: [[admin, 'join'], [id('kim'), 'invite'], [id('erin'), 'ban'], [id('frank'), 'leave']],
      powerLevels: { [admin]: 100 },
      invitePowerLevel: 0
    },
    { id: RECORDED_ROOMS.alicePrivate, name: 'Alice\'s private room', creator: id('alice'), isPublic: false, members: [[id('alice'), 'join']], powerLevels: { [id('alice')]: 100 }, invitePowerLevel: 0 },
    {
      id: RECORDED_ROOMS.bobPrivate,
      name: 'Private, admin in room without invite power',
      creator: id('bob'),
      isPublic: false,
      aliases: ['#private-bob:test.local'],
      members: [[id('bob'), 'join'], [admin, 'join']],
      powerLevels: { [id('bob')]: 100, [admin]: 0 },
      invitePowerLevel: 50
    },
    { id: RECORDED_ROOMS.publicBob, name: 'Bob\'s public room', creator: id('bob'), isPublic: true, aliases: ['#public-bob:test.local'], members: [[id('bob'), 'join']], powerLevels: { [id('bob')]: 100 }, invitePowerLevel: 0 },
    { id: RECORDED_ROOMS.blocked, name: 'Blocked room', creator: id('bob'), isPublic: true, members: [[id('bob'), 'join']], powerLevels: { [id('bob')]: 100 }, invitePowerLevel: 0, blocked: true },
    { id: RECORDED_ROOMS.publicRate, name: 'Public rate-limit room', creator: admin, isPublic: true, members: [[admin, 'join'], [id('rl02'), 'leave']], powerLevels: { [admin]: 100 }, invitePowerLevel: 0 },
    ...specRooms(admin, [RECORDED_ROOMS.publicTest, RECORDED_ROOMS.privateAdmin, RECORDED_ROOMS.blocked])
  ]
}

/** The rooms as they were right before case k1 of actions-contract.json. */
function actionRooms (id: (local: string) => string): RoomSpec[] {
  const admin = id('admin')
  const joined = (...locals: string[]) => locals.map((local): [string, Membership] => [id(local), 'join'])
  return [
    {
      id: ACTION_ROOMS.kickPublic,
      name: 'fresh_public',
      creator: admin,
      isPublic: true,
      aliases: ['#fresh-public:test.local'],
      members: [
        ...joined('admin', 'ana', 'ben', 'cid', 'dot'),
        [id('fay'), 'leave'],
        [id('gus'), 'invite'],
        [id('bert'), 'ban', { reason: 'fixture: banned' }],
        ...joined('kay', 'ned', 'quin', 'xena', 'alice', 'pam', 'kai', 'vic')
      ],
      powerLevels: { [admin]: 100 }
    },
    {
      id: ACTION_ROOMS.privateAdmin,
      name: 'fresh_private_admin',
      creator: admin,
      isPublic: false,
      aliases: ['#fresh-private-admin:test.local'],
      members: [...joined('admin', 'wes', 'rex'), [id('bert'), 'ban']],
      powerLevels: { [admin]: 100 }
    },
    {
      id: ACTION_ROOMS.aliceNoAdmin,
      name: 'fresh_private_admin_not_in_room',
      creator: id('alice'),
      isPublic: false,
      aliases: ['#fresh-private-not-in-room:test.local'],
      members: [...joined('alice', 'lou', 'sue'), [id('tom'), 'invite']],
      powerLevels: { [id('alice')]: 100 }
    },
    {
      id: ACTION_ROOMS.bobNoPower,
      name: 'fresh_private_admin_without_invite_power',
      creator: id('bob'),
      isPublic: false,
      aliases: ['#fresh-private-admin-without-invite-power:test.local'],
      members: joined('bob', 'admin', 'max', 'zed'),
      powerLevels: { [id('bob')]: 100 }
    },
    {
      id: ACTION_ROOMS.blocked,
      name: 'blocked_room',
      creator: admin,
      isPublic: true,
      aliases: ['#blocked-room:test.local'],
      members: joined('admin', 'oli'),
      powerLevels: { [admin]: 100 },
      blocked: true
    },
    { id: ACTION_ROOMS.scratch, name: 'scratch_room', creator: admin, isPublic: false, members: joined('admin', 'uli'), powerLevels: { [admin]: 100 } },
    {
      id: ACTION_ROOMS.halPowers,
      name: 'hal_room',
      creator: id('hal'),
      isPublic: false,
      members: joined('hal', 'admin', 'ivo', 'jan'),
      powerLevels: { [id('hal')]: 100, [admin]: 50, [id('ivo')]: 50 }
    },
    { id: ACTION_ROOMS.noAdminJoined, name: 'no_admin_joined', creator: id('cara'), isPublic: false, members: [[id('cara'), 'leave'], [id('dan'), 'join']], powerLevels: { [id('cara')]: 100 } },
    { id: ACTION_ROOMS.weakAdmin, name: 'weak_admin', creator: id('cara'), isPublic: false, members: [[id('cara'), 'leave'], [id('dan'), 'join']], powerLevels: { [id('cara')]: 100, [id('dan')]: 10 } },
    ...specRooms(admin, [ACTION_ROOMS.kickPublic, ACTION_ROOMS.privateAdmin, ACTION_ROOMS.blocked])
  ]
}

export function recordedState ({ adminToken, userTokens = {}, fixture = 'join' }: SeedOptions): HomeserverState {
  const serverName = 'test.local'
  const id = (local: string) => `@${local}:${serverName}`
  const state: HomeserverState = { serverName, users: new Map(), rooms: new Map(), tokens: new Map(), puppetTokens: new Map(), nextEvent: 1 }
  const { users } = state
  // creation_ts as recorded: join fixture from 1795775729, actions fixture admin 1796228527, alice +1, dave +4.
  let creationTs = fixture === 'join' ? 1795775729 : 1796228527
  const addUser = (local: string, extra: Partial<SimUser> = {}) => {
    // Devices as the room details' joined_local_devices count them: admin, alice and bob have two.
    const count = ['admin', 'alice', 'bob'].includes(local) ? 2 : 1
    const devices = local === 'sue' ? ['PJBLKEUXUO'] : Array.from({ length: count }, (_, i) => `SIM${local.toUpperCase()}${i + 1}`)
    users.set(id(local), { admin: false, deactivated: false, shadowBanned: false, creationTs: creationTs++, devices, lastSeenTs: 1796229089444, ...extra })
  }
  addUser('admin', { admin: true })
  if (fixture === 'join') {
    for (const local of JOIN_USERS) addUser(local)
    addUser('dave', { deactivated: true, devices: [], lastSeenTs: undefined })
    addUser('sam', { shadowBanned: true })
    addUser('tina', { admin: true })
  } else {
    addUser('alice')
    creationTs += 2
    addUser('dave', { deactivated: true, devices: [], lastSeenTs: undefined })
    for (const local of ACTION_USERS_LOCAL) addUser(local)
  }
  const specs = fixture === 'join' ? joinRooms(id) : actionRooms(id)
  for (const spec of specs) state.rooms.set(spec.id, buildRoom(spec, state))

  state.tokens.set(adminToken, id('admin'))
  for (const [token, userId] of Object.entries(userTokens)) state.tokens.set(token, userId)
  return state
}
