/**
 * The read actions against a real Synapse: room.members.read (the room's joined members) and
 * user.read (a curated triage view: never password hashes, third-party or external IDs).
 */
import t from 'tap'
import { ALLOW_ALL, segment, startGateway } from './helpers/gateway.js'
import { createWorld } from './helpers/scenarios.js'

t.test('read actions against the real Synapse', async (t) => {
  const world = await createWorld()
  const { matrix: m, admin } = world
  const gateway = await startGateway(t, m, admin, { policy: ALLOW_ALL })

  const [room, otherRoom] = await Promise.all([m.createRoom(admin, { preset: 'public_chat' }), m.createRoom(admin, { preset: 'private_chat' })])
  const alias = m.alias('read-alias')
  const [ann, ben, gone] = await Promise.all([
    m.register('read-ann', { displayname: 'Ann Reader' }),
    m.register('read-ben'),
    m.register('read-gone')
  ])
  await Promise.all([m.setAlias(admin, alias, room), m.join(ann, room), m.join(ben, room), m.join(gone, room)])
  await m.invite(admin, otherRoom, ann.userId)
  await m.join(ann, otherRoom)
  await m.deactivate(admin, gone.userId)

  const CURATED_FIELDS = ['user_id', 'displayname', 'deactivated', 'admin', 'shadow_banned', 'creation_ts', 'rooms']

  t.test('room.members.read: the joined members, as Synapse has them', async (t) => {
    const expected = [admin.userId, ann.userId, ben.userId].sort()
    t.same(await m.joinedMembers(admin.token, room), expected, 'Synapse itself: the admin, ann and ben (gone left on deactivation)')
    for (const named of [room, alias]) {
      const answer = await gateway.call('GET', `/v1/rooms/${segment(named)}/members`)
      t.equal(answer.status, 200, `GET members of ${named}: ${JSON.stringify(answer.body)}`)
      t.equal(answer.body?.room_id, room, 'the resolved room ID')
      t.same([...(answer.body?.members ?? [])].sort(), expected, 'the joined members')
      t.equal(answer.body?.total, expected.length, 'total')
    }
  })

  t.test('room.members.read: an unknown room is room_not_found', async (t) => {
    const answer = await gateway.call('GET', `/v1/rooms/${segment(m.unknownRoomId())}/members`)
    t.equal(answer.status, 404, JSON.stringify(answer.body))
    t.equal(answer.body?.code, 'room_not_found')
  })

  t.test('user.read: a curated view of the user, with their rooms', async (t) => {
    const answer = await gateway.call('GET', `/v1/users/${segment(ann.userId)}`)
    t.equal(answer.status, 200, JSON.stringify(answer.body))
    t.match(answer.body, { user_id: ann.userId, displayname: 'Ann Reader', deactivated: false, admin: false, shadow_banned: false, creation_ts: Number })
    t.same([...(answer.body?.rooms ?? [])].sort(), [room, otherRoom].sort(), 'the rooms Synapse says ann is joined to')
    t.same(Object.keys(answer.body ?? {}).filter((key) => !CURATED_FIELDS.includes(key)), [], 'no field beyond the curated ones')
    const text = JSON.stringify(answer.body)
    for (const secret of ['password_hash', 'threepids', 'external_ids', 'access_token', 'devices']) {
      t.notOk(text.includes(secret), `no ${secret} anywhere in the answer`)
    }
  })

  t.test('user.read: the plain user ID works as a path segment too, and admin accounts say so', async (t) => {
    const answer = await gateway.call('GET', `/v1/users/${admin.userId}`)
    t.equal(answer.status, 200, JSON.stringify(answer.body))
    t.match(answer.body, { user_id: admin.userId, admin: true, deactivated: false })
  })

  t.test('user.read: a deactivated user is shown as deactivated, in no rooms', async (t) => {
    const answer = await gateway.call('GET', `/v1/users/${segment(gone.userId)}`)
    t.equal(answer.status, 200, JSON.stringify(answer.body))
    t.match(answer.body, { user_id: gone.userId, deactivated: true })
    t.same(answer.body?.rooms, [])
  })

  t.test('user.read: an unknown user is user_not_found (Synapse\'s joined_rooms would answer an empty list)', async (t) => {
    const answer = await gateway.call('GET', `/v1/users/${segment(m.userId('read-nobody'))}`)
    t.equal(answer.status, 404, JSON.stringify(answer.body))
    t.equal(answer.body?.code, 'user_not_found')
  })
})
