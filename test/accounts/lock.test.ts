/**
 * user.lock and user.unlock (PUT / DELETE /v1/users/{userId}/lock) against the simulated
 * homeserver as Synapse 1.163.2 (locks, l1–l10) and 1.67.0 (accepts `locked` and ignores it:
 * 501 not_supported_by_synapse before anything is sent).
 */
import t from 'tap'
import { ACTION_USERS } from '../../dev/homeserver/state.js'
import { startAccountHarness, userPath } from '../helpers/accounts.js'
import { callsSince } from '../helpers/actions.js'

const lock = (user: string, query = '') => userPath(user, `/lock${query}`)

t.test('1.163.2: lock, repeat (changed false), unlock, repeat; the lock holds in Synapse (l1, l2, l5, l6)', async (t) => {
  const h = await startAccountHarness(t, '1.163.2')
  const jill = h.newUser('jill')
  const locked = await h.call('PUT', lock(jill), { body: { reason: 'HD-7: phone stolen' } })
  t.equal(locked.status, 200, locked.text)
  t.same(locked.body, { user_id: jill, locked: true, changed: true })
  t.equal(h.user(jill).locked, true, 'Synapse holds the lock')
  const put = h.homeserver.callsTo('user_update')
  t.equal(put.length, 1)
  t.same(JSON.parse(put[0]?.body ?? ''), { locked: true }, 'only the lock is sent')
  const [intent, result] = h.recordsOf(locked.requestId)
  t.match(intent, { event: 'intent', action: 'user.lock', reason: 'HD-7: phone stolen', target: { user_id: jill } })
  t.match(result, { event: 'result', action: 'user.lock', outcome: 'success', status: 200, upstream: { call: 'user_lock', status: 200 } })

  const from = h.homeserver.calls.length
  const again = await h.call('PUT', lock(jill))
  t.same(again.body, { user_id: jill, locked: true, changed: false })
  t.same(callsSince(h.homeserver, from), ['user_lookup'], 'nothing is sent for a lock that holds')
  t.equal(h.recordsOf(again.requestId).length, 1, 'no intent record: nothing changed')

  const unlocked = await h.call('DELETE', lock(jill))
  t.same(unlocked.body, { user_id: jill, locked: false, changed: true })
  t.equal(h.user(jill).locked, false)
  const twice = await h.call('DELETE', lock(jill))
  t.same(twice.body, { user_id: jill, locked: false, changed: false })
  t.equal(h.homeserver.callsTo('user_update').length, 2)
})

t.test('1.67.0: lock and unlock answer 501 not_supported_by_synapse, with nothing sent and no intent record (l1, l3)', async (t) => {
  const h = await startAccountHarness(t, '1.67.0')
  const jill = h.newUser('jill')
  for (const method of ['PUT', 'DELETE'] as const) {
    const res = await h.call(method, lock(jill), { body: { reason: 'HD-7' } })
    t.equal(res.status, 501, res.text)
    t.equal(res.body.code, 'not_supported_by_synapse')
    t.match(res.body.detail, /1\.67\.0.*1\.91\.0/, 'names the running version and the one needed')
    const records = h.recordsOf(res.requestId)
    t.equal(records.length, 1, 'no intent record')
    t.match(records[0], { event: 'result', outcome: 'failed', status: 501, code: 'not_supported_by_synapse' })
  }
  t.equal(h.homeserver.callsTo('user_update').length, 0, 'no PUT reached Synapse')
  t.equal(h.homeserver.callsTo('user_lookup').length, 0, 'refused before even the lookup')
  t.equal(h.homeserver.callsTo('server_version').length, 1, 'the version is asked once and remembered')

  const dry = await h.call('PUT', lock(jill, '?dry_run=true'))
  t.equal(dry.status, 200)
  t.match(dry.body, { dry_run: true, would_succeed: false, code: 'not_supported_by_synapse', checks: [{ name: 'synapse_supports', ok: false }] })
})

for (const version of ['1.163.2', '1.67.0'] as const) {
  t.test(`${version}: unknown, remote and protected users are refused, and never created (l10)`, async (t) => {
    const h = await startAccountHarness(t, version)
    // The version check comes first: on 1.67 every lock is 501 whoever the target.
    const refused = version === '1.67.0' ? { status: 501, code: 'not_supported_by_synapse' } : undefined
    const boss = h.newUser('boss', { admin: true })
    const cases: Array<[string, number, string]> = [
      [ACTION_USERS.unknown, 404, 'user_not_found'],
      ['@jill:elsewhere.example', 400, 'user_not_local'],
      [ACTION_USERS.admin, 403, 'protected_target'],
      [boss, 403, 'protected_target'],
      [ACTION_USERS.deactivated, 409, 'user_deactivated']
    ]
    for (const [user, status, code] of cases) {
      const res = await h.call('PUT', lock(user))
      const expected = user.endsWith('elsewhere.example') || refused === undefined ? { status, code } : refused
      t.equal(res.status, expected.status, `${user}: ${res.text}`)
      t.equal(res.body.code, expected.code, user)
    }
    t.equal(h.homeserver.callsTo('user_update').length, 0, 'nothing sent')
    t.notOk(h.homeserver.state.users.has(ACTION_USERS.unknown), 'the unknown user was not created')
    t.equal(h.user(boss).locked, undefined)
  })
}

t.test('dry runs predict changed, the lock that holds, and protected targets; nothing is sent', async (t) => {
  const h = await startAccountHarness(t, '1.163.2')
  const jill = h.newUser('jill')
  const first = await h.call('PUT', lock(jill, '?dry_run=true'))
  t.same(first.body, {
    dry_run: true,
    would_succeed: true,
    checks: [
      { name: 'synapse_supports', ok: true, detail: 'Synapse 1.163.2 can do this (locking accounts: 1.91.0 or later).' },
      { name: 'user_exists', ok: true, detail: 'The user exists and is active.' },
      { name: 'not_protected', ok: true, detail: 'The user is neither the gateway\'s account nor a server admin.' },
      { name: 'already_locked', ok: true, detail: 'The user is not locked: it would change.' }
    ]
  })
  h.user(jill).locked = true
  const holds = await h.call('PUT', lock(jill, '?dry_run=true'))
  t.match(holds.body, { would_succeed: true, checks: [{}, {}, {}, { name: 'already_locked', detail: 'The user is already locked: nothing would change.' }] })
  const admin = await h.call('DELETE', lock(ACTION_USERS.admin, '?dry_run=true'))
  t.match(admin.body, { would_succeed: false, code: 'protected_target' })
  t.equal(h.homeserver.callsTo('user_update').length, 0)
  t.match(h.recordsOf(first.requestId), [{ event: 'result', outcome: 'dry_run' }])
})

t.test('a batch locks and unlocks through the same checks', async (t) => {
  const h = await startAccountHarness(t, '1.163.2')
  const jill = h.newUser('jill')
  const res = await h.call('POST', '/v1/batch', {
    body: { items: [{ action: 'user.lock', user_id: jill, reason: 'HD-9' }, { action: 'user.lock', user_id: ACTION_USERS.admin }, { action: 'user.unlock', user_id: '@ghost:test.local' }] }
  })
  t.equal(res.status, 200, res.text)
  t.match(res.body.results, [
    { index: 0, status: 200, body: { user_id: jill, locked: true, changed: true } },
    { index: 1, status: 403, body: { code: 'protected_target' } },
    { index: 2, status: 404, body: { code: 'user_not_found' } }
  ])
  t.equal(h.user(jill).locked, true)
})
