/**
 * Readiness and the circuit breaker as issue 8's review asked, over real sockets: /readyz
 * reflects Synapse and the audit, not the gateway's own load (cap saturated, breaker open);
 * answers about one room do not open the breaker while 500s and resets do; half-open lets
 * exactly one trial through.
 */
import t from 'tap'
import { request } from 'undici'
import { RECORDED_ROOMS } from '../../dev/homeserver/state.js'
import type { FaultKind } from '../../dev/homeserver/server.js'
import { startHarness, type Harness } from '../helpers/harness.js'
import { act, joinPath, until } from '../helpers/audit.js'

const room = RECORDED_ROOMS.publicTest
const alice = '@alice:test.local'

async function readiness (h: Harness): Promise<{ status: number, code: string | undefined }> {
  const res = await request(`${h.url}/readyz`)
  const body = await res.body.json() as { code?: string }
  return { status: res.statusCode, code: body.code }
}

const join = async (h: Harness, alias: string = room) => await act(h.url, 'POST', joinPath(alias), { token: h.token(), body: { user_id: alice } })

t.test('/readyz stays 200 while the gateway\'s own Synapse cap is saturated', async (t) => {
  const h = await startHarness(t, { env: { SYNAPSE_MAX_CONCURRENCY: '1', SYNAPSE_QUEUE_TIMEOUT_MS: '0', SYNAPSE_TIMEOUT_MS: '3000' } })
  h.homeserver.fault = { kind: 'hang', on: 'join' }
  const held = join(h)
  await until(() => h.homeserver.callsTo('join').length === 1, 'the homeserver to hold the join')
  const refused = await join(h)
  t.equal(refused.status, 503, 'the cap is taken: another action is refused')
  t.equal(refused.body.code, 'upstream_unavailable')
  t.same(await readiness(h), { status: 200, code: undefined }, 'but the replica stays ready')
  t.equal((await held).body.code, 'upstream_timeout')
})

t.test('/readyz stays 200 while the breaker is open, and shows which kind of call it pauses', async (t) => {
  // Failures are counted per kind of call: the lookups before each join succeed, the joins fail.
  const h = await startHarness(t, { synapseBreaker: { failureThreshold: 2, openMs: 60_000 } })
  h.homeserver.fault = { kind: 'error-500', on: 'join' }
  for (let i = 0; i < 2; i++) t.equal((await join(h)).body.code, 'upstream_error')
  const joins = h.homeserver.callsTo('join').length
  const open = await join(h)
  t.equal(open.body.code, 'upstream_unavailable', 'the breaker is open for joins')
  t.equal(h.homeserver.callsTo('join').length, joins, 'and no join was sent')
  t.same(await readiness(h), { status: 200, code: undefined }, 'Synapse itself answers the probes: ready')
  const body = await (await request(`${h.url}/readyz`)).body.json()
  t.same(body, { status: 'ready', synapse_version: '1.163.2', synapse_breaker: { state: 'open', calls: { join: 'open' } } }, '/readyz names the paused kind of call')
})

t.test('answers about one room (502 "Failed to fetch alias" with a Matrix errcode) do not open the breaker', async (t) => {
  const h = await startHarness(t, { env: { ALLOW_REMOTE_ROOMS: 'true' }, synapseBreaker: { failureThreshold: 2, openMs: 60_000 } })
  for (let i = 0; i < 5; i++) {
    const before = h.homeserver.callsTo('directory').length
    const res = await join(h, `#room${i}:remote.example`)
    t.equal(res.status, 502, `remote alias ${i}`)
    t.equal(res.body.matrix_errcode, 'M_UNKNOWN')
    t.equal(h.homeserver.callsTo('directory').length, before + 1, `remote alias ${i} was asked of Synapse`)
  }
  const joins = h.homeserver.callsTo('join').length
  t.equal((await join(h)).status, 200, 'after five of them, a local join still goes through')
  t.equal(h.homeserver.callsTo('join').length, joins + 1)
})

for (const kind of ['error-500', 'reset'] as FaultKind[]) {
  t.test(`${kind} answers open the breaker`, async (t) => {
    const h = await startHarness(t, { synapseBreaker: { failureThreshold: 2, openMs: 60_000 } })
    h.homeserver.fault = { kind }
    for (let i = 0; i < 2; i++) t.ok((await join(h)).status >= 502, `failure ${i + 1}`)
    h.homeserver.fault = undefined
    const calls = h.homeserver.calls.length
    const open = await join(h)
    t.equal(open.status, 503)
    t.equal(open.body.code, 'upstream_unavailable')
    t.equal(h.homeserver.calls.length, calls, 'nothing reaches the homeserver while the circuit is open')
  })
}

t.test('half-open: of several concurrent requests after the open period, exactly one reaches the homeserver', async (t) => {
  const openMs = 400
  const h = await startHarness(t, { synapseBreaker: { failureThreshold: 2, openMs } })
  h.homeserver.fault = { kind: 'error-500', on: 'user_lookup' }
  for (let i = 0; i < 2; i++) t.equal((await join(h)).body.code, 'upstream_error')
  const openedAt = Date.now()
  // The trial is held a while by the homeserver, so the others arrive while it is in flight.
  h.homeserver.fault = { kind: 'slow', on: 'user_lookup', delayMs: 500 }
  await until(() => Date.now() - openedAt > openMs + 50, 'the open period to pass')
  const callsBefore = h.homeserver.calls.length
  const answers = await Promise.all(Array.from({ length: 5 }, async () => await join(h)))
  const statuses = answers.map((res) => res.status).sort()
  t.same(statuses, [200, 503, 503, 503, 503], 'one trial succeeded, the others were refused')
  t.ok(answers.filter((res) => res.status === 503).every((res) => res.body.code === 'upstream_unavailable'))
  const during = h.homeserver.calls.slice(callsBefore).map((call) => call.endpoint)
  t.same(during, ['user_lookup', 'join'], 'exactly one request reached the homeserver (its lookup, then its join)')
  h.homeserver.fault = undefined
  t.equal((await join(h)).status, 200, 'the trial closed the circuit')
})
