/**
 * What operators rely on: Prometheus metrics (bounded labels, own port or off), client
 * addresses behind a trusted reverse proxy, and readable logs on request.
 */
import t from 'tap'
import { request } from 'undici'
import { RECORDED_ROOMS } from '../../dev/homeserver/state.js'
import { loadConfig, ConfigError } from '../../src/config.js'
import { startHarness } from '../helpers/harness.js'
import { freePort } from '../../bench/free-port.js'
import { collect, listening, spawnServer } from '../helpers/process.js'
import { waitFor } from '../helpers/wait.js'

const room = encodeURIComponent(RECORDED_ROOMS.publicTest)

t.test('/metrics in Prometheus format, with bounded labels only', async (t) => {
  const h = await startHarness(t, { env: { RATE_LIMIT_PER_MINUTE: '3' } })
  await h.join(room, { user_id: '@alice:test.local' })
  await h.join(room, { user_id: '@dave:test.local' })
  await h.join(room, { user_id: '@alice:test.local' }, { token: 'junk' })
  await h.join(room, { user_id: '@alice:test.local' })
  await h.join(room, { user_id: '@alice:test.local' })
  h.homeserver.fault = { kind: 'error-500', on: 'user_lookup' }
  await h.join(room, { user_id: '@bob:test.local' }, { token: h.token({ sub: 'another' }) })
  await h.join('%23nope:test.local', { user_id: '@alice:test.local' }, { token: h.token({ sub: 'another' }) })
  const res = await request(`${h.url}/metrics`)
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  const text = await res.body.text()
  t.match(text, /gateway_actions_total\{action="room.join",outcome="success",code="none"\} 2/)
  t.match(text, /gateway_actions_total\{action="room.join",outcome="failed",code="user_deactivated"\} 1/)
  t.match(text, /gateway_actions_total\{action="room.join",outcome="denied",code="invalid_token"\} 1/)
  t.match(text, /gateway_actions_total\{action="room.join",outcome="denied",code="rate_limited"\} 1/)
  t.match(text, /gateway_rate_limited_total\{limit="caller"\} 1/)
  t.match(text, /gateway_synapse_request_duration_seconds_bucket\{le="[0-9.]+",call="join"\}/)
  t.match(text, /gateway_synapse_errors_total\{call="user_lookup",kind="http_5xx"\} 1/)
  t.match(text, /gateway_http_requests_total\{route="\/v1\/rooms\/:roomIdOrAlias\/members",method="POST",status="200"\} 2/)
  t.match(text, /process_resident_memory_bytes/)
  t.notMatch(text, /@alice|@dave|test\.local|helpdesk-bot|#nope/, 'no user, room or caller in any label')
})

t.test('metrics can be turned off, or moved to their own port', async (t) => {
  const off = await startHarness(t, { env: { METRICS_ENABLED: 'false' } })
  t.equal((await request(`${off.url}/metrics`)).statusCode, 404)

  const h = await startHarness(t)
  const child = spawnServer(h.serverEnv({ METRICS_PORT: String(await freePort()) }))
  t.after(() => { child.kill('SIGKILL') })
  const out = collect(child)
  const url = await listening(child, out)
  t.equal((await request(`${url}/metrics`)).statusCode, 404, 'not on the API port')
  await waitFor(() => out.stdout.includes('Metrics listening'), 'the server to log "Metrics listening"', { describe: () => out.stdout })
  const metricsUrl = /Metrics listening at (http:\/\/[^"]+)/.exec(out.stdout)?.[1] as string
  const metrics = await request(metricsUrl)
  t.equal(metrics.statusCode, 200)
  t.match(await metrics.body.text(), /gateway_http_requests_total/)
})

t.test('TRUST_PROXY decides whose X-Forwarded-For reaches the audit log and the per-IP limit', async (t) => {
  const direct = await startHarness(t)
  await direct.join(room, { user_id: '@alice:test.local' }, { headers: { 'x-forwarded-for': '203.0.113.7' } })
  t.equal(direct.audit()[0]?.client.ip, '127.0.0.1', 'not trusted by default: a caller cannot pick its address')
  const proxied = await startHarness(t, { env: { TRUST_PROXY: '127.0.0.1' } })
  await proxied.join(room, { user_id: '@alice:test.local' }, { headers: { 'x-forwarded-for': '203.0.113.7' } })
  t.equal(proxied.audit()[0]?.client.ip, '203.0.113.7', 'behind a trusted proxy: the client\'s address')
  const hops = await startHarness(t, { env: { TRUST_PROXY: '1' } })
  await hops.join(room, { user_id: '@alice:test.local' }, { headers: { 'x-forwarded-for': '198.51.100.1, 203.0.113.7' } })
  t.equal(hops.audit()[0]?.client.ip, '203.0.113.7', 'one trusted hop')
  const base = { SYNAPSE_URL: 'http://x', SYNAPSE_ADMIN_TOKEN: 'x', SYNAPSE_SERVER_NAME: 'x.org', JWT_SECRET: 'x' }
  t.throws(() => loadConfig({ ...base, TRUST_PROXY: 'everyone!' }), ConfigError)
  t.same(loadConfig({ ...base, TRUST_PROXY: '10.0.0.0/8, 127.0.0.1' }).trustProxy, ['10.0.0.0/8', '127.0.0.1'])
})
