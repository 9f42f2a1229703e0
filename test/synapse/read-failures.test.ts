/**
 * A read that Synapse fails to answer changed nothing, and its problem says so; only an acting
 * call that was sent leaves the caller in doubt ("may or may not have happened").
 */
import t from 'tap'
import { ACTION_ROOMS, ACTION_USERS } from '../../dev/homeserver/state.js'
import { enc, startActionHarness, stateOf } from '../helpers/actions.js'

const reads = [
  { action: 'room.members.read', path: `/v1/rooms/${enc(ACTION_ROOMS.kickPublic)}/members`, on: 'room_members' },
  { action: 'user.read', path: `/v1/users/${enc(ACTION_USERS.sue)}`, on: 'user_lookup' }
] as const

for (const read of reads) {
  t.test(`${read.action}: a broken connection or a timeout answers that nothing was changed`, async (t) => {
    const h = await startActionHarness(t, { env: { SYNAPSE_TIMEOUT_MS: '300' } })
    const before = stateOf(h.homeserver)
    for (const [kind, status, code] of [['reset', 502, 'upstream_error'], ['hang', 504, 'upstream_timeout']] as const) {
      h.homeserver.fault = { kind, on: read.on }
      const answer = await h.call('GET', read.path)
      t.equal(answer.status, status, kind)
      t.equal(answer.body.code, code, kind)
      t.notMatch(answer.body.detail, /may or may not/, `${kind}: no doubt is cast on a read`)
      t.match(answer.body.detail, /nothing was changed; retry later/, `${kind}: says what is true`)
      t.match(h.recordsOf(answer.requestId).find((record) => record.event === 'result'), { outcome: 'failed' })
    }
    t.equal(stateOf(h.homeserver), before)
  })
}

t.test('a join whose call broke after it was sent still says the action may or may not have happened', async (t) => {
  const h = await startActionHarness(t)
  h.homeserver.fault = { kind: 'reset', on: 'join' }
  const answer = await h.call('POST', `/v1/rooms/${enc(ACTION_ROOMS.kickPublic)}/members`, { body: { user_id: ACTION_USERS.sue } })
  t.equal(answer.status, 502)
  t.match(answer.body.detail, /may or may not have happened/)
  t.match(h.recordsOf(answer.requestId).find((record) => record.event === 'result'), { outcome: 'unknown' })
})
