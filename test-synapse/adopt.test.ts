/**
 * room.adopt against a real Synapse (1.67: room version 9, the creator listed at 100; 1.163:
 * version 12, the creator has unlimited power and is not listed): rooms made by a user, adopted
 * by the gateway, then a join into the private room and a removal from it work. Also what
 * make_room_admin refuses (no joined local member with power), dry runs, and a batch.
 */
import t from 'tap'
import { ALLOW_ALL, segment, startGateway, type Gateway } from './helpers/gateway.js'
import { Matrix, type MatrixUser } from './helpers/matrix.js'

const adopt = (gateway: Gateway, room: string, query = '') => gateway.call('POST', `/v1/rooms/${segment(room)}/adopt${query}`, { body: { reason: 'tier: adopt' } })

t.test('room.adopt against the real Synapse', async (t) => {
  const matrix = new Matrix()
  const [admin, owner, member, joiner] = await Promise.all([
    matrix.register('adopt-admin', { admin: true }),
    matrix.register('adopt-owner'),
    matrix.register('adopt-member'),
    matrix.register('adopt-joiner')
  ])
  const gateway = await startGateway(t, matrix, admin, { policy: ALLOW_ALL })
  const privateRoom = async (by: MatrixUser, members: MatrixUser[] = []) => {
    const roomId = await matrix.createRoom(by, { preset: 'private_chat' })
    for (const user of members) {
      await matrix.invite(by, roomId, user.userId)
      await matrix.join(user, roomId)
    }
    return roomId
  }
  const membership = async (roomId: string, userId: string) => (await matrix.membership(admin.token, roomId, userId))?.membership

  t.test('a private room made by a user: adopted, then a join into it and a removal from it work', async (t) => {
    const roomId = await privateRoom(owner, [member])
    const create = await matrix.stateEvent(admin.token, roomId, 'm.room.create', '')
    t.comment(`room version ${String(create?.content?.room_version)}`)

    const refused = await gateway.call('POST', `/v1/rooms/${segment(roomId)}/members`, { body: { user_id: joiner.userId } })
    t.equal(refused.status, 403)
    t.match(refused.body, { code: 'admin_not_in_room', detail: /room\.adopt: POST \/v1\/rooms\/\{room\}\/adopt/ })

    const dry = await adopt(gateway, roomId, '?dry_run=true')
    t.match(dry.body, { dry_run: true, would_succeed: true })
    t.equal(await membership(roomId, admin.userId), undefined, 'the dry run changed nothing')

    const adopted = await adopt(gateway, roomId)
    t.equal(adopted.status, 200, JSON.stringify(adopted.body))
    t.same(adopted.body, { room_id: roomId, changed: true })
    t.match(await matrix.membership(admin.token, roomId, admin.userId), { membership: 'join', reason: 'tier: adopt' }, 'the gateway\'s account joined, with the reason')
    t.equal((await matrix.powerLevels(admin.token, roomId)).users?.[admin.userId], 100, 'with power level 100')
    t.match(gateway.audit().filter((record) => record.action === 'room.adopt' && record.event === 'result').at(-1), { outcome: 'success', upstream: { call: 'own_join', status: 200 } })

    const joined = await gateway.call('POST', `/v1/rooms/${segment(roomId)}/members`, { body: { user_id: joiner.userId } })
    t.equal(joined.status, 200, JSON.stringify(joined.body))
    t.equal(await membership(roomId, joiner.userId), 'join')
    const removed = await gateway.call('DELETE', `/v1/rooms/${segment(roomId)}/members/${segment(member.userId)}`)
    t.equal(removed.status, 200, JSON.stringify(removed.body))
    t.equal(await membership(roomId, member.userId), 'leave')

    const again = await adopt(gateway, roomId)
    t.same(again.body, { room_id: roomId, changed: false })
  })

  t.test('a public room: power level, then the join (no invite needed)', async (t) => {
    const roomId = await matrix.createRoom(owner, { preset: 'public_chat' })
    const adopted = await adopt(gateway, roomId)
    t.same(adopted.body, { room_id: roomId, changed: true })
    t.equal(await membership(roomId, admin.userId), 'join')
    t.equal((await matrix.powerLevels(admin.token, roomId)).users?.[admin.userId], 100)
  })

  t.test('no joined local member with power: 409 room_cannot_be_adopted, predicted by the dry run', async (t) => {
    const roomId = await privateRoom(owner, [member])
    await matrix.must('POST', `/_matrix/client/v3/rooms/${segment(roomId)}/leave`, { token: owner.token, body: {} })
    const dry = await adopt(gateway, roomId, '?dry_run=true')
    t.match(dry.body, { would_succeed: false, code: 'room_cannot_be_adopted' })
    const refused = await adopt(gateway, roomId)
    t.equal(refused.status, 409, JSON.stringify(refused.body))
    t.match(refused.body, { code: 'room_cannot_be_adopted', matrix_errcode: 'M_UNKNOWN', detail: /No local admin user in room/ })
    t.equal(await membership(roomId, admin.userId), undefined)
    t.equal((await matrix.powerLevels(admin.token, roomId)).users?.[admin.userId], undefined, 'no power level granted')
  })

  t.test('a batch adopts several rooms', async (t) => {
    const rooms = await Promise.all(Array.from({ length: 5 }, async () => await privateRoom(owner)))
    const answer = await gateway.call('POST', '/v1/batch', { body: { items: rooms.map((room) => ({ action: 'room.adopt', room, reason: 'tier: batch adopt' })) } })
    t.equal(answer.status, 200, JSON.stringify(answer.body))
    t.same(answer.body.results.map((item: { status: number, body: unknown }) => [item.status, item.body]), rooms.map((room) => [200, { room_id: room, changed: true }]))
    for (const room of rooms) t.equal(await membership(room, admin.userId), 'join')
  })
})
