/**
 * The two read actions over HTTP against the simulated homeserver seeded with the actions
 * recording's rooms: room.members.read (GET /v1/rooms/{room}/members) and user.read
 * (GET /v1/users/{userId}, a curated triage view). Reads write one `result` record, no intent,
 * and change nothing. Cases named tN are the recorded exchanges of actions-contract.json.
 */
import t from 'tap'
import { ACTION_ROOMS, ACTION_USERS } from '../../dev/homeserver/state.js'
import { callsSince, enc, startActionHarness, stateOf } from '../helpers/actions.js'

const PUBLIC_MEMBERS = ['@admin:test.local', '@ana:test.local', '@ben:test.local', '@cid:test.local', '@dot:test.local', '@kay:test.local',
  '@ned:test.local', '@quin:test.local', '@xena:test.local', '@alice:test.local', '@pam:test.local', '@kai:test.local', '@vic:test.local']

t.test('room.members.read by room ID and by alias (resolved first: the admin API refuses aliases, t5c)', async (t) => {
  const h = await startActionHarness(t)
  const before = stateOf(h.homeserver)
  const byId = await h.call('GET', `/v1/rooms/${enc(ACTION_ROOMS.kickPublic)}/members`)
  t.equal(byId.status, 200)
  t.same(byId.body, { room_id: ACTION_ROOMS.kickPublic, members: PUBLIC_MEMBERS, total: PUBLIC_MEMBERS.length })
  t.notOk(byId.body.members.includes(ACTION_USERS.banned) || byId.body.members.includes('@gus:test.local'), 'joined members only: not the banned or invited')
  t.same(h.homeserver.calls.map((call) => call.endpoint), ['room_members'])
  t.equal(h.homeserver.calls[0]?.url, `/_synapse/admin/v1/rooms/${enc(ACTION_ROOMS.kickPublic)}/members`)

  const byAlias = await h.call('GET', '/v1/rooms/%23fresh-public:test.local/members')
  t.equal(byAlias.status, 200)
  t.same(byAlias.body, byId.body, 'the same room, answered with its ID')
  t.same(callsSince(h.homeserver, 1), ['directory', 'room_members'])
  t.equal(h.homeserver.calls[2]?.url, `/_synapse/admin/v1/rooms/${enc(ACTION_ROOMS.kickPublic)}/members`)
  t.equal(stateOf(h.homeserver), before, 'a read changes nothing')

  for (const res of [byId, byAlias]) {
    const records = h.recordsOf(res.requestId)
    t.equal(records.length, 1, 'a read has one record')
    t.match(records[0], { event: 'result', action: 'room.members.read', outcome: 'success', status: 200, policy: { rule: 'all', effect: 'allow' }, target: { room_id: ACTION_ROOMS.kickPublic, user_id: null }, upstream: { call: 'room_members', status: 200 } })
  }
  t.match(h.recordsOf(byAlias.requestId)[0], { target: { room: '#fresh-public:test.local' } })
})

t.test('room.members.read of an unknown room or alias is room_not_found (t5b)', async (t) => {
  const h = await startActionHarness(t)
  const byId = await h.call('GET', `/v1/rooms/${enc('!doesnotexist:test.local')}/members`)
  t.equal(byId.status, 404)
  t.match(byId.body, { code: 'room_not_found', matrix_errcode: 'M_NOT_FOUND' })
  const byAlias = await h.call('GET', '/v1/rooms/%23nope:test.local/members')
  t.equal(byAlias.status, 404)
  t.match(byAlias.body, { code: 'room_not_found', matrix_errcode: 'M_NOT_FOUND' })
  t.same(h.homeserver.calls.map((call) => call.endpoint), ['room_members', 'directory'])
  for (const res of [byId, byAlias]) t.match(h.recordsOf(res.requestId), [{ event: 'result', outcome: 'failed', code: 'room_not_found', status: 404 }])
  const bad = await h.call('GET', '/v1/rooms/notaroom/members')
  t.equal(bad.status, 400)
  t.equal(bad.body.code, 'invalid_room')
})

t.test('user.read answers exactly the curated fields (t1, t2)', async (t) => {
  const h = await startActionHarness(t)
  const res = await h.call('GET', `/v1/users/${enc('@sue:test.local')}`)
  t.equal(res.status, 200)
  t.same(res.body, {
    user_id: '@sue:test.local',
    displayname: 'sue',
    deactivated: false,
    admin: false,
    shadow_banned: false,
    creation_ts: h.homeserver.state.users.get('@sue:test.local')?.creationTs,
    rooms: [ACTION_ROOMS.aliceNoAdmin]
  })
  t.same(h.homeserver.calls.map((call) => call.endpoint), ['user_lookup', 'joined_rooms'])
  t.same(h.homeserver.calls.map((call) => call.url), ['/_synapse/admin/v2/users/%40sue%3Atest.local', '/_synapse/admin/v1/users/%40sue%3Atest.local/joined_rooms'])
  t.match(h.recordsOf(res.requestId), [{ event: 'result', action: 'user.read', outcome: 'success', target: { room: null, user_id: '@sue:test.local' }, upstream: { call: 'joined_rooms', status: 200 } }])
  t.equal(h.recordsOf(res.requestId).length, 1)

  // A plain @ and : in the path work too (t1i); the admin is shown as such (t1b).
  const plain = await h.call('GET', '/v1/users/@admin:test.local')
  t.equal(plain.status, 200)
  t.match(plain.body, { user_id: '@admin:test.local', admin: true, deactivated: false })
})

t.test('user.read never passes on personal data, whatever Synapse\'s user answer holds', async (t) => {
  const h = await startActionHarness(t)
  // Synapse's full user answer, as a newer Synapse gives it, with everything the view must drop.
  h.homeserver.fault = {
    kind: 'answer',
    on: 'user_lookup',
    status: 200,
    body: {
      name: '@sue:test.local',
      displayname: 'Sue Example',
      password_hash: '$2b$12$SECRETHASHSECRETHASHSECRETHASH',
      threepids: [{ medium: 'email', address: 'sue.private@example.org', validated_at: 1, added_at: 1 }],
      external_ids: [{ auth_provider: 'oidc', external_id: 'EXTERNAL-ID-4711' }],
      avatar_url: 'mxc://test.local/AVATAR',
      devices: [{ device_id: 'PJBLKEUXUO' }],
      sessions: [{ ip: '203.0.113.9' }],
      is_guest: false,
      admin: false,
      deactivated: false,
      shadow_banned: true,
      creation_ts: 1796228540,
      appservice_id: null,
      consent_server_notice_sent: null,
      consent_version: null,
      user_type: null
    }
  }
  const res = await h.call('GET', `/v1/users/${enc('@sue:test.local')}`)
  t.equal(res.status, 200)
  t.same(Object.keys(res.body).sort(), ['admin', 'creation_ts', 'deactivated', 'displayname', 'rooms', 'shadow_banned', 'user_id'])
  t.match(res.body, { displayname: 'Sue Example', shadow_banned: true, creation_ts: 1796228540 })
  for (const leak of ['threepids', 'external_ids', 'password_hash', 'devices', 'sessions', 'SECRETHASH', 'sue.private@example.org', 'EXTERNAL-ID-4711', 'PJBLKEUXUO', '203.0.113.9', 'AVATAR']) {
    t.notOk(res.text.includes(leak), `${leak} is not in the answer`)
  }
  t.notOk(h.auditText().includes('SECRETHASH') || h.auditText().includes('sue.private@example.org'), 'nor in the audit')
})

t.test('user.read: unknown users are 404 (joined_rooms alone would say 200 empty, t2b); deactivated users are shown (t1c)', async (t) => {
  const h = await startActionHarness(t)
  const unknown = await h.call('GET', `/v1/users/${enc(ACTION_USERS.unknown)}`)
  t.equal(unknown.status, 404)
  t.match(unknown.body, { code: 'user_not_found', matrix_errcode: 'M_NOT_FOUND' })
  t.same(h.homeserver.calls.map((call) => call.endpoint), ['user_lookup'], 'joined_rooms is not asked')
  t.match(h.recordsOf(unknown.requestId), [{ event: 'result', outcome: 'failed', code: 'user_not_found' }])

  const dave = await h.call('GET', `/v1/users/${enc(ACTION_USERS.deactivated)}`)
  t.equal(dave.status, 200)
  t.match(dave.body, { user_id: ACTION_USERS.deactivated, deactivated: true, rooms: [] })

  const from = h.homeserver.calls.length
  for (const [path, code] of [['/v1/users/alice', 'invalid_user_id'], [`/v1/users/${enc('@x:other.example')}`, 'user_not_local'], ['/v1/users/@x:other.example', 'user_not_local']] as Array<[string, string]>) {
    const res = await h.call('GET', path)
    t.equal(res.status, 400, path)
    t.equal(res.body.code, code)
  }
  t.same(callsSince(h.homeserver, from), [], 'bad IDs never reach Synapse')
})

t.test('without POLICY_FILE the reads are insufficient_role and reach nothing', async (t) => {
  const h = await startActionHarness(t, { policy: false })
  for (const path of [`/v1/rooms/${enc(ACTION_ROOMS.kickPublic)}/members`, `/v1/users/${enc('@sue:test.local')}`]) {
    const res = await h.call('GET', path)
    t.equal(res.status, 403, path)
    t.equal(res.body.code, 'insufficient_role')
    t.match(h.recordsOf(res.requestId), [{ event: 'result', outcome: 'denied', code: 'insufficient_role' }])
  }
  t.same(h.homeserver.calls, [])
})
