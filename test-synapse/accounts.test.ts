/**
 * The account actions through a real gateway in front of the real Synapse, verified by their
 * effect as the user would notice it (helpers/accounts.ts): a locked user cannot log in and their
 * tokens are refused; a suspended user cannot send but can read; after a logout the old tokens are
 * refused; after a password reset only the new password logs in; a deactivated user cannot log
 * in, and with `erase` the display name is gone. Repeats answer `changed: false`, protected
 * targets are refused, the first call of each action is a dry run first (it changes nothing and
 * predicts the real call), an idempotent replay of a generated password neither shows it nor
 * resets again, a batch carries account items, and the example helpdesk policy decides. Where
 * 1.67 lacks the endpoint (lock: it ignores `locked`; suspend) the gateway answers 501 and
 * nothing changes.
 */
import { readFileSync } from 'node:fs'
import t, { type Test as Tap } from 'tap'
import { parse } from 'yaml'
import { deviceIds, displayName, login, lookupUser, readMessages, sendMessage, tokenAccepted } from './helpers/accounts.js'
import { ACCOUNT_ACTIONS, accountCall, dryRunThenReal, said, send, sendIdempotent, type AccountCall } from './helpers/account-actions.js'
import { ALLOW_ALL, startGateway, type Answer, type PolicyRule } from './helpers/gateway.js'
import { Matrix, type RegisteredUser } from './helpers/matrix.js'
import { atLeast, synapseVersion } from './helpers/target.js'

const enc = encodeURIComponent

/** A policy of examples/policies/ with its server name (example.com) replaced by the tier's. */
function examplePolicy (file: string, serverName: string): PolicyRule[] {
  const text = readFileSync(new URL(`../examples/policies/${file}`, import.meta.url), 'utf8')
  return (parse(text.replaceAll('example.com', serverName)) as { rules: PolicyRule[] }).rules
}

t.test('account actions through the gateway, by their effect on the real Synapse', async (t) => {
  const matrix = new Matrix()
  const version = await synapseVersion(matrix.target)
  t.comment(`Synapse ${version}`)
  // Lock is enforced from 1.91 (the contract); suspension is recorded missing in 1.67 and present in 1.163.
  const canLock = atLeast(version, '1.91.0')
  const canSuspend = atLeast(version, '1.163.0') ? true : atLeast(version, '1.68.0') ? undefined : false
  const reportsErasure = atLeast(version, '1.163.0') // 1.67's user lookup has no `erased`
  const lacking = `Synapse ${version} (lacks the endpoint)`

  const [gw, otherAdmin, lockee, suspendee, leaver, resetee, erasee, batchReset, batchDeactivate] = await Promise.all([
    matrix.register('acct-gw', { admin: true }),
    matrix.register('acct-admin', { admin: true }),
    matrix.register('acct-lock'),
    matrix.register('acct-suspend'),
    matrix.register('acct-logout'),
    matrix.register('acct-password'),
    matrix.register('acct-erase', { displayname: 'Erased Example' }),
    matrix.register('acct-batch-reset'),
    matrix.register('acct-batch-deactivate', { displayname: 'Kept Example' })
  ])
  const gateway = await startGateway(t, matrix, gw, { policy: ALLOW_ALL })
  const passwordsSet: string[] = []

  const expectAnswer = (t: Tap, call: AccountCall, answer: Answer, status: number, body: Record<string, unknown>) => {
    t.equal(answer.status, status, said(call, answer))
    t.same(answer.body, body, `${call.action} answers ${JSON.stringify(body)}`)
  }
  const expectNotSupported = (t: Tap, call: AccountCall, answer: Answer) => {
    t.equal(answer.status, 501, said(call, answer))
    t.equal(answer.body?.code, 'not_supported_by_synapse', 'not_supported_by_synapse')
    t.match(answer.body?.detail, /1\.\d+/, 'the problem names the Synapse version the action needs')
  }
  const logsIn = async (t: Tap, user: RegisteredUser, password = user.password, what = 'the user logs in') => {
    const outcome = await login(matrix, user.userId, password)
    t.ok(outcome.ok, `${what} (HTTP ${outcome.status}${outcome.errcode === undefined ? '' : ` ${outcome.errcode}`})`)
    return outcome
  }
  const tokenWorks = async (t: Tap, token: string, what = 'the user\'s token is accepted') => {
    const outcome = await tokenAccepted(matrix, token)
    t.ok(outcome.ok, `${what} (HTTP ${outcome.status}${outcome.errcode === undefined ? '' : ` ${outcome.errcode}`})`)
  }

  t.test('user.lock and user.unlock', async (t) => {
    const lock = accountCall('user.lock', lockee.userId)
    const unlock = accountCall('user.unlock', lockee.userId)
    if (!canLock) {
      for (const call of [lock, unlock]) {
        const answer = await dryRunThenReal(t, gateway, call, async () => {})
        expectNotSupported(t, call, answer)
      }
      await logsIn(t, lockee, lockee.password, `${lacking}: nothing changed, the user still logs in`)
      await tokenWorks(t, lockee.token, `${lacking}: and the old token still works`)
    } else {
      const locked = await dryRunThenReal(t, gateway, lock, async () => {
        await tokenWorks(t, lockee.token, 'after the dry run the token still works')
      })
      expectAnswer(t, lock, locked, 200, { user_id: lockee.userId, locked: true, changed: true })
      t.match(await login(matrix, lockee.userId, lockee.password), { ok: false, status: 401, errcode: 'M_USER_LOCKED' }, 'a locked user cannot log in')
      t.match(await tokenAccepted(matrix, lockee.token), { ok: false, status: 401, errcode: 'M_USER_LOCKED' }, 'the locked user\'s token is refused')
      const relocked = await dryRunThenReal(t, gateway, lock, async () => {})
      expectAnswer(t, lock, relocked, 200, { user_id: lockee.userId, locked: true, changed: false })

      const unlocked = await dryRunThenReal(t, gateway, unlock, async () => {
        t.match(await tokenAccepted(matrix, lockee.token), { ok: false, errcode: 'M_USER_LOCKED' }, 'after the dry run the user is still locked')
      })
      expectAnswer(t, unlock, unlocked, 200, { user_id: lockee.userId, locked: false, changed: true })
      await tokenWorks(t, lockee.token, 'after unlocking the old token works again')
      await logsIn(t, lockee, lockee.password, 'and the user logs in')
      expectAnswer(t, unlock, await send(gateway, unlock), 200, { user_id: lockee.userId, locked: false, changed: false })
    }

    // PUT /_synapse/admin/v2/users creates an unknown user: the gateway must look first.
    const nobody = matrix.userId('acct-nobody')
    const unknown = await send(gateway, accountCall('user.lock', nobody))
    if (canLock) t.match(unknown, { status: 404, body: { code: 'user_not_found' } }, `locking an unknown user: ${JSON.stringify(unknown.body)}`)
    else t.ok([404, 501].includes(unknown.status), `locking an unknown user is refused: ${unknown.status} ${JSON.stringify(unknown.body)}`)
    t.equal((await matrix.call('GET', `/_synapse/admin/v2/users/${enc(nobody)}`, { token: gw.token })).status, 404, 'and Synapse has no such user afterwards')
  })

  t.test('user.suspend and user.unsuspend', async (t) => {
    if (canSuspend === undefined) {
      t.comment(`no recorded expectations for suspension on Synapse ${version} (recorded: 1.67.x and 1.163.x or newer)`)
      return
    }
    const roomId = await matrix.createRoom(gw, { preset: 'public_chat' })
    await matrix.join(suspendee, roomId)
    t.ok((await sendMessage(matrix, gw.token, roomId, 'before')).ok, 'someone else writes to the room')
    const suspend = accountCall('user.suspend', suspendee.userId)
    const unsuspend = accountCall('user.unsuspend', suspendee.userId)
    if (!canSuspend) {
      for (const call of [suspend, unsuspend]) {
        const answer = await dryRunThenReal(t, gateway, call, async () => {})
        expectNotSupported(t, call, answer)
      }
      t.ok((await sendMessage(matrix, suspendee.token, roomId)).ok, `${lacking}: nothing changed, the user still sends`)
      return
    }
    const suspended = await dryRunThenReal(t, gateway, suspend, async () => {
      t.ok((await sendMessage(matrix, suspendee.token, roomId, 'during the dry run')).ok, 'after the dry run the user still sends')
    })
    expectAnswer(t, suspend, suspended, 200, { user_id: suspendee.userId, suspended: true, changed: true })
    t.match(await sendMessage(matrix, suspendee.token, roomId), { ok: false, status: 403, errcode: 'M_USER_SUSPENDED' }, 'a suspended user cannot send')
    const read = await readMessages(matrix, suspendee.token, roomId)
    t.ok(read.ok, 'but can read the room')
    t.ok(read.bodies?.includes('before'), 'and sees the others\' messages')
    expectAnswer(t, suspend, await send(gateway, suspend), 200, { user_id: suspendee.userId, suspended: true, changed: false })

    const unsuspended = await dryRunThenReal(t, gateway, unsuspend, async () => {
      t.match(await sendMessage(matrix, suspendee.token, roomId), { ok: false, errcode: 'M_USER_SUSPENDED' }, 'after the dry run the user is still suspended')
    })
    expectAnswer(t, unsuspend, unsuspended, 200, { user_id: suspendee.userId, suspended: false, changed: true })
    t.ok((await sendMessage(matrix, suspendee.token, roomId, 'after')).ok, 'after unsuspending the user sends again')
    expectAnswer(t, unsuspend, await send(gateway, unsuspend), 200, { user_id: suspendee.userId, suspended: false, changed: false })
  })

  t.test('user.logout', async (t) => {
    const second = await logsIn(t, leaver, leaver.password, 'a second session')
    const logout = accountCall('user.logout', leaver.userId)
    const answer = await dryRunThenReal(t, gateway, logout, async () => {
      t.equal((await deviceIds(matrix, gw.token, leaver.userId)).length, 2, 'after the dry run both devices remain')
    })
    expectAnswer(t, logout, answer, 200, { user_id: leaver.userId, devices_removed: 2 })
    t.match(await tokenAccepted(matrix, leaver.token), { ok: false, status: 401, errcode: 'M_UNKNOWN_TOKEN' }, 'the first session\'s token is refused')
    t.match(await tokenAccepted(matrix, second.token as string), { ok: false, status: 401, errcode: 'M_UNKNOWN_TOKEN' }, 'and the second\'s')
    t.same(await deviceIds(matrix, gw.token, leaver.userId), [], 'no devices left')
    expectAnswer(t, logout, await send(gateway, logout), 200, { user_id: leaver.userId, devices_removed: 0 })
    await logsIn(t, leaver, leaver.password, 'the password still works: a logout is not a lock')
  })

  t.test('user.password.reset', async (t) => {
    const chosen = `chosen-${matrix.runId}-password`
    passwordsSet.push(chosen)
    const keep = accountCall('user.password.reset', resetee.userId, { new_password: chosen, logout_devices: false })
    const kept = await dryRunThenReal(t, gateway, keep, async () => {
      await logsIn(t, resetee, resetee.password, 'after the dry run the old password still logs in')
    })
    expectAnswer(t, keep, kept, 200, { user_id: resetee.userId })
    await tokenWorks(t, resetee.token, 'logout_devices false: the old session goes on')
    t.match(await login(matrix, resetee.userId, resetee.password), { ok: false, status: 403 }, 'the old password is refused')
    const chosenSession = await logsIn(t, resetee, chosen, 'the new password logs in')

    const generate = accountCall('user.password.reset', resetee.userId)
    const generated = await send(gateway, generate)
    t.equal(generated.status, 200, said(generate, generated))
    t.same(Object.keys(generated.body ?? {}).sort(), ['password', 'user_id'], 'no new_password given: the answer carries the generated password')
    const password = String(generated.body?.password)
    passwordsSet.push(password)
    t.ok(password.length >= 20, `the generated password has at least 20 characters (${password.length})`)
    await logsIn(t, resetee, password, 'the generated password logs in')
    t.match(await tokenAccepted(matrix, resetee.token), { ok: false, errcode: 'M_UNKNOWN_TOKEN' }, 'logout_devices left out (true): the oldest session ends')
    t.match(await tokenAccepted(matrix, chosenSession.token as string), { ok: false, errcode: 'M_UNKNOWN_TOKEN' }, 'and the session of the previous password')
    t.equal((await login(matrix, resetee.userId, chosen)).ok, false, 'the previous password is refused')

    const key = `reset-${matrix.runId}`
    const first = await sendIdempotent(gateway, generate, key)
    t.equal(first.status, 200, said(generate, first))
    const once = String(first.body?.password)
    passwordsSet.push(once)
    const replay = await sendIdempotent(gateway, generate, key)
    t.equal(replay.status, 200, said(generate, replay))
    t.equal(replay.headers['idempotent-replayed'], 'true', 'the retry with the same Idempotency-Key is a replay')
    t.notOk('password' in (replay.body ?? {}), 'which answers without the password')
    await logsIn(t, resetee, once, 'and did not reset again: the password of the first answer logs in')

    const short = accountCall('user.password.reset', resetee.userId, { new_password: 'short' })
    const refused = await send(gateway, short)
    t.equal(refused.status, 400, `a new_password under 12 characters is refused: ${said(short, refused)}`)
    await logsIn(t, resetee, once, 'and Synapse never saw it: the password before still logs in')
  })

  t.test('user.deactivate with erase', async (t) => {
    const deactivate = accountCall('user.deactivate', erasee.userId, { erase: true })
    const answer = await dryRunThenReal(t, gateway, deactivate, async () => {
      await tokenWorks(t, erasee.token, 'after the dry run the token still works')
      t.equal(await displayName(matrix, gw.token, erasee.userId), 'Erased Example', 'and the display name is there')
    })
    expectAnswer(t, deactivate, answer, 200, { user_id: erasee.userId, erased: true, changed: true })
    t.match(await login(matrix, erasee.userId, erasee.password), { ok: false, status: 403 }, 'a deactivated user cannot log in')
    t.match(await tokenAccepted(matrix, erasee.token), { ok: false, errcode: 'M_UNKNOWN_TOKEN' }, 'the old token is refused')
    t.equal(await displayName(matrix, gw.token, erasee.userId), null, 'erase: the display name is gone')
    const plainRepeat = accountCall('user.deactivate', erasee.userId)
    const again = await dryRunThenReal(t, gateway, plainRepeat, async () => {})
    t.equal(again.status, 200, said(plainRepeat, again))
    t.match(again.body, { user_id: erasee.userId, changed: false }, 'a repeat answers changed: false')
    // 1.67's user lookup does not say whether a user is erased, so the gateway asks Synapse to erase again.
    const eraseRepeat = await send(gateway, deactivate)
    t.equal(eraseRepeat.status, 200, said(deactivate, eraseRepeat))
    t.match(eraseRepeat.body, { user_id: erasee.userId, erased: true, changed: !reportsErasure }, reportsErasure
      ? `Synapse ${version} reports the erasure: a repeat with erase answers changed: false`
      : `Synapse ${version} does not report erasure: a repeat with erase erases again (changed: true)`)
    t.match(await login(matrix, erasee.userId, erasee.password), { ok: false, status: 403 }, 'and the user still cannot log in')
  })

  t.test('a batch with account items', async (t) => {
    const chosen = `batch-${matrix.runId}-password`
    passwordsSet.push(chosen)
    const items = [
      { action: 'user.password.reset', user_id: batchReset.userId, new_password: chosen, logout_devices: false, reason: 'ticket 1' },
      { action: 'user.deactivate', user_id: batchDeactivate.userId, reason: 'ticket 2' },
      { action: 'user.logout', user_id: otherAdmin.userId, reason: 'ticket 3' }
    ]
    const answer = await gateway.call('POST', '/v1/batch', { body: { items } })
    t.equal(answer.status, 200, JSON.stringify(answer.body))
    const results = answer.body?.results as Array<{ index: number, status: number, body: any }>
    t.same(results?.map((result) => result.index), [0, 1, 2], 'one result per item, in order')
    t.match(results?.[0], { status: 200, body: { user_id: batchReset.userId } }, 'the reset')
    t.notOk('password' in (results?.[0]?.body ?? {}), 'with no password in its answer (one was given)')
    t.match(results?.[1], { status: 200, body: { user_id: batchDeactivate.userId, erased: false, changed: true } }, 'the deactivation (erase defaults to false)')
    t.match(results?.[2], { status: 403, body: { code: 'protected_target' } }, 'a server admin is never a target')

    await logsIn(t, batchReset, chosen, 'the reset item: the new password logs in')
    await tokenWorks(t, batchReset.token, 'and logout_devices false kept the old session')
    t.equal((await login(matrix, batchDeactivate.userId, batchDeactivate.password)).ok, false, 'the deactivate item: the user cannot log in')
    t.equal(await displayName(matrix, gw.token, batchDeactivate.userId), 'Kept Example', 'without erase the display name stays')
    await tokenWorks(t, otherAdmin.token, 'the refused item changed nothing: the admin\'s token still works')
  })

  t.test('the example helpdesk policy: log out yes, deactivate no', async (t) => {
    const helpdeskGateway = await startGateway(t, matrix, gw, { policy: examplePolicy('helpdesk-accounts.yaml', matrix.serverName) })
    const helpdesk = helpdeskGateway.token({ sub: 'agent-7', roles: ['helpdesk'] })
    const deactivate = accountCall('user.deactivate', leaver.userId)
    const denied = await helpdeskGateway.call(deactivate.method, deactivate.path, { token: helpdesk })
    t.match(denied, { status: 403, body: { code: 'policy_denied' } }, `the helpdesk may not deactivate: ${said(deactivate, denied)}`)
    await logsIn(t, leaver, leaver.password, 'and the user still logs in')
    const logout = accountCall('user.logout', leaver.userId)
    const allowed = await helpdeskGateway.call(logout.method, logout.path, { token: helpdesk })
    t.match(allowed, { status: 200, body: { user_id: leaver.userId } }, `the helpdesk may log users out: ${said(logout, allowed)}`)
    t.same(await deviceIds(matrix, gw.token, leaver.userId), [], 'and the sessions are gone')
  })

  t.test('protected targets: the gateway\'s own account and server admins', async (t) => {
    const dry = await send(gateway, accountCall('user.deactivate', otherAdmin.userId), '?dry_run=true')
    t.match(dry, { status: 200, body: { dry_run: true, would_succeed: false, code: 'protected_target' } }, `a dry run predicts the refusal: ${JSON.stringify(dry.body)}`)
    for (const target of [gw, otherAdmin]) {
      for (const action of ACCOUNT_ACTIONS) {
        const call = accountCall(action, target.userId, action === 'user.password.reset' ? { new_password: `never-${matrix.runId}-used` } : undefined)
        const answer = await send(gateway, call)
        const lacking = (action === 'user.lock' || action === 'user.unlock') ? !canLock : (action === 'user.suspend' || action === 'user.unsuspend') ? canSuspend !== true : false
        const codes = lacking ? ['protected_target', 'not_supported_by_synapse'] : ['protected_target']
        t.ok(codes.includes(answer.body?.code) && answer.status === (answer.body?.code === 'protected_target' ? 403 : 501), `${codes.join(' or ')}: ${said(call, answer)}`)
      }
      await tokenWorks(t, target.token, `${target === gw ? 'the gateway\'s account' : 'the other admin'}: the token still works`)
      const lookup = await lookupUser(matrix, gw.token, target.userId)
      t.notOk(lookup.deactivated, 'not deactivated')
      if (canLock) t.equal(lookup.locked, false, 'not locked')
      if (canSuspend === true) t.equal(lookup.suspended, false, 'not suspended')
    }
  })

  t.test('no password reaches the audit log', async (t) => {
    const audit = JSON.stringify(gateway.audit())
    t.ok(gateway.audit().some((record) => record.action === 'user.password.reset'), 'the resets are audited')
    for (const password of passwordsSet) t.notOk(audit.includes(password), 'a password set through the gateway is not in the audit log')
  })
})
