/**
 * A breaker only Synapse can trip (issue 18): over real sockets, with the breaker's clock in the
 * test's hand (no sleeps). Only connection failures, timeouts and 5xx answers without a Matrix
 * errcode count, per kind of call; answers too big, not the API, or refused with an errcode never
 * do. An open breaker pauses its own kind of call only, shows in /readyz (still 200) and in metrics.
 */
import t from 'tap'
import { request } from 'undici'
import { ACTION_ROOMS, ACTION_USERS } from '../../dev/homeserver/state.js'
import { startHarness, type Harness } from '../helpers/harness.js'
import { act, joinPath } from '../helpers/audit.js'
import { allowAllPolicy, enc } from '../helpers/actions.js'

const room = ACTION_ROOMS.kickPublic
const user = ACTION_USERS.neverJoined

async function gateway (t: { after: (fn: () => unknown) => void }, threshold: number) {
  const clock = { now: 1_000_000 }
  const h = await startHarness(t, {
    env: { POLICY_FILE: allowAllPolicy(t), RATE_LIMIT_PER_MINUTE: '10000' },
    homeserver: { fixture: 'actions' },
    synapseBreaker: { failureThreshold: threshold, openMs: 30_000, now: () => clock.now }
  })
  return { h, clock }
}

const join = async (h: Harness) => await act(h.url, 'POST', joinPath(room), { token: h.token(), body: { user_id: user } })
const readUser = async (h: Harness) => await act(h.url, 'GET', `/v1/users/${enc(user)}`, { token: h.token() })
const readiness = async (h: Harness) => {
  const res = await request(`${h.url}/readyz`)
  return { status: res.statusCode, body: await res.body.json() as Record<string, any> }
}
const metricsText = async (h: Harness) => await (await request(`${h.url}/metrics`)).body.text()

t.test('a join endpoint answering 500 without errcode opens the breaker for joins, while lookups and reads go on', async (t) => {
  const { h } = await gateway(t, 3)
  h.homeserver.fault = { kind: 'answer', on: 'join', status: 500 }
  for (let i = 0; i < 3; i++) t.equal((await join(h)).body.code, 'upstream_error', `join ${i + 1} fails upstream`)
  const joins = h.homeserver.callsTo('join').length
  const refused = await join(h)
  t.equal(refused.status, 503, 'the fourth join is refused at once')
  t.equal(refused.body.code, 'upstream_unavailable')
  t.equal(refused.headers['retry-after'], '30', 'Retry-After: the rest of the open period of joins')
  t.equal(h.homeserver.callsTo('join').length, joins, 'no join reached Synapse')
  t.equal((await readUser(h)).status, 200, 'user.read (lookup, joined rooms) still works')

  const ready = await readiness(h)
  t.equal(ready.status, 200, '/readyz stays 200')
  t.same(ready.body.synapse_breaker, { state: 'open', calls: { join: 'open' } })
  const text = await metricsText(h)
  t.match(text, /^gateway_synapse_call_circuit_state\{call="join"\} 1$/m, 'metrics: join open')
  t.match(text, /^gateway_synapse_call_circuit_state\{call="user_lookup"\} 0$/m, 'metrics: lookups closed')
  t.match(text, /^gateway_synapse_circuit_state 1$/m, 'the overall gauge shows the worst')
})

t.test('answers that are too big, not the API, or refused with an errcode never open the breaker', async (t) => {
  const { h } = await gateway(t, 2)
  const faults = [
    { kind: 'huge', on: 'user_lookup' }, // 1 MiB for a call read whole
    { kind: 'answer', on: 'user_lookup', status: 200, body: 'not an object' },
    { kind: 'answer', on: 'user_lookup', status: 403, body: { errcode: 'M_FORBIDDEN', error: 'No' } },
    { kind: 'answer', on: 'join', status: 503, body: { errcode: 'M_UNKNOWN', error: 'Failed to make remote join' } },
    { kind: 'answer', on: 'join', status: 502, body: { errcode: 'M_UNKNOWN', error: 'Failed to fetch alias' } }
  ] as const
  for (const fault of faults) {
    h.homeserver.fault = { ...fault }
    for (let i = 0; i < 3; i++) t.ok((await join(h)).status >= 400, `${fault.kind} ${'status' in fault ? fault.status : ''} on ${fault.on}: refused`)
  }
  h.homeserver.fault = undefined
  t.equal((await join(h)).status, 200, 'then a join goes through: none of those counted')
  t.same((await readiness(h)).body.synapse_breaker, { state: 'closed', calls: {} })
})

t.test('connection resets count; half-open lets one trial through once the clock passes the open period', async (t) => {
  const { h, clock } = await gateway(t, 2)
  h.homeserver.fault = { kind: 'reset', on: 'join' }
  for (let i = 0; i < 2; i++) t.equal((await join(h)).status, 502, `reset ${i + 1}`)
  t.equal((await join(h)).status, 503, 'open after two resets')
  h.homeserver.fault = undefined
  clock.now += 29_000
  t.equal((await join(h)).status, 503, 'still open a second before the end')
  clock.now += 1000
  t.same((await readiness(h)).body.synapse_breaker, { state: 'half_open', calls: { join: 'half_open' } })
  h.homeserver.fault = { kind: 'slow', on: 'join', delayMs: 300 }
  const joins = h.homeserver.callsTo('join').length
  const answers = await Promise.all(Array.from({ length: 4 }, async () => await join(h)))
  t.same(answers.map((answer) => answer.status).sort(), [200, 503, 503, 503], 'one trial, the others refused')
  t.equal(h.homeserver.callsTo('join').length, joins + 1, 'exactly one join reached Synapse')
  h.homeserver.fault = undefined
  t.equal((await join(h)).status, 200, 'the trial closed the circuit')
  t.same((await readiness(h)).body.synapse_breaker, { state: 'closed', calls: {} })

  // A failed trial opens the circuit again for a whole period.
  h.homeserver.fault = { kind: 'answer', on: 'join', status: 502 }
  for (let i = 0; i < 2; i++) await join(h)
  clock.now += 30_000
  t.equal((await join(h)).status, 502, 'the trial fails')
  t.equal((await join(h)).status, 503, 'and the circuit is open again')
})
