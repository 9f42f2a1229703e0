/**
 * A POLICY_FILE against a real Synapse: a `space:` rule allows actions in the space's child
 * rooms only (m.space.child state read from Synapse), a deny rule on `@admin*` users wins, and
 * GET /v1/me lists what a caller may do. Without a policy, /v1/me shows version 1's one rule.
 */
import t from 'tap'
import { segment, startGateway } from './helpers/gateway.js'
import { createWorld } from './helpers/scenarios.js'

t.test('a POLICY_FILE against the real Synapse', async (t) => {
  const world = await createWorld()
  const { matrix: m, admin } = world
  const server = m.serverName

  const spaceAlias = m.alias('policy-space')
  const [space, child, outside] = await Promise.all([
    m.createRoom(admin, { preset: 'public_chat', type: 'm.space', aliasName: 'policy-space' }),
    m.createRoom(admin, { preset: 'public_chat' }),
    m.createRoom(admin, { preset: 'public_chat' })
  ])
  await m.addSpaceChild(admin, space, child)
  const [inside, stranger, adminLike] = await Promise.all([m.register('policy-inside'), m.register('policy-stranger'), m.register('adminish')])

  const policy = [
    { name: 'no-admin-targets', effect: 'deny' as const, actions: ['*'], users: [`@admin*:${server}`] },
    { name: 'helpdesk-in-support-space', roles: ['helpdesk'], actions: ['room.join', 'room.members.read'], rooms: [`space:${spaceAlias}`] },
    { name: 'helpdesk-reads-users', roles: ['helpdesk'], actions: ['user.read'] }
  ]
  const gateway = await startGateway(t, m, admin, { policy })
  const helpdesk = gateway.token({ sub: 'agent-7', roles: ['helpdesk'] })
  const join = async (roomId: string, userId: string, token = helpdesk) =>
    await gateway.call('POST', `/v1/rooms/${segment(roomId)}/members`, { body: { user_id: userId }, token })
  const membership = async (roomId: string, userId: string) => (await m.membership(admin.token, roomId, userId))?.membership

  t.test('space rule: a join into a child room of the space is allowed', async (t) => {
    const answer = await join(child, inside.userId)
    t.equal(answer.status, 200, JSON.stringify(answer.body))
    t.same(answer.body, { room_id: child, user_id: inside.userId })
    t.equal(await membership(child, inside.userId), 'join', 'Synapse has the user joined')
  })

  t.test('space rule: a room outside the space is policy_denied, and never reaches Synapse', async (t) => {
    const answer = await join(outside, stranger.userId)
    t.equal(answer.status, 403, JSON.stringify(answer.body))
    t.equal(answer.body?.code, 'policy_denied')
    t.equal(await membership(outside, stranger.userId), undefined, 'Synapse has no membership for the user')
  })

  t.test('space rule: reading the members of a child room is allowed, of the space itself is not', async (t) => {
    const allowed = await gateway.call('GET', `/v1/rooms/${segment(child)}/members`, { token: helpdesk })
    t.equal(allowed.status, 200, JSON.stringify(allowed.body))
    const denied = await gateway.call('GET', `/v1/rooms/${segment(space)}/members`, { token: helpdesk })
    t.equal(denied.status, 403, JSON.stringify(denied.body))
    t.equal(denied.body?.code, 'policy_denied')
  })

  t.test('deny rule: an @admin* target is policy_denied even inside the space', async (t) => {
    const answer = await join(child, adminLike.userId)
    t.equal(answer.status, 403, JSON.stringify(answer.body))
    t.equal(answer.body?.code, 'policy_denied')
    t.equal(await membership(child, adminLike.userId), undefined, 'Synapse has no membership for the user')
    const read = await gateway.call('GET', `/v1/users/${segment(adminLike.userId)}`, { token: helpdesk })
    t.equal(read.body?.code, 'policy_denied', 'the deny rule covers every action')
    const ordinary = await gateway.call('GET', `/v1/users/${segment(stranger.userId)}`, { token: helpdesk })
    t.equal(ordinary.status, 200, `user.read of an ordinary user is allowed: ${JSON.stringify(ordinary.body)}`)
  })

  t.test('a caller no rule allows (matrix-admin only) is policy_denied, not insufficient_role', async (t) => {
    const answer = await join(child, stranger.userId, gateway.token({ roles: ['matrix-admin'] }))
    t.equal(answer.status, 403, JSON.stringify(answer.body))
    t.equal(answer.body?.code, 'policy_denied')
  })

  t.test('GET /v1/me lists the actions the policy allows the caller', async (t) => {
    const answer = await gateway.call('GET', '/v1/me', { token: helpdesk })
    t.equal(answer.status, 200, JSON.stringify(answer.body))
    t.match(answer.body, { sub: 'agent-7', org: 'example', roles: ['helpdesk'] })
    t.same([...(answer.body?.actions ?? [])].sort(), ['room.join', 'room.members.read', 'user.read'])
    const nobody = await gateway.call('GET', '/v1/me', { token: gateway.token({ roles: ['visitor'] }) })
    t.equal(nobody.status, 200, JSON.stringify(nobody.body))
    t.same(nobody.body?.actions, [], 'no rule allows a visitor anything')
  })

  t.test('GET /v1/me without POLICY_FILE: version 1\'s rule, room.join for JOIN_ROLES', async (t) => {
    const plain = await startGateway(t, m, admin)
    const answer = await plain.call('GET', '/v1/me')
    t.equal(answer.status, 200, JSON.stringify(answer.body))
    t.match(answer.body, { sub: 'helpdesk-bot', org: 'example', roles: ['matrix-admin'] })
    t.same(answer.body?.actions, ['room.join'])
    const unauthenticated = await plain.call('GET', '/v1/me', { token: 'not-a-jwt' })
    t.equal(unauthenticated.status, 401, JSON.stringify(unauthenticated.body))
    t.equal(unauthenticated.body?.code, 'invalid_token')
  })
})
