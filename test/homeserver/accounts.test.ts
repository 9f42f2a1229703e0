/**
 * What the account-action tests need from the simulated homeserver beyond the recorded cases
 * (test/homeserver/accounts-contract.test.ts replays those): users made with `createUser`, their
 * sessions, per-endpoint names for faults and `calls`, a deactivation that never answers, and
 * the room effects of a deactivation.
 */
import t, { type Test } from 'tap'
import { request } from 'undici'
import { SimulatedHomeserver } from '../../dev/homeserver/server.js'
import { ACTION_ROOMS } from '../../dev/homeserver/state.js'
import type { SynapseVersion } from '../../dev/homeserver/versions.js'

const enc = encodeURIComponent

async function start (t: Test, synapseVersion: SynapseVersion = '1.163.2') {
  const homeserver = new SimulatedHomeserver({ fixture: 'actions', synapseVersion })
  const url = await homeserver.listen()
  t.teardown(async () => { await homeserver.close() })
  const call = async (method: 'GET' | 'POST' | 'PUT', path: string, token: string, body?: unknown, headersTimeout?: number) => {
    const response = await request(`${url}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body), headersTimeout })
    return { status: response.statusCode, body: await response.body.json() as any }
  }
  return { homeserver, call }
}

t.test('createUser: a user with a password and a session, and login opens another device', async (t) => {
  const { homeserver, call } = await start(t)
  const jill = homeserver.createUser({ localpart: 'jill', password: 'jill password', displayname: 'Jill Example', deviceId: 'JILLPHONE' })
  t.same((await call('GET', '/_matrix/client/v3/account/whoami', jill.accessToken)).body, { user_id: '@jill:test.local', is_guest: false, device_id: 'JILLPHONE' })
  const login = await call('POST', '/_matrix/client/v3/login', '', { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'jill' }, password: 'jill password' })
  t.equal(login.status, 200, 'a localpart logs in too')
  const devices = await call('GET', `/_synapse/admin/v2/users/${enc(jill.userId)}/devices`, homeserver.adminToken)
  t.same(devices.body.devices.map((device: { device_id: string }) => device.device_id), ['JILLPHONE', login.body.device_id], 'two devices')
  t.equal((await call('GET', `/_synapse/admin/v2/users/${enc(jill.userId)}`, homeserver.adminToken)).body.displayname, 'Jill Example')
})

t.test('a lock is enforced on every request with the user\'s token on 1.163 only', async (t) => {
  for (const version of ['1.163.2', '1.67.0'] as const) {
    const { homeserver, call } = await start(t, version)
    const user = homeserver.createUser({ localpart: 'locky', password: 'pw' })
    homeserver.state.rooms.get(ACTION_ROOMS.kickPublic)?.members.set(user.userId, 'join')
    await call('PUT', `/_synapse/admin/v2/users/${enc(user.userId)}`, homeserver.adminToken, { locked: true })
    const sent = await call('PUT', `/_matrix/client/v3/rooms/${enc(ACTION_ROOMS.kickPublic)}/send/m.room.message/t1`, user.accessToken, { msgtype: 'm.text', body: 'hi' })
    t.equal(sent.status, version === '1.163.2' ? 401 : 200, `${version}: sending as a locked user`)
    if (version === '1.163.2') t.equal(sent.body.errcode, 'M_USER_LOCKED')
  }
})

t.test('faults and calls name each account endpoint; PUT on the user is not the lookup', async (t) => {
  const { homeserver, call } = await start(t)
  const user = homeserver.createUser({ localpart: 'faulty', password: 'pw' })
  homeserver.fault = { kind: 'error-500', on: 'user_update' }
  t.equal((await call('GET', `/_synapse/admin/v2/users/${enc(user.userId)}`, homeserver.adminToken)).status, 200, 'the lookup is untouched')
  t.equal((await call('PUT', `/_synapse/admin/v2/users/${enc(user.userId)}`, homeserver.adminToken, { locked: true })).status, 500, 'the update fails')
  homeserver.fault = { kind: 'hang', on: 'deactivate' }
  await t.rejects(call('POST', `/_synapse/admin/v1/deactivate/${enc(user.userId)}`, homeserver.adminToken, {}, 200), 'a hanging deactivation never answers')
  t.equal(homeserver.state.users.get(user.userId)?.deactivated, false, 'and changes nothing')
  homeserver.fault = undefined
  t.same(homeserver.calls.map((received) => received.endpoint), ['user_lookup', 'user_update', 'deactivate'])
})

t.test('deactivation parts the user from every room and ends the sessions', async (t) => {
  const { homeserver, call } = await start(t)
  const alice = '@alice:test.local'
  const own = homeserver.createUser({ localpart: 'leaver', password: 'pw' })
  homeserver.state.rooms.get(ACTION_ROOMS.kickPublic)?.members.set(own.userId, 'join')
  await call('POST', `/_synapse/admin/v1/deactivate/${enc(own.userId)}`, homeserver.adminToken, { erase: true })
  t.same((await call('GET', `/_synapse/admin/v1/users/${enc(own.userId)}/joined_rooms`, homeserver.adminToken)).body, { joined_rooms: [], total: 0 })
  t.equal((await call('GET', '/_matrix/client/v3/account/whoami', own.accessToken)).body.errcode, 'M_UNKNOWN_TOKEN')
  t.equal(homeserver.state.rooms.get(ACTION_ROOMS.kickPublic)?.members.get(alice), 'join', 'other members stay')
})

/** Answers probed on the real Synapse 1.163.2 and 1.67.0 on 2026-12-05 (not in the recordings). */
t.test('answers outside the recordings, as probed on both versions', async (t) => {
  for (const version of ['1.163.2', '1.67.0'] as const) {
    const modern = version === '1.163.2'
    const { homeserver, call } = await start(t, version)
    const admin = homeserver.adminToken
    const user = homeserver.createUser({ localpart: 'probe', password: 'right password' })
    const unknown = enc('@nosuchprobe:test.local')
    const remote = enc('@x:other.example')
    const expect = async (what: string, answer: Promise<{ status: number, body: any }>, status: number, body: unknown) => {
      t.same(await answer, { status, body }, `${version}: ${what}`)
    }
    const suspendUnrecognized = { errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' }
    await expect('suspend without the field', call('PUT', `/_synapse/admin/v1/suspend/${enc(user.userId)}`, admin, {}), 400, modern
      ? { errcode: 'M_MISSING_PARAM', error: '1 validation error for PutBody\nsuspend\n  Field required [type=missing, input_value={}, input_type=dict]\n    For further information visit https://errors.pydantic.dev/2.14/v/missing' }
      : suspendUnrecognized)
    await expect('suspend a remote user with a non-boolean', call('PUT', `/_synapse/admin/v1/suspend/${remote}`, admin, { suspend: 'yes' }), 400, modern ? { errcode: 'M_UNKNOWN', error: 'Can only suspend local users' } : suspendUnrecognized)
    await expect('suspend an unknown user with a non-boolean', call('PUT', `/_synapse/admin/v1/suspend/${unknown}`, admin, { suspend: 'yes' }), modern ? 404 : 400, modern ? { errcode: 'M_NOT_FOUND', error: 'User not found' } : suspendUnrecognized)
    await expect('delete_devices without devices', call('POST', `/_synapse/admin/v2/users/${enc(user.userId)}/delete_devices`, admin, {}), 400, { errcode: 'M_MISSING_PARAM', error: 'Missing params: [\'devices\']' })
    await expect('delete_devices of an unknown user without devices', call('POST', `/_synapse/admin/v2/users/${unknown}/delete_devices`, admin, {}), 404, { errcode: 'M_NOT_FOUND', error: 'Unknown user' })
    await expect('delete_devices of a remote user', call('POST', `/_synapse/admin/v2/users/${remote}/delete_devices`, admin, { devices: [] }), 400, { errcode: 'M_UNKNOWN', error: 'Can only lookup local users' })
    await expect('deactivate a remote user with a non-boolean erase', call('POST', `/_synapse/admin/v1/deactivate/${remote}`, admin, { erase: 'yes' }), 400, { errcode: 'M_UNKNOWN', error: 'Can only deactivate local users' })
    await expect('deactivate an unknown user with a non-boolean erase', call('POST', `/_synapse/admin/v1/deactivate/${unknown}`, admin, { erase: 'yes' }), 404, { errcode: 'M_NOT_FOUND', error: 'User not found' })
    await expect('reset a remote user without new_password', call('POST', `/_synapse/admin/v1/reset_password/${remote}`, admin, {}), 400, { errcode: 'M_MISSING_PARAM', error: 'Missing params: [\'new_password\']' })
    await expect('reset to a number', call('POST', `/_synapse/admin/v1/reset_password/${enc(user.userId)}`, admin, { new_password: 12345, logout_devices: false }), 500, { errcode: 'M_UNKNOWN', error: 'Internal server error' })
    const created = await call('PUT', `/_synapse/admin/v2/users/${enc('@nosuchprobe2:test.local')}`, admin, { locked: 'yes' })
    t.same(modern ? created : { status: created.status, name: created.body.name }, modern
      ? { status: 400, body: { errcode: 'M_UNKNOWN', error: '\'locked\' parameter is not of type boolean' } }
      : { status: 201, name: '@nosuchprobe2:test.local' }, `${version}: lock an unknown user with a non-boolean (1.67 creates the user)`)
    const room = ACTION_ROOMS.kickPublic
    await expect('a non-member sends', call('PUT', `/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/t1`, user.accessToken, { msgtype: 'm.text', body: 'x' }), 403,
      { errcode: 'M_FORBIDDEN', error: `User ${user.userId} not in room ${room}${modern ? '' : ' (None)'}` })
    await expect('a message to an unknown room', call('PUT', `/_matrix/client/v3/rooms/${enc('!nosuch:test.local')}/send/m.room.message/t2`, user.accessToken, { msgtype: 'm.text', body: 'x' }), 403,
      { errcode: 'M_FORBIDDEN', error: modern ? `User ${user.userId} not in room !nosuch:test.local` : 'Unknown room' })
    await expect('a non-member reads', call('GET', `/_matrix/client/v3/rooms/${enc(room)}/messages?dir=b&limit=1`, user.accessToken), 403,
      { errcode: 'M_FORBIDDEN', error: `User ${user.userId} not in room ${room}, and room previews are disabled` })
    await call('PUT', `/_synapse/admin/v2/users/${enc(user.userId)}`, admin, { locked: true })
    const login = (password: string) => call('POST', '/_matrix/client/v3/login', '', { type: 'm.login.password', identifier: { type: 'm.id.user', user: user.userId }, password })
    await expect('a locked user with a wrong password', login('wrong'), 403, { errcode: 'M_FORBIDDEN', error: 'Invalid username or password' })
    await expect('a locked user logs out', call('POST', '/_matrix/client/v3/logout', user.accessToken, {}), 200, {})
    await call('POST', `/_synapse/admin/v1/deactivate/${enc(user.userId)}`, admin, {})
    await expect('a deactivated user with a wrong password', login('wrong'), 403, modern
      ? { errcode: 'M_FORBIDDEN', error: 'Invalid username or password' }
      : { errcode: 'M_USER_DEACTIVATED', error: 'This account has been deactivated' })
  }
})
