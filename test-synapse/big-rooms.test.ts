/**
 * Rooms of any size against the real Synapse (issue 18): a room of 1,000 members and one with
 * 60 KB state events. Members read page by page, every acting action's dry run, and joins
 * decided by alias patterns and `when` on both.
 */
import t from 'tap'
import { startGateway, segment, type PolicyRule } from './helpers/gateway.js'
import { createWorld } from './helpers/scenarios.js'
import { createBigStateRoom, createMembersRoom, newcomer } from './helpers/big-rooms.js'

const MEMBERS = 1000

t.test('big rooms in the real Synapse', async (t) => {
  const world = await createWorld()
  const [big, bigState] = await Promise.all([createMembersRoom(world, MEMBERS), createBigStateRoom(world, 6, 3)])
  const server = world.matrix.serverName
  const policy: PolicyRule[] = [
    { name: 'tier-matrix-admin-all', roles: ['matrix-admin'], actions: ['*'] },
    { name: 'big-rooms-for-it', roles: ['alias-agent'], actions: ['room.join', 'room.members.read'], rooms: [`#big*-${world.matrix.runId}:${server}`], when: 'caller.claims.department == "it"' }
  ]
  const gateway = await startGateway(t, world.matrix, world.admin, { policy })

  t.test('members read, page by page', async (t) => {
    const seen = new Set<string>()
    let path = `/v1/rooms/${segment(big.roomId)}/members?limit=400`
    let pages = 0
    for (;;) {
      const page = await gateway.call('GET', path)
      t.equal(page.status, 200, `page ${pages + 1}: ${JSON.stringify(page.body).slice(0, 200)}`)
      t.equal(page.body.total, MEMBERS + 1)
      for (const member of page.body.members as string[]) seen.add(member)
      pages++
      if (page.body.next === undefined) break
      path = `/v1/rooms/${segment(big.roomId)}/members?limit=400&from=${encodeURIComponent(page.body.next as string)}`
    }
    t.equal(pages, 3)
    t.equal(seen.size, MEMBERS + 1, 'every member once')
    const state = await gateway.call('GET', `/v1/rooms/${segment(bigState.roomId)}/members`)
    t.match(state, { status: 200, body: { total: 4 } }, 'the big-state room')
  })

  for (const room of [big, bigState]) {
    t.test(`every acting action's dry run on ${room.alias}`, async (t) => {
      const fresh = await newcomer(world.matrix, `dry-${room.alias.slice(1, 5)}`)
      const join = await gateway.call('POST', `/v1/rooms/${segment(room.roomId)}/members?dry_run=true`, { body: { user_id: fresh.userId } })
      t.match(join, { status: 200, body: { dry_run: true, would_succeed: true } }, JSON.stringify(join.body))
      const remove = await gateway.call('DELETE', `/v1/rooms/${segment(room.roomId)}/members/${segment(room.members[0] as string)}?dry_run=true`)
      t.match(remove, { status: 200, body: { dry_run: true, would_succeed: true } }, JSON.stringify(remove.body))
      const promote = await gateway.call('POST', `/v1/rooms/${segment(room.roomId)}/admins?dry_run=true`, { body: { user_id: room.members[1] } })
      t.match(promote, { status: 200, body: { dry_run: true, would_succeed: true } }, JSON.stringify(promote.body))
    })

    t.test(`a join into ${room.alias} decided by an alias pattern and when`, async (t) => {
      const user = await newcomer(world.matrix, `join-${room.alias.slice(1, 5)}`)
      const denied = await gateway.call('POST', `/v1/rooms/${segment(room.roomId)}/members`, { body: { user_id: user.userId }, token: gateway.token({ roles: ['alias-agent'], department: 'sales' }) })
      t.match(denied, { status: 403, body: { code: 'policy_denied' } })
      const joined = await gateway.call('POST', `/v1/rooms/${segment(room.roomId)}/members`, { body: { user_id: user.userId }, token: gateway.token({ roles: ['alias-agent'], department: 'it' }) })
      t.match(joined, { status: 200, body: { room_id: room.roomId } }, 'by room ID: the canonical alias matches')
      t.ok((await world.matrix.joinedMembers(world.admin.token, room.roomId)).includes(user.userId), 'Synapse has them joined')
    })
  }
})
