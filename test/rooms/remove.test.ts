/**
 * room.remove (DELETE /v1/rooms/{room}/members/{userId}) over HTTP against the simulated
 * homeserver seeded with the actions recording's rooms: a kick through the client API as the
 * admin account, with Synapse's one answer "The target user is not in the room" told apart
 * (absent user: changed false; unknown room: room_not_found). Cases named kN are the recorded
 * exchanges of test/fixtures/synapse/actions-contract.json.
 */
import t from 'tap'
import { ACTION_ROOMS, ACTION_USERS } from '../../dev/homeserver/state.js'
import { callsSince, enc, memberOf, startActionHarness, stateOf } from '../helpers/actions.js'

const remove = (room: string, user: string, query = '') => `/v1/rooms/${enc(room)}/members/${enc(user)}${query}`
const PUBLIC = ACTION_ROOMS.kickPublic
const ALLOW_ALL = { rule: 'all', effect: 'allow' }

t.test('a joined user is kicked as the admin account, with the reason on the member event (k1, k2)', async (t) => {
  const h = await startActionHarness(t)
  const res = await h.call('DELETE', remove(PUBLIC, '@ben:test.local'), { body: { reason: 'Ticket HD-1: left the team' } })
  t.equal(res.status, 200)
  t.same(res.body, { room_id: PUBLIC, user_id: '@ben:test.local', membership: 'leave', changed: true })
  const { membership, event } = memberOf(h.homeserver, PUBLIC, '@ben:test.local')
  t.equal(membership, 'leave')
  t.equal(event?.sender, ACTION_USERS.admin, 'kicked by the admin account')
  t.equal(event?.reason, 'Ticket HD-1: left the team', 'the reason reaches the member event')
  // whoami (the admin account, for the protected-target check), the user lookup, then the kick by room ID.
  t.same(h.homeserver.calls.map((call) => call.endpoint), ['whoami', 'user_lookup', 'kick'])
  const kick = h.homeserver.callsTo('kick')[0]
  t.equal(kick?.url, `/_matrix/client/v3/rooms/${enc(PUBLIC)}/kick`)
  t.same(JSON.parse(kick?.body ?? ''), { user_id: '@ben:test.local', reason: 'Ticket HD-1: left the team' })

  const [intent, result, ...rest] = h.recordsOf(res.requestId)
  t.equal(rest.length, 0, 'one intent and one result')
  t.match(intent, { event: 'intent', action: 'room.remove', reason: 'Ticket HD-1: left the team', policy: ALLOW_ALL, target: { room: PUBLIC, user_id: '@ben:test.local', room_id: PUBLIC } })
  t.notOk('outcome' in (intent as object), 'the intent has no outcome yet')
  t.match(result, { event: 'result', action: 'room.remove', outcome: 'success', status: 200, reason: 'Ticket HD-1: left the team', policy: ALLOW_ALL, upstream: { call: 'kick', status: 200 } })
  t.ok((intent?.seq as number) < (result?.seq as number), 'the intent is written before the result')

  // Without a reason: no reason is sent to Synapse, none is recorded.
  const plain = await h.call('DELETE', remove(PUBLIC, '@ana:test.local'))
  t.equal(plain.status, 200)
  t.same(JSON.parse(h.homeserver.callsTo('kick')[1]?.body ?? ''), { user_id: '@ana:test.local' })
  t.equal(memberOf(h.homeserver, PUBLIC, '@ana:test.local').event?.reason, undefined)
  t.notOk('reason' in (h.recordsOf(plain.requestId)[1] as object))
})

t.test('an empty body with content-type application/json is no body; plain and percent-encoded user IDs alike', async (t) => {
  const h = await startActionHarness(t)
  const empty = await h.call('DELETE', remove(PUBLIC, '@cid:test.local'), { rawBody: '', headers: { 'content-type': 'application/json' } })
  t.equal(empty.status, 200, empty.text)
  t.same(empty.body, { room_id: PUBLIC, user_id: '@cid:test.local', membership: 'leave', changed: true })
  const plain = await h.call('DELETE', `/v1/rooms/${enc(PUBLIC)}/members/@dot:test.local`)
  t.equal(plain.status, 200, plain.text)
  t.same(plain.body, { room_id: PUBLIC, user_id: '@dot:test.local', membership: 'leave', changed: true })
  t.equal(memberOf(h.homeserver, PUBLIC, '@dot:test.local').membership, 'leave')
  // The path is encoded exactly once towards Synapse, whatever the caller sent (k21 took the encoded form).
  t.same(h.homeserver.callsTo('kick').map((call) => JSON.parse(call.body).user_id), ['@cid:test.local', '@dot:test.local'])
})

t.test('absent users succeed with changed false: repeated kick (k5), left (k7), never joined (k6), deactivated', async (t) => {
  const h = await startActionHarness(t)
  t.equal((await h.call('DELETE', remove(PUBLIC, '@ana:test.local'))).status, 200)
  for (const user of ['@ana:test.local', ACTION_USERS.leftByHerself, ACTION_USERS.neverJoined, ACTION_USERS.deactivated]) {
    const before = stateOf(h.homeserver)
    const from = h.homeserver.calls.length
    const res = await h.call('DELETE', remove(PUBLIC, user), { body: { reason: 'cleanup' } })
    t.equal(res.status, 200, user)
    t.same(res.body, { room_id: PUBLIC, user_id: user, membership: 'leave', changed: false }, user)
    t.equal(stateOf(h.homeserver), before, `nothing changed for ${user}`)
    // Synapse's 403 "target not in room" is checked against the room's details (it says the same for unknown rooms).
    t.same(callsSince(h.homeserver, from), ['user_lookup', 'kick', 'room_details'], user)
    t.match(h.recordsOf(res.requestId), [{ event: 'intent' }, { event: 'result', outcome: 'success', status: 200, upstream: { call: 'room_details', status: 200 } }])
  }
})

t.test('an invited user\'s invite is revoked (k8); a banned user stays banned (k9)', async (t) => {
  const h = await startActionHarness(t)
  const invited = await h.call('DELETE', remove(PUBLIC, '@gus:test.local'))
  t.equal(invited.status, 200)
  t.same(invited.body, { room_id: PUBLIC, user_id: '@gus:test.local', membership: 'leave', changed: true })
  t.equal(memberOf(h.homeserver, PUBLIC, '@gus:test.local').membership, 'leave')

  const before = stateOf(h.homeserver)
  const banned = await h.call('DELETE', remove(PUBLIC, ACTION_USERS.banned))
  t.equal(banned.status, 200)
  t.same(banned.body, { room_id: PUBLIC, user_id: ACTION_USERS.banned, membership: 'ban', changed: false })
  t.equal(stateOf(h.homeserver), before, 'the ban stays, with its event')
  t.match(h.recordsOf(banned.requestId), [{ event: 'intent' }, { event: 'result', outcome: 'success', upstream: { call: 'kick', status: 403, matrix_errcode: 'M_BAD_STATE' } }])
})

t.test('refusals by Synapse: no kick power or target at equal/higher power (k11, k11b, k17), admin not in the room (k16)', async (t) => {
  const h = await startActionHarness(t)
  const cases = [
    { room: ACTION_ROOMS.halPowers, user: '@hal:test.local', code: 'admin_cannot_kick', synapse: 'You cannot kick user @hal:test.local.' },
    { room: ACTION_ROOMS.halPowers, user: '@ivo:test.local', code: 'admin_cannot_kick', synapse: 'You cannot kick user @ivo:test.local.' },
    { room: ACTION_ROOMS.bobNoPower, user: '@max:test.local', code: 'admin_cannot_kick', synapse: 'You cannot kick user @max:test.local.' },
    { room: ACTION_ROOMS.aliceNoAdmin, user: '@lou:test.local', code: 'admin_not_in_room', synapse: `@admin:test.local not in room ${ACTION_ROOMS.aliceNoAdmin}.` },
    // An invite is revoked by a kick too, so the same refusals apply to it.
    { room: ACTION_ROOMS.aliceNoAdmin, user: ACTION_USERS.invited, code: 'admin_not_in_room', synapse: `@admin:test.local not in room ${ACTION_ROOMS.aliceNoAdmin}.` }
  ]
  for (const { room, user, code, synapse } of cases) {
    const before = stateOf(h.homeserver)
    const res = await h.call('DELETE', remove(room, user))
    t.equal(res.status, 403, `${user} in ${room}`)
    t.match(res.body, { status: 403, code, matrix_errcode: 'M_FORBIDDEN' })
    t.match(res.body.detail, synapse, 'Synapse\'s words are quoted')
    t.equal(stateOf(h.homeserver), before, 'nothing changed')
    t.match(h.recordsOf(res.requestId), [
      { event: 'intent', action: 'room.remove' },
      { event: 'result', outcome: 'failed', status: 403, code, upstream: { call: 'kick', status: 403, matrix_errcode: 'M_FORBIDDEN' } }
    ])
  }
  // The control (k11c): the admin at PL 50 = the kick level may kick a PL-0 user.
  t.equal((await h.call('DELETE', remove(ACTION_ROOMS.halPowers, '@jan:test.local'))).status, 200)
  t.equal(memberOf(h.homeserver, ACTION_ROOMS.halPowers, '@jan:test.local').membership, 'leave')
})

t.test('an unknown room is room_not_found although Synapse 1.67 says "target not in room" (k18, k18b)', async (t) => {
  const h = await startActionHarness(t, { homeserver: { synapseVersion: '1.67.0' } })
  for (const room of ['!doesnotexist:test.local', '!abc:other.example']) {
    const res = await h.call('DELETE', remove(room, '@ben:test.local'))
    t.equal(res.status, 404, room)
    t.match(res.body, { code: 'room_not_found' })
    t.same(callsSince(h.homeserver, h.homeserver.calls.length - 2), ['kick', 'room_details'])
    t.match(h.recordsOf(res.requestId), [{ event: 'intent' }, { event: 'result', outcome: 'failed', code: 'room_not_found', upstream: { call: 'room_details', status: 404 } }])
  }
  t.equal(memberOf(h.homeserver, PUBLIC, '@ben:test.local').membership, 'join', 'ben is untouched')
  // A room "ID" Synapse would also answer "target not in room" for (k18c) is the gateway's own 400 and never sent.
  const from = h.homeserver.calls.length
  const malformed = await h.call('DELETE', `/v1/rooms/notaroom/members/${enc('@ben:test.local')}`)
  t.equal(malformed.status, 400)
  t.equal(malformed.body.code, 'invalid_room')
  t.same(callsSince(h.homeserver, from), [])
})

t.test('an unknown room is room_not_found when Synapse 1.163 says "Not a known room" (g17 of modern-1.163.2.json)', async (t) => {
  const h = await startActionHarness(t, { homeserver: { synapseVersion: '1.163.2' } })
  const res = await h.call('DELETE', remove('!doesnotexist:test.local', '@ben:test.local'))
  t.equal(res.status, 404)
  t.match(res.body, { code: 'room_not_found' })
  t.same(callsSince(h.homeserver, h.homeserver.calls.length - 1), ['kick'], 'no room details needed to tell it apart')
  t.match(h.recordsOf(res.requestId), [{ event: 'intent' }, { event: 'result', outcome: 'failed', code: 'room_not_found', upstream: { call: 'kick', status: 404 } }])
})

t.test('an alias is resolved first: the kick is sent by room ID (k19 refuses aliases); an unknown alias is room_not_found', async (t) => {
  const h = await startActionHarness(t)
  const res = await h.call('DELETE', `/v1/rooms/%23fresh-public:test.local/members/${enc('@ned:test.local')}`)
  t.equal(res.status, 200)
  t.same(res.body, { room_id: PUBLIC, user_id: '@ned:test.local', membership: 'leave', changed: true })
  t.equal(h.homeserver.callsTo('kick')[0]?.url, `/_matrix/client/v3/rooms/${enc(PUBLIC)}/kick`)
  t.match(h.recordsOf(res.requestId)[1], { target: { room: '#fresh-public:test.local', user_id: '@ned:test.local', room_id: PUBLIC } })

  const unknown = await h.call('DELETE', `/v1/rooms/%23nope:test.local/members/${enc('@ned:test.local')}`)
  t.equal(unknown.status, 404)
  t.match(unknown.body, { code: 'room_not_found', matrix_errcode: 'M_NOT_FOUND' })
  t.equal(h.homeserver.callsTo('kick').length, 1, 'no kick for an unknown alias')
  t.same(h.recordsOf(unknown.requestId).map((record) => record.event), ['result'], 'no intent')
})

t.test('the admin\'s own account is protected_target and never reaches Synapse\'s kick', async (t) => {
  const h = await startActionHarness(t)
  const before = stateOf(h.homeserver)
  const res = await h.call('DELETE', remove(PUBLIC, ACTION_USERS.admin), { body: { reason: 'oops' } })
  t.equal(res.status, 403)
  t.match(res.body, { code: 'protected_target' })
  t.notOk('matrix_errcode' in res.body)
  t.same(h.homeserver.calls.map((call) => call.endpoint), ['whoami'], 'whoami only: no lookup, no kick')
  t.equal(stateOf(h.homeserver), before)
  t.match(h.recordsOf(res.requestId), [{ event: 'result', outcome: 'denied', code: 'protected_target', status: 403, reason: 'oops', policy: ALLOW_ALL }])
})

t.test('an unknown user is user_not_found (k12, k12b: IDs are case-sensitive), before any kick', async (t) => {
  const h = await startActionHarness(t)
  for (const user of [ACTION_USERS.unknown, '@Kay:test.local']) {
    const res = await h.call('DELETE', remove(PUBLIC, user))
    t.equal(res.status, 404, user)
    t.match(res.body, { code: 'user_not_found', matrix_errcode: 'M_NOT_FOUND' })
    t.match(h.recordsOf(res.requestId), [{ event: 'result', outcome: 'failed', code: 'user_not_found', upstream: { call: 'user_lookup', status: 404 } }])
  }
  t.equal(h.homeserver.callsTo('kick').length, 0)
  t.equal(memberOf(h.homeserver, PUBLIC, '@kay:test.local').membership, 'join')
})

t.test('bad user IDs and bodies never reach Synapse', async (t) => {
  const h = await startActionHarness(t)
  const cases: Array<{ path: string, body?: unknown, rawBody?: string, headers?: Record<string, string>, status: number, code: string }> = [
    { path: `/v1/rooms/${enc(PUBLIC)}/members/kay`, status: 400, code: 'invalid_user_id' },
    { path: `/v1/rooms/${enc(PUBLIC)}/members/${enc('@kay')}`, status: 400, code: 'invalid_user_id' },
    { path: remove(PUBLIC, '@x:other.example'), status: 400, code: 'user_not_local' },
    { path: `/v1/rooms/${enc(PUBLIC)}/members/@x:other.example`, status: 400, code: 'user_not_local' },
    { path: remove(PUBLIC, '@kay:test.local'), body: { reason: 42 }, status: 400, code: 'invalid_body' },
    { path: remove(PUBLIC, '@kay:test.local'), body: { reason: 'x', user_id: '@kay:test.local' }, status: 400, code: 'invalid_body' },
    { path: remove(PUBLIC, '@kay:test.local'), body: { reason: 'line\nbreak' }, status: 400, code: 'invalid_body' },
    { path: remove(PUBLIC, '@kay:test.local'), body: { reason: 'x'.repeat(513) }, status: 400, code: 'invalid_body' },
    { path: remove(PUBLIC, '@kay:test.local'), rawBody: 'not json', status: 400, code: 'invalid_body' },
    { path: remove(PUBLIC, '@kay:test.local'), rawBody: '{"reason":"x"}', headers: { 'content-type': 'text/plain' }, status: 415, code: 'unsupported_media_type' }
  ]
  for (const { path, status, code, ...options } of cases) {
    const res = await h.call('DELETE', path, options)
    t.equal(res.status, status, `${path} ${JSON.stringify(options)}`)
    t.equal(res.body?.code, code)
  }
  t.same(h.homeserver.calls, [], 'Synapse was never called')
  t.ok(h.audit().every((record) => record.action === 'room.remove' && record.outcome === 'invalid'))
  t.equal(h.audit().length, cases.length, 'each attempt audited once')
})

t.test('a kick answered 5xx or not at all after it was sent is audited as unknown', async (t) => {
  const h = await startActionHarness(t)
  h.homeserver.fault = { kind: 'error-500', on: 'kick' }
  const failed = await h.call('DELETE', remove(PUBLIC, '@kay:test.local'))
  t.equal(failed.status, 502)
  t.match(failed.body, { code: 'upstream_error', matrix_errcode: 'M_UNKNOWN' })
  t.match(h.recordsOf(failed.requestId), [{ event: 'intent' }, { event: 'result', outcome: 'unknown', code: 'upstream_error', upstream: { call: 'kick', status: 500 } }])

  h.homeserver.fault = { kind: 'hang', on: 'kick' }
  const timedOut = await h.call('DELETE', remove(PUBLIC, '@kay:test.local'))
  t.equal(timedOut.status, 504)
  t.equal(timedOut.body.code, 'upstream_timeout')
  t.match(h.recordsOf(timedOut.requestId), [{ event: 'intent' }, { event: 'result', outcome: 'unknown', code: 'upstream_timeout', upstream: { call: 'kick', status: null } }])

  // A 5xx before the changing call (the user lookup) changed nothing: failed, and no intent.
  h.homeserver.fault = { kind: 'error-500', on: 'user_lookup' }
  const early = await h.call('DELETE', remove(PUBLIC, '@kay:test.local'))
  t.equal(early.status, 502)
  t.match(h.recordsOf(early.requestId), [{ event: 'result', outcome: 'failed', code: 'upstream_error' }])
})

t.test('without POLICY_FILE only room.join is allowed: room.remove is insufficient_role and reaches nothing', async (t) => {
  const h = await startActionHarness(t, { policy: false })
  const res = await h.call('DELETE', remove(PUBLIC, '@kay:test.local'))
  t.equal(res.status, 403)
  t.match(res.body, { code: 'insufficient_role' })
  t.same(h.homeserver.calls, [])
  t.match(h.recordsOf(res.requestId), [{ event: 'result', action: 'room.remove', outcome: 'denied', code: 'insufficient_role' }])
})
