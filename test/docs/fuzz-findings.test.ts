/**
 * What the schemathesis fuzzing (scripts/fuzz/run.sh, docs/fuzzing.md) found, fixed, each
 * reproduced over HTTP against the gateway in front of the simulated homeserver.
 */
import t from 'tap'
import { enc, startActionHarness, stateOf } from '../helpers/actions.js'

t.test('promote into a room version 12 ID that Synapse 1.67 does not accept: 400 invalid_room, as the join answers, not 502', async (t) => {
  const h = await startActionHarness(t)
  const before = stateOf(h.homeserver)
  const res = await h.call('POST', `/v1/rooms/${enc('!roomVersion12WithoutServer')}/admins`, { body: { user_id: '@alice:test.local' } })
  t.equal(res.status, 400, res.text)
  t.match(res.body, { status: 400, code: 'invalid_room', matrix_errcode: 'M_UNKNOWN', request_id: res.requestId })
  t.match(res.body.detail, /Synapse does not accept this room ID/)
  t.same(h.homeserver.calls.map((call) => call.endpoint), ['user_lookup', 'make_room_admin'])
  t.equal(stateOf(h.homeserver), before, 'nothing changed')
  t.match(h.recordsOf(res.requestId), [
    { event: 'intent', action: 'room.promote' },
    { event: 'result', outcome: 'failed', code: 'invalid_room', status: 400, upstream: { call: 'make_room_admin', status: 400, matrix_errcode: 'M_UNKNOWN' } }
  ])
})

t.test('F2: a method a URL does not take is 405 method_not_allowed with Allow, not 404 (RFC 9110, 15.5.6)', async (t) => {
  const h = await startActionHarness(t)
  const urls: Array<[string, string, string[]]> = [
    ['/healthz', 'GET', ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE']],
    ['/readyz', 'GET', ['POST', 'DELETE', 'TRACE']],
    ['/v1/me', 'GET', ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE']],
    ['/v1/batch', 'POST', ['GET', 'HEAD', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE']],
    [`/v1/rooms/${enc('#public-test:test.local')}/members`, 'POST, GET', ['TRACE']]
  ]
  for (const [url, allow, methods] of urls) {
    for (const method of methods) {
      const res = await h.app.inject({ method: method as 'GET', url })
      t.equal(res.statusCode, 405, `${method} ${url}`)
      t.equal(res.headers.allow, allow, `${method} ${url}: Allow`)
      if (method !== 'HEAD') t.equal(res.json().code, 'method_not_allowed')
    }
  }
  t.equal((await h.app.inject({ method: 'HEAD', url: '/healthz' })).statusCode, 200, 'HEAD comes with GET')
  t.equal((await h.app.inject({ method: 'GET', url: '/v1/nothing' })).statusCode, 404, 'an unknown URL is still 404')
})
