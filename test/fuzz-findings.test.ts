/**
 * What the schemathesis fuzzing (scripts/fuzz/run.sh, docs/fuzzing.md) found, fixed, each
 * reproduced over HTTP against the gateway in front of the simulated homeserver.
 */
import t from 'tap'
import { enc, startActionHarness, stateOf } from './helpers/actions.js'

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
