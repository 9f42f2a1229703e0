/**
 * What the simulated homeserver does beyond the recordings: spaces and alt_aliases (Matrix
 * specification), faults and call logs on every endpoint, state changed directly by tests,
 * token expiry, room-list paging, and the method and path answers of its router.
 */
import t from 'tap'
import { SimulatedHomeserver, type Endpoint } from '../../dev/homeserver/server.js'
import { ACTION_ROOMS, ACTION_USERS, RECORDED_ROOMS, SPEC_ROOMS } from '../../dev/homeserver/state.js'

const ADMIN = 'syt_admin_for_simulator_tests'

async function startActions (t: { teardown: (fn: () => unknown) => void }, fixture: 'join' | 'actions' = 'actions') {
  const homeserver = new SimulatedHomeserver({ adminToken: ADMIN, fixture, userTokens: { 'alice-token': '@alice:test.local', 'jan-token': '@jan:test.local' } })
  const url = await homeserver.listen()
  t.teardown(async () => { await homeserver.close() })
  const call = async (method: string, path: string, body?: unknown, token: string | null = ADMIN) => {
    const response = await fetch(`${url}${path}`, {
      method,
      headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body)
    })
    const text = await response.text()
    return { status: response.status, body: text === '' ? undefined : JSON.parse(text) as any }
  }
  return { homeserver, call }
}

const enc = encodeURIComponent

t.test('the space is a room of type m.space with m.space.child events for three seeded rooms (spec)', async (t) => {
  for (const [fixture, children] of [
    ['actions', [ACTION_ROOMS.kickPublic, ACTION_ROOMS.privateAdmin, ACTION_ROOMS.blocked]],
    ['join', [RECORDED_ROOMS.publicTest, RECORDED_ROOMS.privateAdmin, RECORDED_ROOMS.blocked]]
  ] as const) {
    const { call } = await startActions(t, fixture)
    t.same((await call('GET', '/_matrix/client/v3/directory/room/%23support%3Atest.local')).body.room_id, SPEC_ROOMS.supportSpace)
    const details = await call('GET', `/_synapse/admin/v1/rooms/${enc(SPEC_ROOMS.supportSpace)}`)
    t.match(details.body, { room_type: 'm.space', canonical_alias: '#support:test.local', join_rules: 'invite', joined_members: 1 })
    const state = (await call('GET', `/_synapse/admin/v1/rooms/${enc(SPEC_ROOMS.supportSpace)}/state`)).body.state as any[]
    t.same(state.filter((event) => event.type === 'm.space.child').map((event) => [event.state_key, event.content]),
      [...children].sort().map((child) => [child, { via: ['test.local'] }]), `${fixture}: children`)
    t.match(state.find((event) => event.type === 'm.room.create').content, { type: 'm.space' })
    t.equal(details.body.state_events, state.length)
    const listed = await call('GET', '/_synapse/admin/v1/rooms?search_term=SUPPORT')
    t.match(listed.body, { total_rooms: 1, rooms: [{ room_id: SPEC_ROOMS.supportSpace, room_type: 'm.space' }] })
  }
})

t.test('a room with a canonical alias and alt_aliases: every alias resolves, the state shows them (spec)', async (t) => {
  const { call } = await startActions(t)
  for (const alias of ['#helpdesk:test.local', '#helpdesk-old:test.local', '#servicedesk:test.local']) {
    t.equal((await call('GET', `/_matrix/client/v3/directory/room/${enc(alias)}`)).body.room_id, SPEC_ROOMS.helpdesk, alias)
  }
  const state = (await call('GET', `/_synapse/admin/v1/rooms/${enc(SPEC_ROOMS.helpdesk)}/state`)).body.state as any[]
  t.same(state.find((event) => event.type === 'm.room.canonical_alias').content, { alias: '#helpdesk:test.local', alt_aliases: ['#helpdesk-old:test.local', '#servicedesk:test.local'] })
  t.same(await call('POST', `/_synapse/admin/v1/rooms/${enc('#servicedesk:test.local')}/make_room_admin`, { user_id: '@ana:test.local' }), { status: 200, body: {} })
  const after = (await call('GET', `/_synapse/admin/v1/rooms/${enc(SPEC_ROOMS.helpdesk)}/state`)).body.state as any[]
  t.match(after.find((event) => event.type === 'm.room.power_levels').content.users, { '@ana:test.local': 100 })
  t.match(after.find((event) => event.state_key === '@ana:test.local'), { content: { membership: 'invite' }, sender: '@admin:test.local' }, 'invited to the invite-only room')
})

t.test('every endpoint has a name for faults and the call log', async (t) => {
  const { homeserver, call } = await startActions(t)
  const room = enc(ACTION_ROOMS.kickPublic)
  const user = enc('@alice:test.local')
  const cases: Array<[Endpoint, string, string]> = [
    ['kick', 'POST', `/_matrix/client/v3/rooms/${room}/kick`],
    ['leave', 'POST', `/_matrix/client/r0/rooms/${room}/leave`],
    ['logout', 'POST', '/_matrix/client/v3/logout'],
    ['login_as', 'POST', `/_synapse/admin/v1/users/${user}/login`],
    ['devices', 'GET', `/_synapse/admin/v2/users/${user}/devices`],
    ['joined_rooms', 'GET', `/_synapse/admin/v1/users/${user}/joined_rooms`],
    ['whois', 'GET', `/_synapse/admin/v1/whois/${user}`],
    ['room_details', 'GET', `/_synapse/admin/v1/rooms/${room}`],
    ['room_members', 'GET', `/_synapse/admin/v1/rooms/${room}/members`],
    ['room_state', 'GET', `/_synapse/admin/v1/rooms/${room}/state`],
    ['room_list', 'GET', '/_synapse/admin/v1/rooms'],
    ['make_room_admin', 'POST', `/_synapse/admin/v1/rooms/${room}/make_room_admin`],
    ['register', 'GET', '/_synapse/admin/v1/register'],
    ['login', 'POST', '/_matrix/client/v3/login']
  ]
  for (const [endpoint, method, path] of cases) {
    homeserver.fault = { kind: 'answer', on: endpoint, status: 418, body: { errcode: 'M_TEAPOT', error: endpoint } }
    t.same(await call(method, path, method === 'POST' ? {} : undefined), { status: 418, body: { errcode: 'M_TEAPOT', error: endpoint } }, `${endpoint}: the fault applies`)
    t.equal(homeserver.callsTo(endpoint).length, 1, `${endpoint}: logged once`)
    t.equal(homeserver.callsTo(endpoint)[0]?.url, path)
  }
  homeserver.fault = { kind: 'error-500', on: 'kick' }
  t.equal((await call('GET', `/_synapse/admin/v1/rooms/${room}/members`)).status, 200, 'other endpoints answer normally')
})

t.test('tests can change the state directly: block a room, deactivate a user, set a power level', async (t) => {
  const { homeserver, call } = await startActions(t)
  const room = homeserver.state.rooms.get(ACTION_ROOMS.kickPublic)
  t.ok(room)
  if (room === undefined) return
  room.blocked = true
  t.match(await call('POST', `/_synapse/admin/v1/join/${enc(room.id)}`, { user_id: ACTION_USERS.neverJoined }), { status: 403, body: { error: 'This room has been blocked on this server' } })

  const halRoom = `/_matrix/client/v3/rooms/${enc(ACTION_ROOMS.halPowers)}/kick`
  t.match(await call('POST', halRoom, { user_id: '@ivo:test.local' }, 'jan-token'), { status: 403, body: { error: 'You cannot kick user @ivo:test.local.' } })
  homeserver.state.rooms.get(ACTION_ROOMS.halPowers)?.powerLevels.set('@jan:test.local', 75)
  t.same(await call('POST', halRoom, { user_id: '@ivo:test.local', reason: 'power granted by the test' }, 'jan-token'), { status: 200, body: {} })

  homeserver.state.users.get('@jan:test.local')!.deactivated = true
  t.match(await call('GET', '/_matrix/client/v3/account/whoami', undefined, 'jan-token'), { status: 401, body: { errcode: 'M_UNKNOWN_TOKEN' } }, 'a deactivated user\'s own token stops working')
  t.match((await call('GET', `/_synapse/admin/v2/users/${enc('@jan:test.local')}`)).body, { deactivated: 1 })

  // A membership set without an event is shown with the obvious sender.
  room.members.set('@eli:test.local', 'invite')
  const state = (await call('GET', `/_synapse/admin/v1/rooms/${enc(room.id)}/state`)).body.state as any[]
  t.match(state.find((event) => event.state_key === '@eli:test.local'), { sender: '@admin:test.local', content: { membership: 'invite' } })
})

t.test('login-as tokens: expiry, logout, and the puppet has no device', async (t) => {
  const { call } = await startActions(t)
  const expired = await call('POST', `/_synapse/admin/v1/users/${enc(ACTION_USERS.sue)}/login`, { valid_until_ms: Date.now() - 1 })
  t.equal(expired.status, 200)
  t.same(await call('GET', '/_matrix/client/v3/account/whoami', undefined, expired.body.access_token),
    { status: 401, body: { errcode: 'M_UNKNOWN_TOKEN', error: 'Access token has expired', soft_logout: true } })
  t.match(await call('POST', `/_synapse/admin/v1/users/${enc(ACTION_USERS.sue)}/login`, 'not json'), { status: 400, body: { errcode: 'M_NOT_JSON' } })

  const puppet = (await call('POST', `/_synapse/admin/v1/users/${enc(ACTION_USERS.sue)}/login`, {})).body.access_token as string
  t.same((await call('GET', '/_matrix/client/v3/account/whoami', undefined, puppet)).body, { user_id: ACTION_USERS.sue, is_guest: false })
  t.same(await call('POST', `/_matrix/client/v3/rooms/${enc(ACTION_ROOMS.aliceNoAdmin)}/leave`, { reason: 'moving on' }, puppet), { status: 200, body: {} })
  t.match(await call('POST', `/_matrix/client/v3/rooms/${enc(ACTION_ROOMS.aliceNoAdmin)}/leave`, { reason: 'again, otherwise' }, puppet),
    { status: 403, body: { error: `${ACTION_USERS.sue} not in room ${ACTION_ROOMS.aliceNoAdmin}.` } }, 'a different leave is not deduplicated')
  const state = (await call('GET', `/_synapse/admin/v1/rooms/${enc(ACTION_ROOMS.aliceNoAdmin)}/state`)).body.state as any[]
  t.match(state.find((event) => event.state_key === ACTION_USERS.sue), { sender: ACTION_USERS.sue, content: { membership: 'leave', reason: 'moving on' } })
  t.same(await call('POST', '/_matrix/client/v3/logout', {}, puppet), { status: 200, body: {} })
  t.equal((await call('POST', '/_matrix/client/v3/logout', {}, puppet)).status, 401)
})

t.test('room list: paging, order, direction, bad parameters', async (t) => {
  const { call } = await startActions(t)
  const all = (await call('GET', '/_synapse/admin/v1/rooms')).body
  t.equal(all.total_rooms, 11)
  t.notOk('next_batch' in all)
  const page = (await call('GET', '/_synapse/admin/v1/rooms?from=2&limit=3')).body
  t.match(page, { offset: 2, total_rooms: 11, next_batch: 5, prev_batch: 0 })
  t.same(page.rooms.map((room: any) => room.name), all.rooms.slice(2, 5).map((room: any) => room.name))
  const names = all.rooms.map((room: any) => room.name)
  t.same(names, [...names].sort(), 'by name')
  const reversed = (await call('GET', '/_synapse/admin/v1/rooms?dir=b')).body.rooms.map((room: any) => room.name)
  t.same(reversed, [...names].reverse())
  const byMembers = (await call('GET', '/_synapse/admin/v1/rooms?order_by=joined_members&limit=1')).body.rooms
  t.match(byMembers, [{ room_id: ACTION_ROOMS.kickPublic }], 'the biggest room first')
  t.match(await call('GET', '/_synapse/admin/v1/rooms?order_by=size'), { status: 400, body: { errcode: 'M_INVALID_PARAM' } })
  t.match(await call('GET', '/_synapse/admin/v1/rooms?limit=-1'), { status: 400, body: { errcode: 'M_INVALID_PARAM' } })
})

t.test('devices and user answers for remote, unknown and malformed users', async (t) => {
  const { call } = await startActions(t)
  t.match(await call('GET', `/_synapse/admin/v2/users/${enc('@x:other.example')}/devices`), { status: 400, body: { error: 'Can only lookup local users' } })
  t.match(await call('GET', `/_synapse/admin/v2/users/${enc('@ghost:test.local')}/devices`), { status: 404, body: { errcode: 'M_NOT_FOUND' } })
  t.match(await call('GET', '/_synapse/admin/v2/users/%40alice/devices'), { status: 400, body: { error: 'Expected UserID of the form \'@localname:domain\'' } })
  t.match(await call('GET', '/_synapse/admin/v1/whois/alice', undefined, null), { status: 400, body: { errcode: 'M_INVALID_PARAM' } }, 'whois parses the user before the token')
})

t.test('make_room_admin refuses to lower a user with more power than the granting member', async (t) => {
  const { homeserver, call } = await startActions(t)
  const room = homeserver.state.rooms.get(ACTION_ROOMS.noAdminJoined)!
  room.powerLevels.set('@dan:test.local', 50)
  room.powerLevelsChangeLevel = 50
  t.match(await call('POST', `/_synapse/admin/v1/rooms/${enc(room.id)}/make_room_admin`, { user_id: '@cara:test.local' }),
    { status: 400, body: { error: 'No local admin user in room with power to update power levels.' } })
  t.match(await call('POST', `/_synapse/admin/v1/rooms/${enc(room.id)}/make_room_admin`, { user_id: null }), { status: 500 })
  t.same(await call('POST', `/_synapse/admin/v1/rooms/${enc(room.id)}/make_room_admin`, { user_id: '@eli:test.local' }), { status: 200, body: {} })
  t.equal(room.members.get('@eli:test.local'), 'invite')
  t.equal(room.memberEvents.get('@eli:test.local')?.sender, '@dan:test.local', 'sent by the member who had the power')
})

t.test('the router: HEAD, OPTIONS, wrong methods and unknown paths', async (t) => {
  const { call } = await startActions(t)
  t.same(await call('HEAD', `/_synapse/admin/v1/rooms/${enc(ACTION_ROOMS.blocked)}`), { status: 200, body: undefined })
  t.same(await call('OPTIONS', `/_matrix/client/v3/rooms/${enc(ACTION_ROOMS.blocked)}/kick`), { status: 204, body: undefined })
  t.match(await call('DELETE', '/_synapse/admin/v1/rooms'), { status: 400, body: { errcode: 'M_UNRECOGNIZED' } })
  t.match(await call('GET', '/_matrix/client/v3/rooms/x/forget'), { status: 404, body: { errcode: 'M_UNRECOGNIZED' } })
  t.match(await call('GET', '/_synapse/admin/v1/nothing'), { status: 400, body: { errcode: 'M_UNRECOGNIZED' } })
  t.same(await call('POST', '/_synapse/admin/v1/server_version', {}), { status: 200, body: { server_version: '1.163.2' } }, 'the newest recorded Synapse by default')
})
