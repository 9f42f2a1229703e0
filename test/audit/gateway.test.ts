/**
 * The write-ahead audit seen from outside, over real sockets: the gateway listening on
 * loopback, the simulated homeserver a real listener. An acting request's `intent` is on disk
 * before the join reaches the homeserver; reads and refusals write one `result`; outcomes say
 * what the gateway knows (`unknown` once the join was sent without a recognised answer).
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { RECORDED_ROOMS } from '../../dev/homeserver/state.js'
import type { Fault } from '../../dev/homeserver/server.js'
import { startHarness } from '../helpers/harness.js'
import { act, forRequest, joinPath, until } from '../helpers/audit.js'

const room = RECORDED_ROOMS.publicTest
const alice = '@alice:test.local'

function policyFile (): string {
  const dir = mkdtempSync(join(tmpdir(), 'gateway-audit-policy-'))
  const file = join(dir, 'policy.yaml')
  writeFileSync(file, 'rules:\n  - name: admins-do-everything\n    roles: [matrix-admin]\n    actions: ["*"]\n')
  return file
}

t.test('write-ahead: the intent (actor with iss and jti, target, policy, reason) is on disk while the homeserver still holds the join', async (t) => {
  const h = await startHarness(t, { env: { POLICY_FILE: policyFile() } })
  h.homeserver.fault = { kind: 'slow', on: 'join', delayMs: 1500 }
  const token = h.token({ iss: 'https://idp.example.org', jti: 'token-4711' })
  const answer = act(h.url, 'POST', joinPath(room), { token, requestId: 'write-ahead-1', body: { user_id: alice, reason: 'ticket HD-42' } })

  await until(() => h.homeserver.callsTo('join').length === 1, 'the homeserver to receive the join')
  // The homeserver holds the join for 1.5 s: whatever is in the file now was written before it arrived.
  const whileHeld = forRequest(h.auditRecords(), 'write-ahead-1')
  t.same(whileHeld.map((record) => record.event), ['intent'], 'the intent is there, the result is not yet')
  t.match(whileHeld[0], {
    action: 'room.join',
    actor: { sub: 'helpdesk-bot', org: 'example', roles: ['matrix-admin'], iss: 'https://idp.example.org', jti: 'token-4711' },
    target: { room, user_id: alice, room_id: room },
    policy: { rule: 'admins-do-everything', effect: 'allow' },
    reason: 'ticket HD-42'
  })

  const res = await answer
  t.equal(res.status, 200)
  const records = forRequest(h.auditRecords(), 'write-ahead-1')
  t.same(records.map((record) => record.event), ['intent', 'result'])
  t.match(records[1], { outcome: 'success', status: 200, actor: { iss: 'https://idp.example.org', jti: 'token-4711' }, reason: 'ticket HD-42' })
  t.ok(records[1]?.seq > records[0]?.seq, 'the result comes after its intent in the chain')
})

t.test('a token without iss or jti: the actor has neither member', async (t) => {
  const h = await startHarness(t)
  t.equal((await act(h.url, 'POST', joinPath(room), { token: h.token(), requestId: 'plain-token', body: { user_id: alice } })).status, 200)
  for (const record of forRequest(h.auditRecords(), 'plain-token')) {
    t.notOk('iss' in record.actor, `${record.event as string}: no iss`)
    t.notOk('jti' in record.actor, `${record.event as string}: no jti`)
  }
})

t.test('a read writes only a result; so does a refusal before Synapse', async (t) => {
  const h = await startHarness(t, { env: { POLICY_FILE: policyFile() } })
  const read = await act(h.url, 'GET', `/v1/users/${encodeURIComponent(alice)}`, { token: h.token(), requestId: 'read-1' })
  t.equal(read.status, 200)
  t.same(forRequest(h.auditRecords(), 'read-1').map((record) => [record.event, record.action, record.outcome]), [['result', 'user.read', 'success']])
  t.ok(h.homeserver.callsTo('user_lookup').length > 0, 'the read did reach Synapse')

  const calls = h.homeserver.calls.length
  const refusals: Array<[string, unknown, string, string]> = [
    ['refused-remote-user', { user_id: '@alice:elsewhere.example' }, 'user_not_local', 'invalid'],
    ['refused-bad-body', { user: alice }, 'invalid_body', 'invalid']
  ]
  for (const [requestId, body, code, outcome] of refusals) {
    const res = await act(h.url, 'POST', joinPath(room), { token: h.token(), requestId, body })
    t.equal(res.body.code, code, requestId)
    t.same(forRequest(h.auditRecords(), requestId).map((record) => [record.event, record.outcome, record.code]), [['result', outcome, code]], `${requestId}: one result`)
  }
  const unauthenticated = await act(h.url, 'POST', joinPath(room), { requestId: 'refused-no-token', body: { user_id: alice } })
  t.equal(unauthenticated.status, 401)
  t.same(forRequest(h.auditRecords(), 'refused-no-token').map((record) => [record.event, record.outcome, record.actor]), [['result', 'denied', null]])
  t.equal(h.homeserver.calls.length, calls, 'none of the refusals reached Synapse')
})

t.test('outcomes tell the truth: unknown once the join was sent without a recognised answer, failed when only the lookup failed', async (t) => {
  // A high breaker threshold: these failures follow each other, and each must reach the homeserver.
  const h = await startHarness(t, { env: { SYNAPSE_TIMEOUT_MS: '700', RATE_LIMIT_PER_MINUTE: '10000' }, synapseBreaker: { failureThreshold: 1000 } })
  const faults: Array<[string, Fault]> = [
    ['error-500', { kind: 'error-500' }],
    ['not-the-answer', { kind: 'answer', status: 200, body: { hello: 'world' } }],
    ['hang', { kind: 'hang' }],
    ['reset', { kind: 'reset' }]
  ]
  for (const [name, fault] of faults) {
    h.homeserver.fault = { ...fault, on: 'join' }
    const joinsBefore = h.homeserver.callsTo('join').length
    const res = await act(h.url, 'POST', joinPath(room), { token: h.token(), requestId: `join-${name}`, body: { user_id: alice } })
    t.ok(res.status >= 500, `join ${name}: answered ${res.status} ${String(res.body.code)}`)
    t.ok(h.homeserver.callsTo('join').length > joinsBefore, `join ${name}: the join was sent`)
    const records = forRequest(h.auditRecords(), `join-${name}`)
    t.same(records.map((record) => record.event), ['intent', 'result'], `join ${name}: intent then result`)
    t.equal(records[1]?.outcome, 'unknown', `join ${name}: Synapse may have joined the user, so the outcome is unknown`)
    t.equal(records[1]?.code, res.body.code, `join ${name}: the audited code is the answered one`)
    if (name === 'hang') t.equal(res.body.code, 'upstream_timeout')

    h.homeserver.fault = { ...fault, on: 'user_lookup' }
    const joins = h.homeserver.callsTo('join').length
    const lookup = await act(h.url, 'POST', joinPath(room), { token: h.token(), requestId: `lookup-${name}`, body: { user_id: alice } })
    t.ok(lookup.status >= 500, `lookup ${name}: answered ${lookup.status} ${String(lookup.body.code)}`)
    t.equal(h.homeserver.callsTo('join').length, joins, `lookup ${name}: no join was sent`)
    t.same(forRequest(h.auditRecords(), `lookup-${name}`).map((record) => [record.event, record.outcome]), [['result', 'failed']], `lookup ${name}: one result, failed (nothing acting was sent)`)
  }
})

t.test('a parse-level 400 on an action route (bad percent-encoding) has its audit record', async (t) => {
  const h = await startHarness(t)
  for (const [requestId, path] of [['bad-room-encoding', '/v1/rooms/%E0%A4%A/members'], ['bad-user-encoding', '/v1/users/%40alice%3Atest.local%ZZ']] as Array<[string, string]>) {
    const res = await request(`${h.url}${path}`, { method: requestId === 'bad-room-encoding' ? 'POST' : 'GET', headers: { authorization: `Bearer ${h.token()}`, 'content-type': 'application/json', 'x-request-id': requestId }, body: requestId === 'bad-room-encoding' ? '{}' : undefined })
    t.equal(res.statusCode, 400)
    t.equal((await res.body.json() as { code: string }).code, 'invalid_request')
    await until(() => forRequest(h.auditRecords(), requestId).length > 0, `the audit record of ${requestId}`)
    t.match(forRequest(h.auditRecords(), requestId), [{ event: 'result', outcome: 'invalid', status: 400, code: 'invalid_request' }], requestId)
  }
  t.equal(h.homeserver.calls.length, 0)
})

t.test('aliases with format characters (Unicode Cf) are refused 400 invalid_room, and audited', async (t) => {
  const h = await startHarness(t)
  for (const char of ['\u200B', '\u200F', '\u061C', '\u2060', '\u00AD', '\uFEFF']) {
    const codePoint = `U+${char.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`
    const alias = `#public${char}test:test.local`
    const res = await act(h.url, 'POST', joinPath(alias), { token: h.token(), requestId: `format-${char.charCodeAt(0).toString(16)}`, body: { user_id: alice } })
    t.equal(res.status, 400, codePoint)
    t.equal(res.body.code, 'invalid_room', codePoint)
    t.match(forRequest(h.auditRecords(), `format-${char.charCodeAt(0).toString(16)}`), [{ event: 'result', outcome: 'invalid', code: 'invalid_room' }])
  }
  t.equal(h.homeserver.calls.length, 0, 'none reached the directory')
})
