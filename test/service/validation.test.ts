/**
 * Bad input gets a clear problem+json 4xx, an audit entry with outcome `invalid`, and never
 * reaches Synapse.
 */
import t from 'tap'
import { request } from 'undici'
import { RECORDED_ROOMS } from '../../dev/homeserver/state.js'
import { startHarness } from '../helpers/harness.js'

const room = encodeURIComponent(RECORDED_ROOMS.publicTest)

t.test('bodies that are not a JSON object with a string user_id are invalid_body', async (t) => {
  const h = await startHarness(t)
  const bodies: Array<[string, string]> = [
    ['not JSON', 'user_id=@alice:test.local'],
    ['JSON with trailing garbage', '{"user_id":"@alice:test.local"}xyz'],
    ['NaN', '{"user_id":"@alice:test.local","x":NaN}'],
    ['an array', '["@alice:test.local"]'],
    ['a string', '"@alice:test.local"'],
    ['null', 'null'],
    ['missing user_id', '{}'],
    ['user_id a number (Synapse answers 500)', '{"user_id":123}'],
    ['user_id null', '{"user_id":null}'],
    ['user_id an array (never coerced)', '{"user_id":["@alice:test.local"]}'],
    ['user_id an object', '{"user_id":{"id":"@alice:test.local"}}'],
    ['user_id true', '{"user_id":true}'],
    ['an unknown field (never silently dropped)', '{"user_id":"@alice:test.local","note":"x"}'],
    ['a __proto__ key', '{"user_id":"@alice:test.local","__proto__":{"admin":true}}'],
    ['a constructor.prototype key', '{"user_id":"@alice:test.local","constructor":{"prototype":{"admin":true}}}']
  ]
  for (const [what, rawBody] of bodies) {
    const res = await h.join(room, undefined, { rawBody })
    t.equal(res.status, 400, what)
    t.equal(res.body?.code, 'invalid_body', what)
  }
  const empty = await h.join(room, undefined, { rawBody: '' })
  t.equal(empty.body.code, 'invalid_body', 'an empty body')
  t.equal(({} as Record<string, unknown>).admin, undefined, 'no prototype pollution')
  t.equal(h.homeserver.calls.length, 0, 'Synapse never called')
  t.equal(h.audit().length, bodies.length + 1)
  t.ok(h.audit().every((entry) => entry.outcome === 'invalid' && entry.code === 'invalid_body' && entry.status === 400))
})

t.test('user IDs follow the Matrix grammar; other servers are user_not_local', async (t) => {
  const h = await startHarness(t)
  const invalid = ['alice', '', '@alice', '@:test.local', ' @alice:test.local', '@alice:test.local ', '@al ice:test.local',
    '@alice:test.local\n', '@ali\u0000ce:test.local', '@ali\u202Ece:test.local', '@alice:bad_host!',
    `@${'a'.repeat(244)}:test.local`]
  for (const userId of invalid) {
    const res = await h.join(room, { user_id: userId })
    t.equal(res.body?.code, 'invalid_user_id', JSON.stringify(userId))
  }
  for (const userId of ['@carol:other.example', '@alice:TEST.LOCAL', '@alice:test.local:8448']) {
    const res = await h.join(room, { user_id: userId })
    t.equal(res.status, 400)
    t.equal(res.body.code, 'user_not_local', userId)
  }
  t.equal(h.homeserver.calls.length, 0)
  // 255 bytes exactly is a valid ID (Synapse then says whether the user exists).
  const longest = `@${'a'.repeat(243)}:test.local`
  t.equal(Buffer.byteLength(longest), 255)
  t.equal((await h.join(room, { user_id: longest })).body.code, 'user_not_found')
})

t.test('room IDs and aliases follow the Matrix grammar; the segment is decoded exactly once', async (t) => {
  const h = await startHarness(t)
  const cases: Array<[string, string]> = [
    ['notaroom', 'plain word'],
    ['%21', 'a bare !'],
    ['%23nocolon', 'an alias without server'],
    ['%2523public-test:test.local', 'a double-encoded # is not decoded twice'],
    ['%20!zfjAIbbHHrGJMZdmwr:test.local', 'leading space'],
    ['!abc%00:test.local', 'NUL'],
    ['%23a%0Ab:test.local', 'newline in an alias'],
    ['%23a%E2%80%AEb:test.local', 'RTL override in an alias'],
    [`%23${'a'.repeat(245)}:test.local`, 'an alias over 255 bytes']
  ]
  for (const [segment, what] of cases) {
    const res = await h.join(segment, { user_id: '@alice:test.local' })
    t.equal(res.status, 400, what)
    t.equal(res.body?.code, 'invalid_room', what)
  }
  t.equal(h.homeserver.calls.length, 0)
  t.ok(h.audit().every((entry) => entry.outcome === 'invalid' && entry.code === 'invalid_room'))

  // 255 bytes exactly is accepted and resolved, re-encoded once; '/' inside an alias survives.
  const alias = `#${'a'.repeat(243)}:test.local`
  t.equal(Buffer.byteLength(alias), 255)
  const longest = await h.join(encodeURIComponent(alias), { user_id: '@alice:test.local' })
  t.equal(longest.body.code, 'room_not_found')
  const slashed = await h.join('%23a%2Fb:test.local', { user_id: '@alice:test.local' })
  t.equal(slashed.body.code, 'room_not_found')
  t.equal(h.homeserver.callsTo('directory').at(-1)?.url, '/_matrix/client/v3/directory/room/%23a%2Fb%3Atest.local')
  const unicode = await h.join(encodeURIComponent('#café:test.local'), { user_id: '@alice:test.local' })
  t.equal(unicode.body.code, 'room_not_found', 'non-ASCII aliases are legal')
  t.equal(h.homeserver.callsTo('directory').at(-1)?.url, '/_matrix/client/v3/directory/room/%23caf%C3%A9%3Atest.local')
  const v12 = await h.join('!' + 'A'.repeat(43), { user_id: '@alice:test.local' })
  t.equal(v12.body.code, 'invalid_room', 'a room v12 ID is forwarded (this Synapse 1.67 refuses it)')
  t.equal(h.homeserver.callsTo('join').at(-1)?.url, `/_synapse/admin/v1/join/!${'A'.repeat(43)}`)
})

t.test('an empty room segment or an unencoded # gets a hint about %23', async (t) => {
  const h = await startHarness(t)
  for (const path of ['/v1/rooms//members', '/v1/rooms/']) {
    const res = await request(`${h.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${h.token()}`, 'content-type': 'application/json' }, body: '{"user_id":"@alice:test.local"}' })
    const body = await res.body.json() as Record<string, string>
    t.equal(res.statusCode, path === '/v1/rooms//members' ? 400 : 404, path)
    t.match(body.detail, /%23/, `${path}: hint`)
  }
})

t.test('JSON only: other media types are 415, large bodies 413', async (t) => {
  const h = await startHarness(t)
  const json = '{"user_id":"@alice:test.local"}'
  for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonx']) {
    const res = await h.join(room, undefined, { rawBody: json, headers: { 'content-type': type } })
    t.equal(res.status, 415, type)
    t.equal(res.body.code, 'unsupported_media_type', type)
    t.match(res.body.detail, /--json/)
  }
  const withParameters = await h.join(room, undefined, { rawBody: json, headers: { 'content-type': 'application/json; charset=utf-8; foo=bar' } })
  t.equal(withParameters.status, 200, 'parameters on application/json are fine')
  const junkWithParameters = await h.join(room, undefined, { rawBody: 'nope', headers: { 'content-type': 'application/json; charset=utf-8' } })
  t.equal(junkWithParameters.status, 400)
  const big = await h.join(room, undefined, { rawBody: JSON.stringify({ user_id: '@alice:test.local', pad: 'x'.repeat(5000) }) })
  t.equal(big.status, 413)
  t.equal(big.body.code, 'payload_too_large')
  t.match(h.audit().at(-1), { outcome: 'invalid', code: 'payload_too_large', status: 413 })
  const noType = await request(`${h.url}/v1/rooms/${room}/members`, { method: 'POST', headers: { authorization: `Bearer ${h.token()}` }, body: json })
  t.equal(noType.statusCode, 415, 'no Content-Type at all')
  await noType.body.dump()
})

t.test('other methods on the action route are 405 with Allow; unknown routes 404; bad encodings 400', async (t) => {
  const h = await startHarness(t)
  for (const method of ['PUT', 'PATCH']) {
    const res = await request(`${h.url}/v1/rooms/${room}/members`, { method })
    t.equal(res.statusCode, 405, method)
    t.equal(res.headers.allow, 'POST, GET')
    t.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8')
    await res.body.dump()
  }
  const unknown = await request(`${h.url}/v2/nothing?access_token=abc`)
  t.equal(unknown.statusCode, 404)
  const body = await unknown.body.json() as Record<string, string>
  t.equal(body.code, 'not_found')
  t.notMatch(body.detail, /access_token/, 'the query string is not echoed')
  const badEncoding = await request(`${h.url}/v1/rooms/%E0%A4%A/members`, { method: 'POST', headers: { authorization: `Bearer ${h.token()}`, 'content-type': 'application/json' }, body: '{}' })
  t.equal(badEncoding.statusCode, 400)
  t.match(badEncoding.headers['x-request-id'], /^[0-9a-f-]{36}$/)
  t.equal((await badEncoding.body.json() as Record<string, string>).code, 'invalid_request')
  t.equal(h.homeserver.calls.length, 0)
})

t.test('x-request-id: a sane one is echoed, anything else replaced', async (t) => {
  const h = await startHarness(t)
  const sane = await request(`${h.url}/healthz`, { headers: { 'x-request-id': 'abc-123' } })
  t.equal(sane.headers['x-request-id'], 'abc-123')
  await sane.body.dump()
  for (const bad of ['x'.repeat(200), 'a b', 'a"}{']) {
    const res = await request(`${h.url}/healthz`, { headers: { 'x-request-id': bad } })
    t.match(res.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'replaced by a UUID')
    await res.body.dump()
  }
  t.notMatch(h.logs(), /a"\}\{/, 'the raw value is never logged')
})
