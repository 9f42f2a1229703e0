/**
 * user.suspend and user.unsuspend (PUT / DELETE /v1/users/{userId}/suspension) against the
 * simulated homeserver as Synapse 1.163.2 (s1–s11) and 1.67.0 (no suspension endpoint: 501
 * not_supported_by_synapse, nothing sent).
 */
import t from 'tap'
import { ACTION_USERS } from '../../dev/homeserver/state.js'
import { startAccountHarness, userPath } from '../helpers/accounts.js'
import { callsSince } from '../helpers/actions.js'

const suspension = (user: string, query = '') => userPath(user, `/suspension${query}`)

t.test('1.163.2: suspend, repeat (changed false), unsuspend, repeat (s1, s2, s5)', async (t) => {
  const h = await startAccountHarness(t, '1.163.2')
  const jill = h.newUser('jill')
  const res = await h.call('PUT', suspension(jill), { body: { reason: 'T&S-12: spam' } })
  t.equal(res.status, 200, res.text)
  t.same(res.body, { user_id: jill, suspended: true, changed: true })
  t.equal(h.user(jill).suspended, true)
  t.same(JSON.parse(h.homeserver.callsTo('suspend')[0]?.body ?? ''), { suspend: true })
  t.match(h.recordsOf(res.requestId), [{ event: 'intent', action: 'user.suspend', reason: 'T&S-12: spam' }, { event: 'result', outcome: 'success', upstream: { call: 'user_suspend', status: 200 } }])

  const from = h.homeserver.calls.length
  t.same((await h.call('PUT', suspension(jill))).body, { user_id: jill, suspended: true, changed: false })
  t.same(callsSince(h.homeserver, from), ['user_lookup'])
  t.same((await h.call('DELETE', suspension(jill))).body, { user_id: jill, suspended: false, changed: true })
  t.equal(h.user(jill).suspended, false)
  t.same((await h.call('DELETE', suspension(jill))).body, { user_id: jill, suspended: false, changed: false })
  t.equal(h.homeserver.callsTo('suspend').length, 2)
})

t.test('1.67.0: 501 not_supported_by_synapse, nothing sent, predicted by the dry run (s1)', async (t) => {
  const h = await startAccountHarness(t, '1.67.0')
  const jill = h.newUser('jill')
  for (const method of ['PUT', 'DELETE'] as const) {
    const res = await h.call(method, suspension(jill))
    t.equal(res.status, 501, res.text)
    t.equal(res.body.code, 'not_supported_by_synapse')
    t.match(res.body.detail, /Synapse 1\.121\.0 or later/)
    t.equal(h.recordsOf(res.requestId).length, 1, 'no intent record')
  }
  t.equal(h.homeserver.callsTo('suspend').length, 0)
  const dry = await h.call('PUT', suspension(jill, '?dry_run=true'))
  t.match(dry.body, { dry_run: true, would_succeed: false, code: 'not_supported_by_synapse' })
})

t.test('a Synapse that answers M_UNRECOGNIZED although its version should have the endpoint: 501, outcome failed', async (t) => {
  const h = await startAccountHarness(t, '1.163.2')
  const jill = h.newUser('jill')
  h.homeserver.fault = { kind: 'answer', on: 'suspend', status: 404, body: { errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' } }
  const res = await h.call('PUT', suspension(jill))
  t.equal(res.status, 501, res.text)
  t.equal(res.body.code, 'not_supported_by_synapse')
  t.match(h.recordsOf(res.requestId), [{ event: 'intent' }, { event: 'result', outcome: 'failed', code: 'not_supported_by_synapse' }])
})

for (const version of ['1.163.2', '1.67.0'] as const) {
  t.test(`${version}: unknown, remote, protected and deactivated users are refused`, async (t) => {
    const h = await startAccountHarness(t, version)
    const boss = h.newUser('boss', { admin: true })
    const cases: Array<[string, number, string]> = [
      [ACTION_USERS.unknown, 404, 'user_not_found'],
      [ACTION_USERS.admin, 403, 'protected_target'],
      [boss, 403, 'protected_target'],
      [ACTION_USERS.deactivated, 409, 'user_deactivated']
    ]
    for (const [user, status, code] of cases) {
      const res = await h.call('PUT', suspension(user))
      t.equal(res.status, version === '1.67.0' ? 501 : status, `${user}: ${res.text}`)
      t.equal(res.body.code, version === '1.67.0' ? 'not_supported_by_synapse' : code, user)
    }
    const remote = await h.call('PUT', suspension('@jill:elsewhere.example'))
    t.equal(remote.body.code, 'user_not_local')
    t.equal(h.homeserver.callsTo('suspend').length, 0)
  })
}
