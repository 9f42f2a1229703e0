/**
 * The cases of each acting action, each set up in the real Synapse from scratch: the request,
 * the answer the contract ("Actions", "Errors") promises, and what must then hold in Synapse.
 * The action tests make the real calls; dry-run.test.ts runs each as a dry run first and checks
 * that the dry run changes nothing and predicts the real call.
 */
import type { Test } from 'tap'
import { Matrix, waitFor, type MatrixUser } from './matrix.js'
import { segment, type Answer, type Gateway } from './gateway.js'

export interface World {
  matrix: Matrix
  /** The gateway's account: a server admin, created for this run. */
  admin: MatrixUser
  /** An ordinary user who owns the rooms the gateway's admin account is not in (or has no power in). */
  owner: MatrixUser
}

export interface Scenario {
  action: 'room.join' | 'room.remove' | 'room.promote'
  name: string
  method: 'POST' | 'DELETE'
  path: string
  body?: Record<string, unknown>
  /** The room the case acts on, when it exists (for state snapshots). */
  roomId: string | undefined
  expected: { status: number, code?: string, body?: Record<string, unknown> }
  /** What must hold in Synapse after the real call; throws (with what it found) otherwise. */
  verify: () => Promise<void>
}

export async function createWorld (): Promise<World> {
  const matrix = new Matrix()
  const [admin, owner] = await Promise.all([matrix.register('gw', { admin: true }), matrix.register('owner')])
  return { matrix, admin, owner }
}

function expectEqual (what: string, actual: unknown, expected: unknown): void {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    throw new Error(`${what}: expected ${JSON.stringify(expected)}, Synapse has ${JSON.stringify(actual)}`)
  }
}

/** Member and power-level state events by ID: a dry run must leave them all as they were. */
export async function stateSnapshot (world: World, roomId: string | undefined): Promise<string[]> {
  if (roomId === undefined) return []
  return (await world.matrix.roomState(world.admin.token, roomId))
    .filter((event) => event.type === 'm.room.member' || event.type === 'm.room.power_levels')
    .map((event) => `${String(event.type)}/${String(event.state_key)}=${String(event.event_id)}`)
    .sort()
}

const membershipOf = async (world: World, roomId: string, userId: string) =>
  (await world.matrix.membership(world.admin.token, roomId, userId))?.membership

const expectMembership = (world: World, roomId: string, userId: string, expected: string | undefined) => async () => {
  expectEqual(`membership of ${userId} in ${roomId}`, await membershipOf(world, roomId, userId) ?? null, expected ?? null)
}

export async function joinScenarios (world: World): Promise<Scenario[]> {
  const { matrix: m, admin, owner } = world
  const join = (name: string, room: string, roomId: string | undefined, userId: string, expected: Scenario['expected'], verify: Scenario['verify']): Scenario =>
    ({ action: 'room.join', name, method: 'POST', path: `/v1/rooms/${segment(room)}/members`, body: { user_id: userId }, roomId, expected, verify })
  const user = async (name: string) => await m.register(`join-${name}`)

  // Room creation is the slow part of the setup (about 0.7 s each, one at a time in Synapse),
  // so cases share rooms where they can: each case has its own user.
  const [publicRoom, privateRoom, foreignRoom, powerlessRoom, blockedRoom] = await Promise.all([
    m.createRoom(owner, { preset: 'public_chat' }),
    m.createRoom(admin, { preset: 'private_chat' }),
    m.createRoom(owner, { preset: 'private_chat' }),
    m.createRoom(owner, { preset: 'private_chat', invite: [admin.userId] }),
    m.createRoom(admin, { preset: 'public_chat' })
  ])
  const aliasRoom = privateRoom
  const alreadyRoom = privateRoom
  const bannedRoom = privateRoom
  const alias = m.alias('join-alias')
  const [pub, priv, viaAlias, already, deactivated, banned, foreign, powerless, blocked, anyone] = await Promise.all(
    ['public', 'private', 'alias', 'already', 'deactivated', 'banned', 'foreign', 'powerless', 'blocked', 'unknownroom'].map(user))
  const unknownUser = m.userId('join-nobody')
  await Promise.all([
    m.setAlias(admin, alias, aliasRoom),
    m.invite(admin, alreadyRoom, already!.userId).then(async () => await m.join(already!, alreadyRoom)),
    m.deactivate(admin, deactivated!.userId),
    m.ban(admin, bannedRoom, banned!.userId),
    m.join(admin, powerlessRoom).then(async () => await m.setPowerLevels(owner, powerlessRoom, { invite: 50, users: { [admin.userId]: 0 } })),
    m.block(admin, blockedRoom)
  ])

  const joined = (roomId: string, userId: string) => ({ status: 200, body: { room_id: roomId, user_id: userId } })
  const refused = (status: number, code: string) => ({ status, code })
  return [
    join('public room the admin account is not in', publicRoom, publicRoom, pub!.userId, joined(publicRoom, pub!.userId), expectMembership(world, publicRoom, pub!.userId, 'join')),
    join('private room where the admin account has invite power', privateRoom, privateRoom, priv!.userId, joined(privateRoom, priv!.userId), expectMembership(world, privateRoom, priv!.userId, 'join')),
    join('alias, answered with the resolved room ID', alias, aliasRoom, viaAlias!.userId, joined(aliasRoom, viaAlias!.userId), expectMembership(world, aliasRoom, viaAlias!.userId, 'join')),
    join('user already joined to a private room', alreadyRoom, alreadyRoom, already!.userId, joined(alreadyRoom, already!.userId), expectMembership(world, alreadyRoom, already!.userId, 'join')),
    join('unknown user', privateRoom, privateRoom, unknownUser, refused(404, 'user_not_found'), expectMembership(world, privateRoom, unknownUser, undefined)),
    join('deactivated user', privateRoom, privateRoom, deactivated!.userId, refused(409, 'user_deactivated'), expectMembership(world, privateRoom, deactivated!.userId, undefined)),
    join('banned user', bannedRoom, bannedRoom, banned!.userId, refused(403, 'user_banned'), expectMembership(world, bannedRoom, banned!.userId, 'ban')),
    join('private room the admin account is not in', foreignRoom, foreignRoom, foreign!.userId, refused(403, 'admin_not_in_room'), expectMembership(world, foreignRoom, foreign!.userId, undefined)),
    join('private room where the admin account may not invite', powerlessRoom, powerlessRoom, powerless!.userId, refused(403, 'admin_cannot_invite'), expectMembership(world, powerlessRoom, powerless!.userId, undefined)),
    join('blocked room', blockedRoom, blockedRoom, blocked!.userId, refused(403, 'room_blocked'), expectMembership(world, blockedRoom, blocked!.userId, undefined)),
    join('unknown room', m.unknownRoomId(), undefined, anyone!.userId, refused(404, 'room_not_found'), async () => {
      expectEqual(`joined rooms of ${anyone!.userId}`, await m.joinedRooms(admin.token, anyone!.userId), [])
    })
  ]
}

export const REMOVE_REASON = 'ticket 4711: left the company'

export async function removeScenarios (world: World): Promise<Scenario[]> {
  const { matrix: m, admin, owner } = world
  const remove = (name: string, room: string, roomId: string | undefined, userId: string, expected: Scenario['expected'], verify: Scenario['verify'], userSegment = segment(userId)): Scenario =>
    ({ action: 'room.remove', name, method: 'DELETE', path: `/v1/rooms/${segment(room)}/members/${userSegment}`, body: { reason: REMOVE_REASON }, roomId, expected, verify })
  const user = async (name: string) => await m.register(`remove-${name}`)

  // One public room of the admin account holds the cases where the admin may kick.
  const [room, weakRoom, equalRoom, foreignRoom] = await Promise.all([
    m.createRoom(admin, { preset: 'public_chat' }),
    m.createRoom(owner, { preset: 'public_chat' }),
    m.createRoom(owner, { preset: 'public_chat' }),
    m.createRoom(owner, { preset: 'public_chat' })
  ])
  const aliasRoom = room
  const alias = m.alias('remove-alias')
  const [joinedUser, plain, never, left, invited, banned, weak, equal, foreign, viaAlias, deactivated] = await Promise.all(
    ['joined', 'plain', 'never', 'left', 'invited', 'banned', 'weak', 'equal', 'foreign', 'alias', 'deactivated'].map(user))
  const unknownUser = m.userId('remove-nobody')
  await Promise.all([
    m.join(joinedUser!, room),
    m.join(plain!, room),
    m.join(left!, room).then(async () => await m.must('POST', `/_matrix/client/v3/rooms/${segment(room)}/leave`, { token: left!.token, body: {} })),
    m.invite(admin, room, invited!.userId),
    m.join(banned!, room).then(async () => await m.ban(admin, room, banned!.userId)),
    m.join(deactivated!, room).then(async () => await m.deactivate(admin, deactivated!.userId)),
    m.setAlias(admin, alias, aliasRoom).then(async () => await m.join(viaAlias!, aliasRoom)),
    Promise.all([m.join(admin, weakRoom), m.join(weak!, weakRoom)])
      .then(async () => await m.setPowerLevels(owner, weakRoom, { kick: 50, users: { [admin.userId]: 0 } })),
    Promise.all([m.join(admin, equalRoom), m.join(equal!, equalRoom)])
      .then(async () => await m.setPowerLevels(owner, equalRoom, { kick: 50, users: { [admin.userId]: 50, [equal!.userId]: 50 } })),
    m.join(foreign!, foreignRoom)
  ])

  const removed = (roomId: string, userId: string, changed: boolean, membership = 'leave') =>
    ({ status: 200, body: { room_id: roomId, user_id: userId, membership, changed } })
  const refused = (status: number, code: string) => ({ status, code })
  const leftWithReason = (roomId: string, userId: string) => async () => {
    const content = await m.membership(admin.token, roomId, userId)
    expectEqual(`member event of ${userId} in ${roomId}`, { membership: content?.membership, reason: content?.reason }, { membership: 'leave', reason: REMOVE_REASON })
  }
  return [
    remove('joined member, with a reason that reaches the member event', room, room, joinedUser!.userId, removed(room, joinedUser!.userId, true), leftWithReason(room, joinedUser!.userId)),
    remove('joined member named with a plain (unencoded) user ID', room, room, plain!.userId, removed(room, plain!.userId, true), expectMembership(world, room, plain!.userId, 'leave'), plain!.userId),
    remove('user who was never in the room', room, room, never!.userId, removed(room, never!.userId, false), expectMembership(world, room, never!.userId, undefined)),
    remove('user who already left', room, room, left!.userId, removed(room, left!.userId, false), expectMembership(world, room, left!.userId, 'leave')),
    remove('invited user: the invite is revoked', room, room, invited!.userId, removed(room, invited!.userId, true), expectMembership(world, room, invited!.userId, 'leave')),
    remove('banned user: the ban stays', room, room, banned!.userId, removed(room, banned!.userId, false, 'ban'), expectMembership(world, room, banned!.userId, 'ban')),
    remove('deactivated user (Synapse parted them on deactivation)', room, room, deactivated!.userId, removed(room, deactivated!.userId, false), expectMembership(world, room, deactivated!.userId, 'leave')),
    remove('alias: kicked in the resolved room', alias, aliasRoom, viaAlias!.userId, removed(aliasRoom, viaAlias!.userId, true), expectMembership(world, aliasRoom, viaAlias!.userId, 'leave')),
    remove('admin account below the kick level', weakRoom, weakRoom, weak!.userId, refused(403, 'admin_cannot_kick'), expectMembership(world, weakRoom, weak!.userId, 'join')),
    remove('target with the same power level as the admin account', equalRoom, equalRoom, equal!.userId, refused(403, 'admin_cannot_kick'), expectMembership(world, equalRoom, equal!.userId, 'join')),
    remove('room the admin account is not in', foreignRoom, foreignRoom, foreign!.userId, refused(403, 'admin_not_in_room'), expectMembership(world, foreignRoom, foreign!.userId, 'join')),
    remove('unknown room', m.unknownRoomId(), undefined, joinedUser!.userId, refused(404, 'room_not_found'), async () => {}),
    remove('unknown user', room, room, unknownUser, refused(404, 'user_not_found'), expectMembership(world, room, unknownUser, undefined)),
    remove('the gateway\'s own admin account', room, room, admin.userId, refused(403, 'protected_target'), expectMembership(world, room, admin.userId, 'join'))
  ]
}

export async function promoteScenarios (world: World): Promise<Scenario[]> {
  const { matrix: m, admin } = world
  const promote = (name: string, room: string, roomId: string, userId: string, expected: Scenario['expected'], verify: Scenario['verify']): Scenario =>
    ({ action: 'room.promote', name, method: 'POST', path: `/v1/rooms/${segment(room)}/admins`, body: { user_id: userId }, roomId, expected, verify })
  const room = await m.createRoom(admin, { preset: 'private_chat' })
  const aliasRoom = room
  const alias = m.alias('promote-alias')
  const [member, viaAlias, deactivated] = await Promise.all(['member', 'alias', 'deactivated'].map(async (name) => await m.register(`promote-${name}`)))
  const unknownUser = m.userId('promote-nobody')
  await Promise.all([
    m.invite(admin, room, member!.userId).then(async () => await m.join(member!, room)),
    m.setAlias(admin, alias, aliasRoom).then(async () => await m.invite(admin, aliasRoom, viaAlias!.userId)).then(async () => await m.join(viaAlias!, aliasRoom)),
    m.deactivate(admin, deactivated!.userId)
  ])
  const levelOf = async (roomId: string, userId: string) => (await m.powerLevels(admin.token, roomId)).users?.[userId] ?? null
  const hasLevel = (roomId: string, userId: string, level: number | null) => async () => {
    expectEqual(`power level of ${userId} in ${roomId}`, await levelOf(roomId, userId), level)
  }
  // make_room_admin would grant the level and invite an unknown or deactivated user: nothing may change.
  const untouched = (roomId: string, userId: string) => async () => {
    await hasLevel(roomId, userId, null)()
    await expectMembership(world, roomId, userId, undefined)()
  }
  const promoted = (roomId: string, userId: string) => ({ status: 200, body: { room_id: roomId, user_id: userId, power_level: 100 } })
  return [
    promote('joined member', room, room, member!.userId, promoted(room, member!.userId), hasLevel(room, member!.userId, 100)),
    promote('alias, answered with the resolved room ID', alias, aliasRoom, viaAlias!.userId, promoted(aliasRoom, viaAlias!.userId), hasLevel(aliasRoom, viaAlias!.userId, 100)),
    promote('unknown user: refused before Synapse is called', room, room, unknownUser, { status: 404, code: 'user_not_found' }, untouched(room, unknownUser)),
    promote('deactivated user: refused before Synapse is called', room, room, deactivated!.userId, { status: 409, code: 'user_deactivated' }, untouched(room, deactivated!.userId))
  ]
}

/** Makes the scenario's real call and checks the answer and Synapse's state against the contract. */
export async function checkScenario (t: Test, gateway: Gateway, scenario: Scenario): Promise<Answer> {
  const answer = await gateway.call(scenario.method, scenario.path, { body: scenario.body })
  const said = `${scenario.method} ${scenario.path} ${JSON.stringify(scenario.body)} answered ${answer.status} ${JSON.stringify(answer.body)}`
  t.equal(answer.status, scenario.expected.status, `status (${said})`)
  if (scenario.expected.code !== undefined) t.equal(answer.body?.code, scenario.expected.code, `code (${said})`)
  if (scenario.expected.body !== undefined) t.same(answer.body, scenario.expected.body, 'answer body')
  await waitFor(`Synapse's state after "${scenario.name}"`, async () => { await scenario.verify(); return true }, 5000)
  t.pass('Synapse\'s state is as the contract says')
  return answer
}
