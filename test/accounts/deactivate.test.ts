/**
 * user.deactivate (POST /v1/users/{userId}/deactivate) against the simulated homeserver as
 * Synapse 1.163.2 and 1.67.0 (x1–x14): deactivation with and without erase, safe repeats, and its
 * own timeout (SYNAPSE_DEACTIVATE_TIMEOUT_MS): `unknown` when it runs out, then a safe repeat.
 */
import t from 'tap'
import { ACTION_USERS } from '../../dev/homeserver/state.js'
import { SYNAPSE_VERSIONS, startAccountHarness, userPath } from '../helpers/accounts.js'
import { callsSince } from '../helpers/actions.js'
import { waitFor } from '../helpers/wait.js'

const deactivate = (user: string, query = '') => userPath(user, `/deactivate${query}`)

for (const version of SYNAPSE_VERSIONS) {
  t.test(`${version}: deactivate, then a repeat answers changed false without calling Synapse (x1–x3)`, async (t) => {
    const h = await startAccountHarness(t, version)
    const jill = h.newUser('jill')
    const res = await h.call('POST', deactivate(jill), { body: { reason: 'HR-4: left the company' } })
    t.equal(res.status, 200, res.text)
    t.same(res.body, { user_id: jill, erased: false, changed: true })
    t.equal(h.user(jill).deactivated, true)
    t.equal(h.user(jill).displayname, undefined, 'not erased: the profile stays')
    t.same(JSON.parse(h.homeserver.callsTo('deactivate')[0]?.body ?? ''), { erase: false })
    t.match(h.recordsOf(res.requestId), [{ event: 'intent', action: 'user.deactivate', reason: 'HR-4: left the company' }, { event: 'result', outcome: 'success', upstream: { call: 'deactivate', status: 200 } }])
    const from = h.homeserver.calls.length
    const again = await h.call('POST', deactivate(jill))
    t.same(again.body, { user_id: jill, erased: false, changed: false })
    t.same(callsSince(h.homeserver, from), ['user_lookup'])
  })

  t.test(`${version}: erase removes the profile (x7, x8); erasing an already deactivated user (x10, x11)`, async (t) => {
    const h = await startAccountHarness(t, version)
    const jill = h.newUser('jill')
    const res = await h.call('POST', deactivate(jill), { body: { erase: true } })
    t.same(res.body, { user_id: jill, erased: true, changed: true })
    t.equal(h.user(jill).displayname, null, 'the display name is gone')
    const repeat = await h.call('POST', deactivate(jill), { body: { erase: true } })
    // 1.163 reports `erased`: nothing left to do. 1.67 does not: the erase is asked again (Synapse accepts it, x10).
    t.same(repeat.body, { user_id: jill, erased: true, changed: version === '1.67.0' })
    t.equal(h.homeserver.callsTo('deactivate').length, version === '1.67.0' ? 2 : 1)
    const dave = await h.call('POST', deactivate(ACTION_USERS.deactivated), { body: { erase: true } })
    t.same(dave.body, { user_id: ACTION_USERS.deactivated, erased: true, changed: true }, 'a deactivated user not yet erased is erased')
  })

  t.test(`${version}: protected, unknown and remote users are refused; dry runs predict and change nothing`, async (t) => {
    const h = await startAccountHarness(t, version)
    const boss = h.newUser('boss', { admin: true })
    for (const [user, status, code] of [[ACTION_USERS.admin, 403, 'protected_target'], [boss, 403, 'protected_target'], [ACTION_USERS.unknown, 404, 'user_not_found'], ['@x:elsewhere.example', 400, 'user_not_local']] as const) {
      const res = await h.call('POST', deactivate(user), { body: { erase: true } })
      t.equal(res.status, status, `${user}: ${res.text}`)
      t.equal(res.body.code, code)
    }
    const jill = h.newUser('jill')
    const dry = await h.call('POST', deactivate(jill, '?dry_run=true'))
    t.match(dry.body, { dry_run: true, would_succeed: true, checks: [{ name: 'user_exists' }, { name: 'not_protected' }, { name: 'not_deactivated_yet', detail: 'The user is active.' }] })
    const settled = await h.call('POST', deactivate(ACTION_USERS.deactivated, '?dry_run=true'))
    t.match(settled.body, { would_succeed: true, checks: [{}, {}, { name: 'not_deactivated_yet', detail: 'The user is already deactivated: nothing would change.' }] })
    t.equal(h.homeserver.callsTo('deactivate').length, 0)
    t.equal(h.user(jill).deactivated, false)
  })
}

t.test('deactivation has its own timeout, longer than SYNAPSE_TIMEOUT_MS', async (t) => {
  const h = await startAccountHarness(t, '1.163.2', { SYNAPSE_TIMEOUT_MS: '300', SYNAPSE_DEACTIVATE_TIMEOUT_MS: '5000' })
  const jill = h.newUser('jill')
  h.homeserver.fault = { kind: 'slow', on: 'deactivate', delayMs: 1000 }
  const res = await h.call('POST', deactivate(jill))
  t.equal(res.status, 200, `a second-long deactivation outlasts SYNAPSE_TIMEOUT_MS (300 ms): ${res.text}`)
  t.same(res.body, { user_id: jill, erased: false, changed: true })
})

t.test('when the deactivation timeout runs out: 504 with outcome unknown; a repeat is safe and says changed false once Synapse has finished', async (t) => {
  const h = await startAccountHarness(t, '1.67.0', { SYNAPSE_TIMEOUT_MS: '300', SYNAPSE_DEACTIVATE_TIMEOUT_MS: '600' })
  const jill = h.newUser('jill')
  h.homeserver.fault = { kind: 'slow', on: 'deactivate', delayMs: 1500 }
  const res = await h.call('POST', deactivate(jill), { body: { reason: 'HR-5' } })
  t.equal(res.status, 504, res.text)
  t.equal(res.body.code, 'upstream_timeout')
  t.match(h.recordsOf(res.requestId), [{ event: 'intent' }, { event: 'result', outcome: 'unknown', code: 'upstream_timeout' }])
  await waitFor(() => h.user(jill).deactivated, 'Synapse to finish the deactivation')
  const again = await h.call('POST', deactivate(jill), { body: { reason: 'HR-5' } })
  t.equal(again.status, 200, again.text)
  t.same(again.body, { user_id: jill, erased: false, changed: false })
  t.equal(h.homeserver.callsTo('deactivate').length, 1, 'the repeat did not deactivate again')
})
