/**
 * The service around the action: health and readiness, the per-caller rate limit, secrecy of
 * every secret in every output, and graceful shutdown of the real process.
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import { request } from 'undici'
import { RECORDED_ROOMS } from '../../dev/homeserver/state.js'
import { ADMIN_TOKEN, JWT_SECRET, startHarness } from '../helpers/harness.js'
import { collect, exited, listening, spawnServer } from '../helpers/process.js'
import { waitFor } from '../helpers/wait.js'

const room = encodeURIComponent(RECORDED_ROOMS.publicTest)

t.test('/healthz always; /readyz when Synapse accepts the admin token (checked at most every few seconds)', async (t) => {
  const h = await startHarness(t)
  const health = await request(`${h.url}/healthz`)
  t.equal(health.statusCode, 200)
  t.same(await health.body.json(), { status: 'ok' })
  const ready = await request(`${h.url}/readyz`)
  t.equal(ready.statusCode, 200)
  t.same(await ready.body.json(), { status: 'ready', synapse_version: '1.163.2', synapse_breaker: { state: 'closed', calls: {} } })
  t.equal(h.homeserver.callsTo('whoami').length, 1)
  t.equal(h.homeserver.callsTo('whoami')[0]?.authorization, `Bearer ${ADMIN_TOKEN}`)
  await (await request(`${h.url}/readyz`)).body.dump()
  t.equal(h.homeserver.callsTo('whoami').length, 1, 'cached: probes do not load Synapse')

  const rejected = await startHarness(t)
  rejected.homeserver.fault = { kind: 'reject-token' }
  const notReady = await request(`${rejected.url}/readyz`)
  t.equal(notReady.statusCode, 503)
  t.equal(notReady.headers['content-type'], 'application/problem+json; charset=utf-8')
  t.match(await notReady.body.json(), { status: 503, code: 'upstream_auth_failed', detail: /admin token/ })

  const broken = await startHarness(t)
  broken.homeserver.fault = { kind: 'not-json' }
  t.match(await (await request(`${broken.url}/readyz`)).body.json(), { code: 'upstream_error' })
  const unreachable = await startHarness(t, { synapseUrl: 'http://127.0.0.1:9' })
  const down = await request(`${unreachable.url}/readyz`)
  t.equal(down.statusCode, 503)
  t.match(await down.body.json(), { code: 'upstream_unavailable' })
  t.equal((await request(`${unreachable.url}/healthz`)).statusCode, 200, 'serves /healthz while Synapse is down')
})

t.test('rate limit per caller: 429 rate_limited with Retry-After, other callers unaffected', async (t) => {
  const h = await startHarness(t, { env: { RATE_LIMIT_PER_MINUTE: '2' } })
  const busy = h.token({ sub: 'busy-bot' })
  t.equal((await h.join(room, { user_id: '@alice:test.local' }, { token: busy })).status, 200)
  t.equal((await h.join(room, { user_id: '@alice:test.local' }, { token: busy })).status, 200)
  const limited = await h.join(room, { user_id: '@alice:test.local' }, { token: busy })
  t.equal(limited.status, 429)
  t.equal(limited.body.code, 'rate_limited')
  t.ok(Number(limited.headers['retry-after']) >= 1 && Number(limited.headers['retry-after']) <= 60)
  t.match(h.audit().at(-1), { outcome: 'denied', code: 'rate_limited', actor: { sub: 'busy-bot' } })
  t.equal(h.homeserver.callsTo('join').length, 2, 'the limited request never reached Synapse')
  t.equal((await h.join(room, { user_id: '@alice:test.local' }, { token: h.token({ sub: 'other-bot' }) })).status, 200)
})

t.test('no secret reaches a log line, an audit entry or a response', async (t) => {
  const h = await startHarness(t, { env: { LOG_LEVEL: 'trace' } })
  const callerToken = h.token({ sub: 'canary-caller' })
  const responses: string[] = []
  const record = async (res: { text: string, headers: Record<string, unknown> }) => { responses.push(res.text, JSON.stringify(res.headers)) }
  await record(await h.join(room, { user_id: '@alice:test.local' }, { token: callerToken }))
  await record(await h.join(room, { user_id: '@ghost:test.local' }, { token: callerToken }))
  await record(await h.join(room, { user_id: 'nope' }, { token: callerToken }))
  await record(await h.join(room, { user_id: '@alice:test.local' }, { token: `${callerToken}x` }))
  for (const fault of ['error-500', 'reject-token', 'reset', 'not-json'] as const) {
    h.homeserver.fault = { kind: fault }
    await record(await h.join(room, { user_id: '@alice:test.local' }, { token: callerToken }))
    await record(await request(`${h.url}/readyz`).then(async (r) => ({ text: await r.body.text(), headers: r.headers })))
  }
  const unknown = await request(`${h.url}/nowhere?access_token=${callerToken}`, { headers: { authorization: `Bearer ${callerToken}` } })
  await record({ text: await unknown.body.text(), headers: unknown.headers })
  const outputs = { logs: h.logs(), audit: h.auditText(), responses: responses.join('\n') }
  t.ok(outputs.logs.length > 0 && outputs.audit.length > 0)
  const signature = callerToken.split('.')[2] as string
  for (const [where, text] of Object.entries(outputs)) {
    t.notOk(text.includes(ADMIN_TOKEN), `admin token not in ${where}`)
    t.notOk(text.includes(JWT_SECRET), `JWT secret not in ${where}`)
    t.notOk(text.includes(signature), `caller token not in ${where}`)
  }
  // Redaction by configuration: were any code to log headers or config, the secrets are censored.
  h.app.log.info({ headers: { authorization: `Bearer ${callerToken}` }, config: { synapse: { adminToken: ADMIN_TOKEN }, jwt: { verification: { secret: JWT_SECRET } } } }, 'redaction probe')
  const probe = h.logs().split('\n').find((line) => line.includes('redaction probe')) as string
  t.match(JSON.parse(probe), { headers: { authorization: '[redacted]' }, config: { synapse: { adminToken: '[redacted]' }, jwt: { verification: { secret: '[redacted]' } } } })
  // The admin token goes to Synapse only, and only to it.
  t.ok(h.homeserver.calls.every((call) => call.authorization === `Bearer ${ADMIN_TOKEN}`))
})

t.test('SIGTERM: in-flight requests finish and are audited, then the process exits', async (t) => {
  const h = await startHarness(t)
  h.homeserver.fault = { kind: 'slow', delayMs: 600, on: 'join' }
  const auditFile = `${h.auditFile}.server`
  const child = spawnServer(h.serverEnv({ AUDIT_LOG_FILE: auditFile }))
  t.after(() => { child.kill('SIGKILL') })
  const out = collect(child)
  const url = await listening(child, out)
  const inFlight = request(`${url}/v1/rooms/${room}/members`, {
    method: 'POST',
    headers: { authorization: `Bearer ${h.token()}`, 'content-type': 'application/json' },
    body: JSON.stringify({ user_id: '@alice:test.local' })
  })
  await waitFor(() => h.homeserver.callsTo('join').length > 0, 'the join to reach the homeserver (in flight)')
  child.kill('SIGTERM')
  const response = await inFlight
  t.equal(response.statusCode, 200, 'the in-flight join completed')
  t.same(await response.body.json(), { room_id: RECORDED_ROOMS.publicTest, user_id: '@alice:test.local' })
  const { code } = await exited(child)
  t.equal(code, 0, 'clean exit')
  const records = readFileSync(auditFile, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line))
  t.same(records.map((record) => record.event), ['start', 'intent', 'result', 'stop'])
  t.match(records[2], { outcome: 'success' })
  t.match(out.stdout, /"msg":"shutting down"/)
  await t.rejects(request(`${url}/healthz`), 'no longer listening')
})
