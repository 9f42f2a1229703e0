/**
 * user.logout (POST /v1/users/{userId}/logout) against the simulated homeserver as Synapse
 * 1.163.2 and 1.67.0 (the device endpoints answer alike, d1–d10): every device deleted, their
 * access tokens refused afterwards.
 */
import t from 'tap'
import { request } from 'undici'
import { ACTION_USERS } from '../../dev/homeserver/state.js'
import { SYNAPSE_VERSIONS, startAccountHarness, userPath } from '../helpers/accounts.js'
import { callsSince } from '../helpers/actions.js'

const logout = (user: string, query = '') => userPath(user, `/logout${query}`)

for (const version of SYNAPSE_VERSIONS) {
  t.test(`${version}: every device is deleted and the user's tokens stop working; a repeat removes none (d1–d3)`, async (t) => {
    const h = await startAccountHarness(t, version)
    const password = 'jill-password-0123456789'
    const first = h.homeserver.createUser({ localpart: 'jill', password })
    const second = JSON.parse(JSON.stringify(h.homeserver.accounts.login(JSON.stringify({ identifier: { user: first.userId }, password })).body)) as { access_token: string }
    const whoami = async (token: string) => (await request(`${h.homeserverUrl}/_matrix/client/v3/account/whoami`, { headers: { authorization: `Bearer ${token}` } })).statusCode
    t.equal(await whoami(second.access_token), 200)

    const res = await h.call('POST', logout(first.userId), { body: { reason: 'HD-3: lost phone' } })
    t.equal(res.status, 200, res.text)
    t.same(res.body, { user_id: first.userId, devices_removed: 2 })
    t.same(h.user(first.userId).devices, [])
    t.equal(await whoami(first.accessToken), 401, 'the first session ended')
    t.equal(await whoami(second.access_token), 401, 'the second session ended')
    t.same(JSON.parse(h.homeserver.callsTo('delete_devices')[0]?.body ?? '').devices.length, 2)
    t.match(h.recordsOf(res.requestId), [{ event: 'intent', action: 'user.logout', reason: 'HD-3: lost phone' }, { event: 'result', outcome: 'success', upstream: { call: 'delete_devices', status: 200 } }])

    const from = h.homeserver.calls.length
    const again = await h.call('POST', logout(first.userId))
    t.same(again.body, { user_id: first.userId, devices_removed: 0 })
    t.same(callsSince(h.homeserver, from), ['user_lookup', 'devices'], 'nothing to delete: no changing call')
    t.equal(h.recordsOf(again.requestId).length, 1, 'no intent record')
  })

  t.test(`${version}: the admin account and server admins are protected; unknown and remote users refused`, async (t) => {
    const h = await startAccountHarness(t, version)
    const boss = h.newUser('boss', { admin: true })
    for (const [user, status, code] of [[ACTION_USERS.admin, 403, 'protected_target'], [boss, 403, 'protected_target'], [ACTION_USERS.unknown, 404, 'user_not_found'], ['@x:elsewhere.example', 400, 'user_not_local']] as const) {
      const res = await h.call('POST', logout(user))
      t.equal(res.status, status, `${user}: ${res.text}`)
      t.equal(res.body.code, code)
    }
    t.equal(h.homeserver.callsTo('delete_devices').length, 0)
    t.equal(h.user(boss).devices.length, 1, 'the server admin keeps its session')
  })
}

t.test('a deactivated user has no devices: 0 removed; the dry run counts the devices and changes nothing', async (t) => {
  const h = await startAccountHarness(t, '1.163.2')
  const jill = h.newUser('jill', { devices: 3 })
  const dry = await h.call('POST', logout(jill, '?dry_run=true'))
  t.match(dry.body, { dry_run: true, would_succeed: true, checks: [{ name: 'user_exists' }, { name: 'not_protected' }, { name: 'has_devices', ok: true, detail: '3 devices would be deleted.' }] })
  t.equal(h.user(jill).devices.length, 3)
  t.equal(h.homeserver.callsTo('delete_devices').length, 0)
  const deactivated = await h.call('POST', logout(ACTION_USERS.deactivated))
  t.same(deactivated.body, { user_id: ACTION_USERS.deactivated, devices_removed: 0 })
})
