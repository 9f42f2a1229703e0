/**
 * user.password.reset (POST /v1/users/{userId}/password) against the simulated homeserver as
 * Synapse 1.163.2 and 1.67.0 (p1–p13 answer alike), with canaries: neither a caller's password
 * nor a generated one may appear in the audit file, the service log, /metrics or a stored
 * idempotency answer (in memory or in Redis).
 */
import { createServer, request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { Redis } from 'ioredis'
import { ACTION_USERS } from '../../dev/homeserver/state.js'
import { SYNAPSE_VERSIONS, startAccountHarness, userPath, type AccountHarness } from '../helpers/accounts.js'
import { fingerprint } from '../../src/state/idempotency.js'
import { skipWithoutRedis, startRedisServer } from '../helpers/redis.js'

const reset = (user: string, query = '') => userPath(user, `/password${query}`)
const CANARY = 'CANARY-new-password-must-never-leak-81d3'

const loginStatus = (h: AccountHarness, user: string, password: string) => h.homeserver.accounts.login(JSON.stringify({ identifier: { user }, password })).status

/** Everything the gateway kept or showed besides the answer itself. */
async function traces (h: AccountHarness): Promise<string> {
  const metrics = await h.app.inject({ url: '/metrics' })
  return [h.auditText(), h.logs(), metrics.body].join('\n')
}

for (const version of SYNAPSE_VERSIONS) {
  t.test(`${version}: the caller's password is set; sessions end by default (p1, p3–p6)`, async (t) => {
    const h = await startAccountHarness(t, version)
    const jill = h.newUser('jill', { password: 'old-password-0123', devices: 2 })
    const res = await h.call('POST', reset(jill), { body: { new_password: CANARY, reason: 'HD-11: forgot it' } })
    t.equal(res.status, 200, res.text)
    t.same(res.body, { user_id: jill }, 'a caller-given password is not echoed')
    t.equal(loginStatus(h, jill, CANARY), 200, 'the new password logs in')
    t.equal(loginStatus(h, jill, 'old-password-0123'), 403, 'the old one does not')
    const sent = JSON.parse(h.homeserver.callsTo('reset_password')[0]?.body ?? '')
    t.same(sent, { new_password: CANARY, logout_devices: true })
    t.match(h.recordsOf(res.requestId), [{ event: 'intent', action: 'user.password.reset', reason: 'HD-11: forgot it' }, { event: 'result', outcome: 'success', upstream: { call: 'reset_password', status: 200 } }])
    t.notOk((await traces(h)).includes(CANARY), 'the password is nowhere in the audit, the log or the metrics')
  })

  t.test(`${version}: without new_password one is generated, returned once, and it logs in; logout_devices false keeps sessions (p2)`, async (t) => {
    const h = await startAccountHarness(t, version)
    const jill = h.newUser('jill', { devices: 2 })
    const res = await h.call('POST', reset(jill), { body: { logout_devices: false } })
    t.equal(res.status, 200, res.text)
    const password = res.body.password as string
    t.match(password, /^[A-HJ-NP-Za-km-z2-9]{6}(-[A-HJ-NP-Za-km-z2-9]{6}){3}$/, 'four groups of six clear characters')
    t.ok(password.length >= 20)
    t.equal(loginStatus(h, jill, password), 200)
    t.equal(h.user(jill).devices.length, 3, 'the two sessions stay (and the new login adds one)')
    t.notOk((await traces(h)).includes(password), 'the generated password is nowhere in the audit, the log or the metrics')
    const other = await h.call('POST', reset(jill), { rawBody: '', headers: { 'content-type': 'application/json' } })
    t.equal(other.status, 400, 'an empty body with a JSON content type is refused for a POST')
    const again = await h.call('POST', reset(jill))
    t.equal(again.status, 200, again.text)
    t.not(again.body.password, password, 'each generated password is new')
  })
}

t.test('new_password is checked before Synapse sees it: too short, not text; its value never in the error', async (t) => {
  const h = await startAccountHarness(t, '1.163.2')
  const jill = h.newUser('jill')
  const short = 'CANARY-shrt'
  for (const body of [{ new_password: short }, { new_password: 123456789012345 }, { new_password: ['x'.repeat(20)] }, { logout_devices: 'yes' }, { new_password: CANARY, extra: 1 }]) {
    const res = await h.call('POST', reset(jill), { body })
    t.equal(res.status, 400, JSON.stringify(body))
    t.equal(res.body.code, 'invalid_body')
    t.notOk(res.text.includes(short) || res.text.includes(CANARY), 'the password is not repeated')
  }
  const tooShort = await h.call('POST', reset(jill), { body: { new_password: short } })
  t.match(tooShort.body.detail, /new_password.*at least 12/)
  t.equal(h.homeserver.callsTo('reset_password').length, 0, 'Synapse saw none of them')
  t.notOk((await traces(h)).includes(short))
})

t.test('protected, unknown, remote and deactivated users are refused before any reset', async (t) => {
  const h = await startAccountHarness(t, '1.67.0')
  const boss = h.newUser('boss', { admin: true })
  for (const [user, status, code] of [[ACTION_USERS.admin, 403, 'protected_target'], [boss, 403, 'protected_target'], [ACTION_USERS.unknown, 404, 'user_not_found'],
    ['@x:elsewhere.example', 400, 'user_not_local'], [ACTION_USERS.deactivated, 409, 'user_deactivated']] as const) {
    const res = await h.call('POST', reset(user), { body: { new_password: CANARY } })
    t.equal(res.status, status, `${user}: ${res.text}`)
    t.equal(res.body.code, code)
  }
  t.equal(h.homeserver.callsTo('reset_password').length, 0)
  const dry = await h.call('POST', reset(boss, '?dry_run=true'), { body: { new_password: CANARY } })
  t.match(dry.body, { dry_run: true, would_succeed: false, code: 'protected_target' })
  t.notOk((await traces(h)).includes(CANARY))
})

t.test('an Idempotency-Key replay answers without the generated password; the memory record never held it', async (t) => {
  const h = await startAccountHarness(t, '1.163.2')
  const jill = h.newUser('jill')
  const headers = { 'idempotency-key': 'reset-jill-1' }
  const first = await h.call('POST', reset(jill), { headers })
  const password = first.body.password as string
  t.ok(password.length >= 20)
  const replay = await h.call('POST', reset(jill), { headers })
  t.equal(replay.status, 200)
  t.equal(replay.headers['idempotent-replayed'], 'true')
  t.same(replay.body, { user_id: jill }, 'the replay omits the password')
  t.equal(h.homeserver.callsTo('reset_password').length, 1, 'the replay did not reset again')

  const batchKey = { 'idempotency-key': 'batch-1' }
  const items = [{ action: 'user.password.reset', user_id: jill }, { action: 'user.logout', user_id: jill }]
  const batch = await h.call('POST', '/v1/batch', { body: { items }, headers: batchKey })
  t.equal(batch.status, 200, batch.text)
  const batchPassword = batch.body.results[0].body.password as string
  t.ok(batchPassword.length >= 20, 'a batch item answers its generated password')
  const batchReplay = await h.call('POST', '/v1/batch', { body: { items }, headers: batchKey })
  t.same(batchReplay.body.results[0].body, { user_id: jill }, 'the batch replay omits it')
  t.same(batchReplay.body.results[1].body, batch.body.results[1].body, 'and keeps the other items as answered')
  t.notOk((await traces(h)).includes(password) || (await traces(h)).includes(batchPassword))
})

t.test('with Redis, the stored idempotency record holds no password', { skip: skipWithoutRedis('the Redis idempotency canary') }, async (t) => {
  const redis = await startRedisServer(t)
  const h = await startAccountHarness(t, '1.163.2', { REDIS_URL: redis.url })
  const jill = h.newUser('jill')
  const given = await h.call('POST', reset(jill), { body: { new_password: CANARY }, headers: { 'idempotency-key': 'given-1' } })
  t.equal(given.status, 200, given.text)
  const generated = await h.call('POST', reset(jill), { headers: { 'idempotency-key': 'generated-1' } })
  const password = generated.body.password as string
  const client = new Redis(redis.url)
  t.after(() => { client.disconnect() })
  const keys = await client.keys('*')
  t.ok(keys.length > 0, 'records were stored')
  let stored = ''
  for (const key of keys) {
    const type = await client.type(key)
    stored += type === 'hash' ? JSON.stringify(await client.hgetall(key)) : type === 'string' ? String(await client.get(key)) : ''
  }
  t.match(stored, /user_id/, 'the stored answers are there')
  t.notOk(stored.includes(password), 'not the generated password')
  t.notOk(stored.includes(CANARY), 'nor the caller\'s (the request body is stored only as a hash)')
  // …and a keyed one: a plain SHA-256 of the body would let whoever reads Redis test password guesses.
  const guessable = fingerprint('POST', reset(jill), JSON.stringify({ new_password: CANARY }))
  t.notOk(stored.includes(guessable), 'the fingerprint is not a plain hash of the body')
  t.notOk((await traces(h)).includes(password) || (await traces(h)).includes(CANARY))
})

t.test('Synapse delegating authentication to MAS: 501 delegated_to_mas; without MAS the same answer stays upstream_error', async (t) => {
  let target = ''
  let delegated = true
  // Synapse under MSC3861 serves no reset_password (404 M_UNRECOGNIZED) and names its issuer.
  const front = createServer((incoming, outgoing) => {
    const path = incoming.url ?? ''
    const json = (status: number, body: unknown) => { outgoing.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body)) }
    if (path.startsWith('/_synapse/admin/v1/reset_password/')) return json(404, { errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' })
    if (path === '/_matrix/client/v1/auth_metadata' && delegated) return json(200, { issuer: 'https://auth.example.com/', authorization_endpoint: 'https://auth.example.com/authorize' })
    const upstream = new URL(target)
    const forward = httpRequest({ host: upstream.hostname, port: upstream.port, method: incoming.method, path, headers: incoming.headers }, (answer) => {
      outgoing.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(outgoing)
    })
    incoming.pipe(forward)
  })
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve))
  t.after(async () => { await new Promise((resolve) => front.close(resolve)) })
  const h = await startAccountHarness(t, '1.163.2', { SYNAPSE_URL: `http://127.0.0.1:${(front.address() as AddressInfo).port}` })
  target = h.homeserverUrl
  const jill = h.newUser('jill')
  const res = await h.call('POST', reset(jill), { body: { new_password: CANARY } })
  t.equal(res.status, 501, res.text)
  t.equal(res.body.code, 'delegated_to_mas')
  t.match(h.recordsOf(res.requestId), [{ event: 'intent' }, { event: 'result', outcome: 'failed', code: 'delegated_to_mas' }])
  delegated = false
  const plain = await h.call('POST', reset(jill), { body: { new_password: CANARY } })
  t.equal(plain.status, 502, 'an endpoint Synapse does not know, without MAS: the proxy is misconfigured')
  t.equal(plain.body.code, 'upstream_error')
  t.notOk((await traces(h)).includes(CANARY))
})
