/**
 * The join action end to end: gateway over HTTP, simulated homeserver as a real listener,
 * answering like the recorded Synapse 1.67.0. Each Synapse answer maps to the contract's code,
 * and each attempt leaves exactly one audit entry.
 */
import t from 'tap'
import { createServer } from 'node:net'
import { RECORDED_ROOMS } from '../../dev/homeserver/state.js'
import { startHarness } from '../helpers/harness.js'

const enc = encodeURIComponent

t.test('joins a local user to a public room by room ID, and audits it', async (t) => {
  const h = await startHarness(t)
  const res = await h.join(enc(RECORDED_ROOMS.publicTest), { user_id: '@alice:test.local' }, {
    token: h.token({ sub: 'agent-7', org: 'example', roles: ['matrix-admin', 'other'] }),
    headers: { 'user-agent': 'helpdesk/1.0', 'x-request-id': 'ticket-4711' }
  })
  t.equal(res.status, 200)
  t.same(res.body, { room_id: RECORDED_ROOMS.publicTest, user_id: '@alice:test.local' })
  t.equal(res.headers['x-request-id'], 'ticket-4711')
  t.equal(h.homeserver.state.rooms.get(RECORDED_ROOMS.publicTest)?.members.get('@alice:test.local'), 'join')
  const entries = h.audit()
  t.equal(entries.length, 1)
  const entry = entries[0] as Record<string, any>
  t.match(entry, {
    log: 'audit',
    request_id: 'ticket-4711',
    action: 'room.join',
    outcome: 'success',
    status: 200,
    actor: { sub: 'agent-7', org: 'example', roles: ['matrix-admin', 'other'] },
    target: { room: RECORDED_ROOMS.publicTest, user_id: '@alice:test.local', room_id: RECORDED_ROOMS.publicTest },
    client: { ip: '127.0.0.1', user_agent: 'helpdesk/1.0' },
    upstream: { call: 'join', status: 200, matrix_errcode: null }
  })
  t.type(entry.time, 'string')
  t.type(entry.duration_ms, 'number')
  t.type(entry.upstream.duration_ms, 'number')
  t.notOk('code' in entry, 'no code on success')
  // The user is looked up first, then joined; the path segment is encoded exactly once.
  t.same(h.homeserver.calls.map((c) => c.endpoint), ['user_lookup', 'join'])
  t.equal(h.homeserver.callsTo('join')[0]?.url, `/_synapse/admin/v1/join/${enc(RECORDED_ROOMS.publicTest)}`)
  t.equal(h.homeserver.callsTo('user_lookup')[0]?.url, '/_synapse/admin/v2/users/%40alice%3Atest.local')
})

t.test('joins by alias and answers with the resolved room ID', async (t) => {
  const h = await startHarness(t)
  const res = await h.join('%23public-test:test.local', { user_id: '@bob:test.local' })
  t.equal(res.status, 200)
  t.same(res.body, { room_id: RECORDED_ROOMS.publicTest, user_id: '@bob:test.local' })
  // Resolved before the policy decides, then joined by ID: the alias cannot be repointed in between.
  t.equal(h.homeserver.callsTo('join')[0]?.url, `/_synapse/admin/v1/join/${enc(RECORDED_ROOMS.publicTest)}`)
  t.match(h.audit()[0], { target: { room: '#public-test:test.local', room_id: RECORDED_ROOMS.publicTest } })
})

t.test('a repeat join succeeds, also where Synapse answers 403 "already in the room"', async (t) => {
  const h = await startHarness(t)
  for (const room of [RECORDED_ROOMS.privateAdmin, RECORDED_ROOMS.publicTest]) {
    t.equal((await h.join(enc(room), { user_id: '@gina:test.local' })).status, 200)
    const again = await h.join(enc(room), { user_id: '@gina:test.local' })
    t.equal(again.status, 200, `repeat into ${room}`)
    t.same(again.body, { room_id: room, user_id: '@gina:test.local' })
  }
  // Via an alias, Synapse's 403 names no room: the gateway resolves it through the directory.
  const viaAlias = await h.join('%23private-admin:test.local', { user_id: '@gina:test.local' })
  t.equal(viaAlias.status, 200)
  t.same(viaAlias.body, { room_id: RECORDED_ROOMS.privateAdmin, user_id: '@gina:test.local' })
  t.equal(h.homeserver.callsTo('directory').length, 1)
  t.ok(h.audit().every((entry) => entry.outcome === 'success'))
})

t.test('a deactivated user is refused and never joined (deactivated as 1 or as true)', async (t) => {
  for (const deactivatedAsBoolean of [false, true]) {
    const h = await startHarness(t, { homeserver: { deactivatedAsBoolean } })
    const res = await h.join(enc(RECORDED_ROOMS.publicTest), { user_id: '@dave:test.local' })
    t.equal(res.status, 409)
    t.equal(res.body.code, 'user_deactivated')
    t.equal(h.homeserver.callsTo('join').length, 0, 'the join is never sent')
    t.match(h.audit()[0], { outcome: 'failed', code: 'user_deactivated', status: 409, upstream: { call: 'user_lookup', status: 200 } })
  }
})

t.test('Synapse refusals map to the contract codes', async (t) => {
  const h = await startHarness(t)
  const cases: Array<[string, string, string, number, string, string | undefined]> = [
    // [what, room, user, status, code, matrix_errcode]
    ['unknown user', RECORDED_ROOMS.publicTest, '@ghost:test.local', 404, 'user_not_found', 'M_NOT_FOUND'],
    ['user IDs are case-sensitive', RECORDED_ROOMS.publicTest, '@Alice:test.local', 404, 'user_not_found', 'M_NOT_FOUND'],
    ['unknown room ID', '!doesnotexist:test.local', '@alice:test.local', 404, 'room_not_found', 'M_UNKNOWN'],
    ['remote room ID', '!abc:other.example', '@alice:test.local', 404, 'room_not_found', 'M_UNKNOWN'],
    ['unknown alias', '#nope:test.local', '@alice:test.local', 404, 'room_not_found', 'M_NOT_FOUND'],
    ['admin not in the invite-only room', RECORDED_ROOMS.alicePrivate, '@hank:test.local', 403, 'admin_not_in_room', 'M_FORBIDDEN'],
    ['admin without invite power', RECORDED_ROOMS.bobPrivate, '@ivan:test.local', 403, 'admin_cannot_invite', 'M_FORBIDDEN'],
    ['banned from a public room', RECORDED_ROOMS.publicTest, '@erin:test.local', 403, 'user_banned', 'M_BAD_STATE'],
    ['banned from an invite-only room', RECORDED_ROOMS.privateAdmin, '@erin:test.local', 403, 'user_banned', 'M_BAD_STATE'],
    ['blocked room', RECORDED_ROOMS.blocked, '@alice:test.local', 403, 'room_blocked', 'M_UNKNOWN'],
    ['room v12 ID that this Synapse does not accept', '!nocolon', '@alice:test.local', 400, 'invalid_room', 'M_UNKNOWN']
  ]
  for (const [what, room, user, status, code, errcode] of cases) {
    const res = await h.join(enc(room), { user_id: user })
    t.equal(res.status, status, what)
    t.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8', `${what}: problem+json`)
    t.match(res.body, { status, code, matrix_errcode: errcode, type: `urn:synapse-admin-gateway:problem:${code}`, request_id: res.headers['x-request-id'] }, what)
    t.type(res.body.title, 'string')
    t.type(res.body.detail, 'string')
    const entry = h.audit().at(-1)
    t.match(entry, { outcome: 'failed', code, status, request_id: res.headers['x-request-id'], upstream: { matrix_errcode: errcode } }, `${what}: audited`)
  }
  t.equal(h.audit().length, cases.length, 'one audit entry per attempt')
})

t.test('invite-only rooms work once the admin can invite, and a pending invite is honoured', async (t) => {
  const h = await startHarness(t)
  t.equal((await h.join(enc(RECORDED_ROOMS.privateAdmin), { user_id: '@kim:test.local' })).status, 200, 'pending invite')
  t.equal((await h.join(enc(RECORDED_ROOMS.privateAdmin), { user_id: '@frank:test.local' })).status, 200, 'left before')
  h.homeserver.state.rooms.get(RECORDED_ROOMS.bobPrivate)?.powerLevels.set('@admin:test.local', 100)
  t.equal((await h.join(enc(RECORDED_ROOMS.bobPrivate), { user_id: '@ivan:test.local' })).status, 200, 'after power raised')
})

t.test('remote aliases: refused unless ALLOW_REMOTE_ROOMS, then Synapse\'s federation failure is a 502', async (t) => {
  const closed = await startHarness(t)
  const refused = await closed.join('%23foo:other.example', { user_id: '@alice:test.local' })
  t.equal(refused.status, 400)
  t.equal(refused.body.code, 'room_not_local')
  t.equal(closed.homeserver.calls.length, 0)
  t.match(closed.audit()[0], { outcome: 'invalid', code: 'room_not_local' })

  const open = await startHarness(t, { env: { ALLOW_REMOTE_ROOMS: 'true' } })
  const failed = await open.join('%23foo:other.example', { user_id: '@alice:test.local' })
  t.equal(failed.status, 502)
  t.match(failed.body, { code: 'upstream_error', matrix_errcode: 'M_UNKNOWN' })
})

t.test('Synapse faults become 502/503/504 with the right outcome', async (t) => {
  const h = await startHarness(t, { env: { SYNAPSE_TIMEOUT_MS: '300' } })
  const room = enc(RECORDED_ROOMS.publicTest)
  const user = { user_id: '@alice:test.local' }

  h.homeserver.fault = { kind: 'error-500' }
  let res = await h.join(room, user)
  t.match(res.body, { status: 502, code: 'upstream_error', matrix_errcode: 'M_UNKNOWN' })

  h.homeserver.fault = { kind: 'not-json' }
  res = await h.join(room, user)
  t.match(res.body, { status: 502, code: 'upstream_error' })
  t.notMatch(res.text, /html/i, 'the proxy page is not passed on')

  h.homeserver.fault = { kind: 'rate-limited' }
  res = await h.join(room, user)
  t.match(res.body, { status: 429, code: 'rate_limited', matrix_errcode: 'M_LIMIT_EXCEEDED' })
  t.equal(res.headers['retry-after'], '3')
  t.match(h.audit().at(-1), { outcome: 'failed', code: 'rate_limited' }, 'Synapse\'s 429 is not the gateway denying')

  h.homeserver.fault = { kind: 'reject-token' }
  res = await h.join(room, user)
  t.match(res.body, { status: 502, code: 'upstream_auth_failed' })
  t.match(h.logs(), /Synapse rejected the admin token/, 'the operator is told, at error level')

  h.homeserver.fault = { kind: 'hang', on: 'join' }
  res = await h.join(room, user)
  t.match(res.body, { status: 504, code: 'upstream_timeout' })
  t.match(h.audit().at(-1), { outcome: 'unknown', code: 'upstream_timeout', upstream: { call: 'join', status: null } }, 'the join may have happened')

  h.homeserver.fault = { kind: 'hang-body', on: 'join' }
  res = await h.join(room, user)
  t.match(res.body, { status: 504, code: 'upstream_timeout' })

  h.homeserver.fault = { kind: 'hang', on: 'user_lookup' }
  res = await h.join(room, user)
  t.match(res.body, { status: 504, code: 'upstream_timeout' })
  t.match(h.audit().at(-1), { outcome: 'failed' }, 'a lookup that timed out changed nothing')

  h.homeserver.fault = { kind: 'reset', on: 'join' }
  res = await h.join(room, user)
  t.match(res.body, { status: 502, code: 'upstream_error' })
  t.match(h.audit().at(-1), { outcome: 'unknown' })

  h.homeserver.fault = { kind: 'slow', delayMs: 50 }
  res = await h.join(room, user)
  t.equal(res.status, 200, 'slow but within the timeout')
})

t.test('Synapse down: 503 upstream_unavailable with Retry-After, no internal address in the body', async (t) => {
  const port = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number }
      probe.close(() => resolve(port))
    })
  })
  const h = await startHarness(t, { synapseUrl: `http://127.0.0.1:${port}` })
  const res = await h.join(enc(RECORDED_ROOMS.publicTest), { user_id: '@alice:test.local' })
  t.equal(res.status, 503)
  t.equal(res.body.code, 'upstream_unavailable')
  t.equal(res.headers['retry-after'], '5')
  t.notMatch(res.text, /127\.0\.0\.1|ECONNREFUSED/)
  t.match(h.audit()[0], { outcome: 'failed', code: 'upstream_unavailable', upstream: { call: 'user_lookup', status: null } })
})

t.test('a trailing slash on SYNAPSE_URL is harmless', async (t) => {
  const h = await startHarness(t, { synapseUrl: 'placeholder' }).catch(() => undefined)
  t.equal(h, undefined, 'a SYNAPSE_URL that is not a URL is refused at start')
  const base = await startHarness(t)
  const slashed = await startHarness(t, { synapseUrl: `${base.homeserverUrl}/` })
  const res = await slashed.join(enc(RECORDED_ROOMS.publicTest), { user_id: '@alice:test.local' })
  t.equal(res.status, 200)
  t.ok(base.homeserver.calls.every((call) => !call.url.startsWith('//')))
})

t.test('answers Synapse might give beyond the recordings still map to clear codes', async (t) => {
  const h = await startHarness(t)
  const room = enc(RECORDED_ROOMS.publicTest)
  const cases: Array<[string, 'join' | 'user_lookup', number, unknown, number, string]> = [
    ['a 200 join without room_id', 'join', 200, { ok: true }, 502, 'upstream_error'],
    ['a JSON array', 'join', 200, ['x'], 502, 'upstream_error'],
    ['another 403', 'join', 403, { errcode: 'M_FORBIDDEN', error: 'Something new' }, 403, 'synapse_forbidden'],
    ['the admin token is not an admin\'s', 'join', 403, { errcode: 'M_FORBIDDEN', error: 'You are not a server admin' }, 502, 'upstream_auth_failed'],
    ['a non-local user', 'join', 400, { errcode: 'M_UNKNOWN', error: 'This endpoint can only be used with local users' }, 400, 'user_not_local'],
    ['a user ID Synapse refuses', 'join', 400, { errcode: 'M_INVALID_PARAM', error: 'Expected UserID string to start with \'@\'' }, 400, 'invalid_user_id'],
    ['an unknown 400', 'join', 400, { errcode: 'M_BAD_JSON', error: 'Content must be a JSON object.' }, 502, 'upstream_error'],
    ['user not found at join time', 'join', 404, { errcode: 'M_NOT_FOUND', error: 'User not found' }, 404, 'user_not_found'],
    ['a 429 without Retry-After header', 'join', 429, { errcode: 'M_LIMIT_EXCEEDED', error: 'Too Many Requests', retry_after_ms: 4602 }, 429, 'rate_limited'],
    ['a 429 without any delay', 'join', 429, { errcode: 'M_LIMIT_EXCEEDED', error: 'Too Many Requests' }, 429, 'rate_limited'],
    ['lookup of a non-local user', 'user_lookup', 400, { errcode: 'M_UNKNOWN', error: 'Can only look up local users' }, 400, 'user_not_local'],
    ['a lookup answer we do not know', 'user_lookup', 418, { errcode: 'M_TEAPOT', error: 'no' }, 502, 'upstream_error']
  ]
  for (const [what, on, status, body, expectedStatus, code] of cases) {
    h.homeserver.fault = { kind: 'answer', on, status, body }
    const res = await h.join(room, { user_id: '@alice:test.local' })
    t.equal(res.status, expectedStatus, what)
    t.equal(res.body.code, code, what)
    // A 2xx that is not Synapse's answer may hide a join that happened: its outcome is unknown.
    const outcome = on === 'join' && status === 200 ? 'unknown' : 'failed'
    t.match(h.audit().at(-1), { outcome, code }, `${what}: audited as ${outcome}`)
  }
  h.homeserver.fault = { kind: 'answer', on: 'join', status: 429, body: { errcode: 'M_LIMIT_EXCEEDED', retry_after_ms: 4602 } }
  t.equal((await h.join(room, { user_id: '@alice:test.local' })).headers['retry-after'], '5', 'retry_after_ms rounded up to seconds')

  // Synapse's answers are validated before they are believed.
  const joinsBefore = h.homeserver.callsTo('join').length
  for (const deactivated of ['0', null, 'false', 2]) {
    h.homeserver.fault = { kind: 'answer', on: 'user_lookup', status: 200, body: { name: '@alice:test.local', deactivated } }
    const res = await h.join(room, { user_id: '@alice:test.local' })
    t.equal(res.body.code, 'upstream_error', `a lookup whose deactivated is ${JSON.stringify(deactivated)} is not believed`)
  }
  h.homeserver.fault = { kind: 'answer', on: 'directory', status: 200, body: { room_id: '!bad room id:test.local', servers: ['test.local'] } }
  const badRoom = await h.join('%23private-admin:test.local', { user_id: '@gina:test.local' })
  t.equal(badRoom.body.code, 'upstream_error', 'a malformed room_id from the directory is not passed on')
  t.equal(h.homeserver.callsTo('join').length, joinsBefore, 'none of these reached the join')
})
