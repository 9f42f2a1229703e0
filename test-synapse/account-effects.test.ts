/**
 * Pins, on the real Synapse in front of us, what each account action does to a user, driving
 * Synapse's admin API directly (not the gateway), with the effect checks of helpers/accounts.ts
 * that the gateway's account-action tests use: lock (enforced from 1.91 on; 1.67 ignores it),
 * suspend (1.163; 1.67 has no endpoint), delete_devices, reset_password with and without
 * logout_devices, deactivation with erase. Expectations that differ say which versions they apply to.
 */
import t from 'tap'
import { canSync, deviceIds, displayName, login, lookupUser, readMessages, sendMessage, tokenAccepted } from './helpers/accounts.js'
import { Matrix } from './helpers/matrix.js'
import { atLeast, synapseVersion } from './helpers/target.js'

const enc = encodeURIComponent

t.test('account actions by their effect on the real Synapse', async (t) => {
  const matrix = new Matrix()
  const version = await synapseVersion(matrix.target)
  const modern = atLeast(version, '1.163.0')
  const label = modern ? '>= 1.163' : '1.67'
  t.comment(`Synapse ${version}`)
  const admin = await matrix.register('acc-admin', { admin: true })
  const adminCall = async (method: 'PUT' | 'POST', path: string, body: unknown) => await matrix.call(method, path, { token: admin.token, body })

  t.test('lock', async (t) => {
    const user = await matrix.register('locked')
    const locked = await adminCall('PUT', `/_synapse/admin/v2/users/${enc(user.userId)}`, { locked: true })
    t.equal(locked.status, 200, 'PUT {"locked": true} answers 200 on both versions')
    const loginWhileLocked = await login(matrix, user.userId, user.password)
    const tokenWhileLocked = await tokenAccepted(matrix, user.token)
    if (modern) {
      t.equal(locked.json.locked, true, `${label}: the answer shows the lock`)
      t.equal((await lookupUser(matrix, admin.token, user.userId)).locked, true, `${label}: the lookup shows the lock`)
      t.same(loginWhileLocked, { ok: false, status: 401, errcode: 'M_USER_LOCKED', error: 'User account has been locked' }, `${label}: a locked user cannot log in`)
      t.same(tokenWhileLocked, { ok: false, status: 401, errcode: 'M_USER_LOCKED', error: 'User account has been locked' }, `${label}: the locked user's tokens are refused`)
      await adminCall('PUT', `/_synapse/admin/v2/users/${enc(user.userId)}`, { locked: false })
      t.ok((await tokenAccepted(matrix, user.token)).ok, `${label}: after unlocking, the old token works again`)
      t.ok((await login(matrix, user.userId, user.password)).ok, `${label}: and the user can log in`)
    } else {
      t.notOk('locked' in locked.json, `${label}: the field is ignored (no locked in the answer)`)
      t.ok(loginWhileLocked.ok, `${label}: the "locked" user still logs in`)
      t.ok(tokenWhileLocked.ok, `${label}: and the old token still works`)
    }
  })

  t.test('suspend', async (t) => {
    const user = await matrix.register('suspended')
    const roomId = await matrix.createRoom(admin, { preset: 'public_chat' })
    await matrix.join(user, roomId)
    t.ok((await sendMessage(matrix, admin.token, roomId, 'before')).ok, 'the admin writes to the room')
    const suspended = await adminCall('PUT', `/_synapse/admin/v1/suspend/${enc(user.userId)}`, { suspend: true })
    if (!modern) {
      t.same({ status: suspended.status, json: suspended.json }, { status: 400, json: { errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' } }, `${label}: no suspend endpoint`)
      t.ok((await sendMessage(matrix, user.token, roomId)).ok, `${label}: the user still sends`)
      return
    }
    t.same({ status: suspended.status, json: suspended.json }, { status: 200, json: { [`user_${user.userId}_suspended`]: true } }, `${label}: suspended`)
    t.equal((await lookupUser(matrix, admin.token, user.userId)).suspended, true, `${label}: the lookup shows the suspension`)
    t.same(await sendMessage(matrix, user.token, roomId), { ok: false, status: 403, errcode: 'M_USER_SUSPENDED', error: 'Sending messages while account is suspended is not allowed.' }, `${label}: a suspended user cannot send`)
    const read = await readMessages(matrix, user.token, roomId)
    t.ok(read.ok, `${label}: but can read the room`)
    t.ok(read.bodies?.includes('before'), `${label}: and sees the admin's message`)
    t.ok((await canSync(matrix, user.token)).ok, `${label}: and sync`)
    t.ok((await tokenAccepted(matrix, user.token)).ok, `${label}: the token stays valid`)
    await adminCall('PUT', `/_synapse/admin/v1/suspend/${enc(user.userId)}`, { suspend: false })
    t.ok((await sendMessage(matrix, user.token, roomId, 'after')).ok, `${label}: after unsuspending, the user sends again`)
  })

  t.test('delete_devices ends the sessions of those devices only', async (t) => {
    const user = await matrix.register('devices')
    const second = await login(matrix, user.userId, user.password)
    t.same(await deviceIds(matrix, admin.token, user.userId), [user.deviceId, second.deviceId].sort(), 'two devices after a second login')
    const deleted = await adminCall('POST', `/_synapse/admin/v2/users/${enc(user.userId)}/delete_devices`, { devices: [second.deviceId] })
    t.same({ status: deleted.status, json: deleted.json }, { status: 200, json: {} }, 'delete_devices answers 200 {}')
    t.same(await tokenAccepted(matrix, second.token as string), { ok: false, status: 401, errcode: 'M_UNKNOWN_TOKEN', error: 'Invalid access token passed.' }, 'the removed device\'s token is refused')
    t.ok((await tokenAccepted(matrix, user.token)).ok, 'the other device\'s token still works')
    t.same(await deviceIds(matrix, admin.token, user.userId), [user.deviceId], 'one device left')
    await adminCall('POST', `/_synapse/admin/v2/users/${enc(user.userId)}/delete_devices`, { devices: [user.deviceId] })
    t.equal((await tokenAccepted(matrix, user.token)).errcode, 'M_UNKNOWN_TOKEN', 'after removing every device, no token works')
    t.same(await deviceIds(matrix, admin.token, user.userId), [], 'no devices left')
    t.ok((await login(matrix, user.userId, user.password)).ok, 'the password still works')
  })

  t.test('reset_password', async (t) => {
    const user = await matrix.register('reset')
    const kept = await adminCall('POST', `/_synapse/admin/v1/reset_password/${enc(user.userId)}`, { new_password: 'first new password', logout_devices: false })
    t.same({ status: kept.status, json: kept.json }, { status: 200, json: {} }, 'reset answers 200 {}')
    t.ok((await tokenAccepted(matrix, user.token)).ok, 'logout_devices false: the old session goes on')
    t.same(await login(matrix, user.userId, user.password), { ok: false, status: 403, errcode: 'M_FORBIDDEN', error: 'Invalid username or password' }, 'the old password is refused')
    const second = await login(matrix, user.userId, 'first new password')
    t.ok(second.ok, 'the new password logs in')

    await adminCall('POST', `/_synapse/admin/v1/reset_password/${enc(user.userId)}`, { new_password: 'second new password' })
    t.equal((await tokenAccepted(matrix, user.token)).errcode, 'M_UNKNOWN_TOKEN', 'logout_devices left out (true): the first session ends')
    t.equal((await tokenAccepted(matrix, second.token as string)).errcode, 'M_UNKNOWN_TOKEN', 'and every other session too')
    t.same(await deviceIds(matrix, admin.token, user.userId), [], 'no devices left')
    t.ok((await login(matrix, user.userId, 'second new password')).ok, 'the newest password logs in')
    t.equal((await login(matrix, user.userId, 'first new password')).errcode, 'M_FORBIDDEN', 'the previous one no longer')
  })

  t.test('deactivate with erase', async (t) => {
    const user = await matrix.register('erased', { displayname: 'Erased Example' })
    t.equal(await displayName(matrix, admin.token, user.userId), 'Erased Example', 'the display name before')
    const deactivated = await adminCall('POST', `/_synapse/admin/v1/deactivate/${enc(user.userId)}`, { erase: true })
    t.same({ status: deactivated.status, json: deactivated.json }, { status: 200, json: { id_server_unbind_result: 'success' } }, 'deactivation answers 200')
    t.same(await login(matrix, user.userId, user.password), modern
      ? { ok: false, status: 403, errcode: 'M_FORBIDDEN', error: 'Invalid username or password' }
      : { ok: false, status: 403, errcode: 'M_USER_DEACTIVATED', error: 'This account has been deactivated' }, `${label}: a deactivated user cannot log in`)
    t.equal((await login(matrix, user.userId, 'not the password')).errcode, modern ? 'M_FORBIDDEN' : 'M_USER_DEACTIVATED',
      `${label}: ${modern ? 'a wrong password answers alike' : 'even a wrong password is told the account is deactivated'}`)
    t.equal((await tokenAccepted(matrix, user.token)).errcode, 'M_UNKNOWN_TOKEN', 'the old token is refused')
    t.equal(await displayName(matrix, admin.token, user.userId), null, 'erase removed the display name')
    const lookup = await lookupUser(matrix, admin.token, user.userId)
    t.equal(lookup.deactivated, modern ? true : 1, `${label}: the lookup says deactivated`)
    if (modern) t.equal(lookup.erased, true, `${label}: and erased`)
    else t.notOk('erased' in lookup, `${label}: no erased field`)
    const again = await adminCall('POST', `/_synapse/admin/v1/deactivate/${enc(user.userId)}`, { erase: true })
    t.same({ status: again.status, json: again.json }, { status: 200, json: { id_server_unbind_result: 'success' } }, 'a repeat answers the same')
  })
})
