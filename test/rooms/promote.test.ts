/**
 * room.promote (POST /v1/rooms/{room}/admins) over HTTP against the simulated homeserver seeded
 * with the actions recording's rooms. Synapse's make_room_admin answers 200 for unknown and
 * deactivated users and can half-succeed, so the gateway checks the user first and audits a
 * half-success as unknown. Cases named mN are the recorded exchanges of actions-contract.json.
 */
import t from 'tap'
import { ACTION_ROOMS, ACTION_USERS } from '../../dev/homeserver/state.js'
import { callsSince, enc, memberOf, startActionHarness, stateOf } from '../helpers/actions.js'

const promote = (room: string, query = '') => `/v1/rooms/${enc(room)}/admins${query}`
const levelOf = (h: { homeserver: { state: { rooms: Map<string, { powerLevels: Map<string, number> }> } } }, room: string, user: string) =>
  h.homeserver.state.rooms.get(room)?.powerLevels.get(user)

t.test('a joined user gets power level 100 (m1); the reason is audited, not sent to Synapse', async (t) => {
  const h = await startActionHarness(t)
  const res = await h.call('POST', promote(ACTION_ROOMS.kickPublic), { body: { user_id: '@vic:test.local', reason: 'Ticket HD-9: new room owner' } })
  t.equal(res.status, 200, res.text)
  t.same(res.body, { room_id: ACTION_ROOMS.kickPublic, user_id: '@vic:test.local', power_level: 100 })
  t.equal(levelOf(h, ACTION_ROOMS.kickPublic, '@vic:test.local'), 100, 'power level 100 in the room state')
  t.same(h.homeserver.calls.map((call) => call.endpoint), ['user_lookup', 'make_room_admin'])
  const call = h.homeserver.callsTo('make_room_admin')[0]
  t.equal(call?.url, `/_synapse/admin/v1/rooms/${enc(ACTION_ROOMS.kickPublic)}/make_room_admin`)
  t.same(JSON.parse(call?.body ?? ''), { user_id: '@vic:test.local' })
  const records = h.recordsOf(res.requestId)
  t.match(records, [
    { event: 'intent', action: 'room.promote', reason: 'Ticket HD-9: new room owner', policy: { rule: 'all', effect: 'allow' }, target: { room: ACTION_ROOMS.kickPublic, user_id: '@vic:test.local', room_id: ACTION_ROOMS.kickPublic } },
    { event: 'result', action: 'room.promote', outcome: 'success', status: 200, reason: 'Ticket HD-9: new room owner', upstream: { call: 'make_room_admin', status: 200 } }
  ])
  t.equal(records.length, 2)
})

t.test('by alias (m6), sent by room ID; in an invite-only room a user who is not joined is also invited (m2b)', async (t) => {
  const h = await startActionHarness(t)
  const byAlias = await h.call('POST', '/v1/rooms/%23fresh-public:test.local/admins', { body: { user_id: '@xena:test.local' } })
  t.equal(byAlias.status, 200)
  t.same(byAlias.body, { room_id: ACTION_ROOMS.kickPublic, user_id: '@xena:test.local', power_level: 100 })
  t.equal(h.homeserver.callsTo('make_room_admin')[0]?.url, `/_synapse/admin/v1/rooms/${enc(ACTION_ROOMS.kickPublic)}/make_room_admin`)
  t.equal(levelOf(h, ACTION_ROOMS.kickPublic, '@xena:test.local'), 100)

  const invited = await h.call('POST', promote(ACTION_ROOMS.privateAdmin), { body: { user_id: '@zed:test.local' } })
  t.equal(invited.status, 200)
  t.equal(levelOf(h, ACTION_ROOMS.privateAdmin, '@zed:test.local'), 100)
  t.equal(memberOf(h.homeserver, ACTION_ROOMS.privateAdmin, '@zed:test.local').membership, 'invite')
})

t.test('unknown and deactivated users are refused before make_room_admin (Synapse would promote and invite them: m7, m8b)', async (t) => {
  const h = await startActionHarness(t)
  const before = stateOf(h.homeserver)
  const unknown = await h.call('POST', promote(ACTION_ROOMS.privateAdmin), { body: { user_id: ACTION_USERS.unknown } })
  t.equal(unknown.status, 404)
  t.match(unknown.body, { code: 'user_not_found', matrix_errcode: 'M_NOT_FOUND' })
  const deactivated = await h.call('POST', promote(ACTION_ROOMS.privateAdmin), { body: { user_id: ACTION_USERS.deactivated } })
  t.equal(deactivated.status, 409)
  t.match(deactivated.body, { code: 'user_deactivated' })
  t.equal(h.homeserver.callsTo('make_room_admin').length, 0, 'make_room_admin is never called')
  t.same(h.homeserver.calls.map((call) => call.endpoint), ['user_lookup', 'user_lookup'])
  t.equal(stateOf(h.homeserver), before, 'no power level, no invite')
  t.match(h.recordsOf(unknown.requestId), [{ event: 'result', outcome: 'failed', code: 'user_not_found' }])
  t.match(h.recordsOf(deactivated.requestId), [{ event: 'result', outcome: 'failed', code: 'user_deactivated', upstream: { call: 'user_lookup', status: 200 } }])
})

t.test('a banned target in an invite-only room: user_banned, audited unknown, as the power level was already granted (m2d)', async (t) => {
  const h = await startActionHarness(t)
  const res = await h.call('POST', promote(ACTION_ROOMS.privateAdmin), { body: { user_id: ACTION_USERS.banned } })
  t.equal(res.status, 403)
  t.match(res.body, { code: 'user_banned', matrix_errcode: 'M_BAD_STATE' })
  t.match(res.body.detail, /may already have raised their power level/)
  t.equal(levelOf(h, ACTION_ROOMS.privateAdmin, ACTION_USERS.banned), 100, 'the half-success the audit must not call a failure')
  t.equal(memberOf(h.homeserver, ACTION_ROOMS.privateAdmin, ACTION_USERS.banned).membership, 'ban')
  t.match(h.recordsOf(res.requestId), [
    { event: 'intent', action: 'room.promote' },
    { event: 'result', outcome: 'unknown', code: 'user_banned', status: 403, upstream: { call: 'make_room_admin', status: 403, matrix_errcode: 'M_BAD_STATE' } }
  ])
  // In a public room nobody is invited, so the same banned user is simply promoted.
  const open = await h.call('POST', promote(ACTION_ROOMS.kickPublic), { body: { user_id: ACTION_USERS.banned } })
  t.equal(open.status, 200)
  t.equal(levelOf(h, ACTION_ROOMS.kickPublic, ACTION_USERS.banned), 100)
})

t.test('unknown rooms are room_not_found: by ID (Synapse: 400 "Server not in room", m5) and by alias (m5b)', async (t) => {
  const h = await startActionHarness(t)
  const byId = await h.call('POST', promote('!doesnotexist:test.local'), { body: { user_id: '@eli:test.local' } })
  t.equal(byId.status, 404)
  t.match(byId.body, { code: 'room_not_found', matrix_errcode: 'M_UNKNOWN' })
  t.match(h.recordsOf(byId.requestId), [{ event: 'intent' }, { event: 'result', outcome: 'failed', code: 'room_not_found', upstream: { call: 'make_room_admin', status: 400 } }])

  const from = h.homeserver.calls.length
  const byAlias = await h.call('POST', '/v1/rooms/%23nope:test.local/admins', { body: { user_id: '@eli:test.local' } })
  t.equal(byAlias.status, 404)
  t.match(byAlias.body, { code: 'room_not_found', matrix_errcode: 'M_NOT_FOUND' })
  t.same(callsSince(h.homeserver, from), ['directory'], 'resolved first, never sent')
  t.match(h.recordsOf(byAlias.requestId), [{ event: 'result', outcome: 'failed', code: 'room_not_found' }])
})

t.test('no joined local member with power over the power levels is synapse_forbidden (m4, m4b)', async (t) => {
  const h = await startActionHarness(t)
  for (const [room, said] of [[ACTION_ROOMS.noAdminJoined, 'No local admin user in room'], [ACTION_ROOMS.weakAdmin, 'No local admin user in room with power to update power levels.']] as const) {
    const before = stateOf(h.homeserver)
    const res = await h.call('POST', promote(room), { body: { user_id: '@eli:test.local' } })
    t.equal(res.status, 403, room)
    t.match(res.body, { code: 'synapse_forbidden', matrix_errcode: 'M_UNKNOWN' })
    t.ok(res.body.detail.includes(`Synapse said: "${said}"`))
    t.equal(stateOf(h.homeserver), before)
    t.match(h.recordsOf(res.requestId), [{ event: 'intent' }, { event: 'result', outcome: 'failed', code: 'synapse_forbidden', upstream: { status: 400 } }])
  }
})

t.test('bodies and user IDs Synapse would answer 500 or 502 for never reach it (m8, m8c)', async (t) => {
  const h = await startActionHarness(t)
  const cases: Array<{ body?: unknown, rawBody?: string, status: number, code: string }> = [
    { body: { user_id: 'ada' }, status: 400, code: 'invalid_user_id' },
    { body: { user_id: '@x:other.example' }, status: 400, code: 'user_not_local' },
    { body: { user_id: 123 }, status: 400, code: 'invalid_body' },
    { body: {}, status: 400, code: 'invalid_body' },
    { body: { user_id: '@eli:test.local', power_level: 50 }, status: 400, code: 'invalid_body' },
    { body: { user_id: '@eli:test.local', reason: 'tab\there' }, status: 400, code: 'invalid_body' },
    { rawBody: '', status: 400, code: 'invalid_body' }
  ]
  for (const { status, code, ...options } of cases) {
    const res = await h.call('POST', promote(ACTION_ROOMS.kickPublic), options)
    t.equal(res.status, status, JSON.stringify(options))
    t.equal(res.body?.code, code)
  }
  t.same(h.homeserver.calls, [])
})

t.test('a make_room_admin answered 5xx is audited unknown; without POLICY_FILE the action is insufficient_role', async (t) => {
  const h = await startActionHarness(t)
  h.homeserver.fault = { kind: 'error-500', on: 'make_room_admin' }
  const res = await h.call('POST', promote(ACTION_ROOMS.kickPublic), { body: { user_id: '@vic:test.local' } })
  t.equal(res.status, 502)
  t.match(h.recordsOf(res.requestId), [{ event: 'intent' }, { event: 'result', outcome: 'unknown', code: 'upstream_error' }])

  const implicit = await startActionHarness(t, { policy: false })
  const refused = await implicit.call('POST', promote(ACTION_ROOMS.kickPublic), { body: { user_id: '@vic:test.local' } })
  t.equal(refused.status, 403)
  t.equal(refused.body.code, 'insufficient_role')
  t.same(implicit.homeserver.calls, [])
  t.match(implicit.recordsOf(refused.requestId), [{ event: 'result', action: 'room.promote', outcome: 'denied', code: 'insufficient_role' }])
})
