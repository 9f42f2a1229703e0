/**
 * Hostile requests at the HTTP level, upstream faults over real sockets, load limits and the
 * circuit breaker. Everything refused gets a problem+json answer: never a 500, a hang or a crash.
 */
import { connect } from 'node:net'
import t from 'tap'
import { request } from 'undici'
import { RECORDED_ROOMS } from '../../dev/homeserver/state.js'
import { startHarness } from '../helpers/harness.js'
import { waitFor } from '../helpers/wait.js'
import { manualClock } from '../helpers/clock.js'

const room = encodeURIComponent(RECORDED_ROOMS.publicTest)
const user = { user_id: '@alice:test.local' }

/** Sends raw bytes and resolves with what the server answered before closing. */
async function raw (url: string, bytes: string, { waitMs = 0 } = {}): Promise<{ text: string, status: number }> {
  const { hostname, port } = new URL(url)
  return await new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname)
    let text = ''
    socket.on('data', (chunk) => { text += chunk.toString() })
    socket.on('error', reject)
    socket.on('close', () => resolve({ text, status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0) }))
    socket.write(bytes)
    if (waitMs === 0) socket.end()
  })
}
const problemOf = (text: string) => JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>

t.test('two Authorization headers are refused, whichever comes first', async (t) => {
  const h = await startHarness(t)
  const res = await request(`${h.url}/v1/rooms/${room}/members`, {
    method: 'POST',
    headers: ['authorization', `Bearer ${h.token()}`, 'Authorization', 'Bearer forged', 'content-type', 'application/json'],
    body: JSON.stringify(user)
  })
  t.equal(res.statusCode, 400)
  t.match(await res.body.json(), { code: 'invalid_request' })
  t.equal(h.homeserver.calls.length, 0)
  t.match(h.audit()[0], { outcome: 'invalid', code: 'invalid_request', actor: null })
})

t.test('requests the HTTP parser refuses still get problem+json', async (t) => {
  const h = await startHarness(t)
  const smuggled = await raw(h.url, `POST /v1/rooms/${room}/members HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`)
  t.equal(smuggled.status, 400, 'Content-Length with Transfer-Encoding')
  t.match(smuggled.text, /Content-Type: application\/problem\+json/)
  t.match(problemOf(smuggled.text), { status: 400, code: 'invalid_request' })
  t.equal(/X-Request-Id: ([0-9a-f-]{36})/.exec(smuggled.text)?.[1], problemOf(smuggled.text).request_id, 'with an x-request-id like every answer')
  const oversized = await raw(h.url, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`)
  t.equal(oversized.status, 431)
  t.match(problemOf(oversized.text), { status: 431, code: 'headers_too_large' })
  const garbage = await raw(h.url, 'THIS IS NOT HTTP\r\n\r\n')
  t.equal(garbage.status, 400)
  t.equal(h.homeserver.calls.length, 0)
})

t.test('slow clients get 408 within seconds while others are served', async (t) => {
  // The production limits (10 s a request, 5 s for headers) scaled down: the same 408s, sooner.
  const h = await startHarness(t, { clientTimeouts: { requestMs: 1_000, headersMs: 500, checkEveryMs: 100 } })
  const { hostname, port } = new URL(h.url)
  const slowHeaders = new Promise<string>((resolve) => {
    const socket = connect(Number(port), hostname, () => { socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n') })
    let text = ''
    socket.on('data', (chunk) => { text += chunk.toString() })
    socket.on('close', () => resolve(text))
  })
  const slowBody = new Promise<string>((resolve) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(`POST /v1/rooms/${room}/members HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${h.token()}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"user_id"`)
    })
    let text = ''
    socket.on('data', (chunk) => { text += chunk.toString() })
    socket.on('close', () => resolve(text))
  })
  const normal = await request(`${h.url}/healthz`)
  t.equal(normal.statusCode, 200, 'a normal client is served meanwhile')
  await normal.body.dump()
  t.match(await slowHeaders, /^HTTP\/1\.1 408 /, 'slow headers')
  const body = await slowBody
  t.match(body, /^HTTP\/1\.1 408 /, 'slow body')
  t.match(problemOf(body), { code: 'request_timeout' })
  t.equal(h.homeserver.calls.length, 0)
})

t.test('the per-IP limit applies before any token is verified', async (t) => {
  const h = await startHarness(t, { env: { RATE_LIMIT_PER_IP_PER_MINUTE: '5' } })
  const codes: string[] = []
  for (let i = 0; i < 8; i++) codes.push((await h.join(room, user, { token: `junk.${i}.token` })).body.code)
  t.same(codes, ['invalid_token', 'invalid_token', 'invalid_token', 'invalid_token', 'invalid_token', 'rate_limited', 'rate_limited', 'rate_limited'])
  const limited = await h.join(room, user)
  t.equal(limited.status, 429, 'valid tokens from the same address too')
  t.ok(Number(limited.headers['retry-after']) > 0)
  t.match(h.audit().at(-1), { outcome: 'denied', code: 'rate_limited', actor: null })
})

t.test('upstream faults over real sockets: parse errors, oversized bodies, dripping answers; POST never retried once sent', async (t) => {
  const h = await startHarness(t, { env: { SYNAPSE_TIMEOUT_MS: '500' } })
  h.homeserver.fault = { kind: 'garbage', on: 'join' }
  let res = await h.join(room, user)
  t.match(res.body, { status: 502, code: 'upstream_error' })
  t.match(h.audit().at(-1), { outcome: 'unknown' })
  h.homeserver.fault = { kind: 'huge', on: 'join' }
  res = await h.join(room, user)
  t.match(res.body, { status: 502, code: 'upstream_error' })
  h.homeserver.fault = { kind: 'drip', on: 'user_lookup', delayMs: 100 }
  res = await h.join(room, user)
  t.match(res.body, { status: 504, code: 'upstream_timeout' }, 'a dripping answer cannot outlast SYNAPSE_TIMEOUT_MS')
  h.homeserver.fault = { kind: 'reset', on: 'join' }
  const before = h.homeserver.callsTo('join').length
  res = await h.join(room, user)
  t.equal(res.status, 502)
  t.equal(h.homeserver.callsTo('join').length, before + 1, 'the join was sent once, not retried')
})

t.test('requests in flight to Synapse are capped; the excess waits in a bounded queue, then is refused', async (t) => {
  const h = await startHarness(t, { env: { SYNAPSE_MAX_CONCURRENCY: '2', SYNAPSE_QUEUE_TIMEOUT_MS: '200', SYNAPSE_TIMEOUT_MS: '1500', RATE_LIMIT_PER_MINUTE: '1000' } })
  h.homeserver.fault = { kind: 'hang', on: 'user_lookup' }
  const order: number[] = []
  const all = await Promise.all(Array.from({ length: 6 }, async () => {
    const res = await h.join(room, user)
    order.push(res.status)
    return res
  }))
  t.equal(all.filter((res) => res.status === 504).length, 2, 'two went to Synapse and timed out')
  const refused = all.filter((res) => res.status === 503)
  t.equal(refused.length, 4)
  t.ok(refused.every((res) => res.body.code === 'upstream_unavailable' && res.headers['retry-after'] === '1'))
  t.same(order, [503, 503, 503, 503, 504, 504], 'the queue timeout ended the wait before the Synapse timeout')
  t.equal(h.homeserver.callsTo('user_lookup').length, 2)
})

t.test('a burst above SYNAPSE_MAX_CONCURRENCY is served, not refused', async (t) => {
  const h = await startHarness(t, { env: { SYNAPSE_MAX_CONCURRENCY: '4', RATE_LIMIT_PER_MINUTE: '100000', RATE_LIMIT_PER_IP_PER_MINUTE: '100000' } })
  h.homeserver.fault = { kind: 'slow', delayMs: 20 }
  const all = await Promise.all(Array.from({ length: 40 }, async () => await h.join(room, user)))
  t.same([...new Set(all.map((res) => res.status))], [200], 'all 40 joins answered 200 with a cap of 4')
})

t.test('a circuit breaker fails fast while Synapse keeps failing, and recovers by itself', async (t) => {
  const clock = manualClock()
  const h = await startHarness(t, { synapseBreaker: { failureThreshold: 3, openMs: 300, now: clock.now }, env: { RATE_LIMIT_PER_MINUTE: '1000' } })
  h.homeserver.fault = { kind: 'error-500', on: 'user_lookup' }
  for (let i = 0; i < 3; i++) t.equal((await h.join(room, user)).body.code, 'upstream_error')
  const calls = h.homeserver.calls.length
  const open = await h.join(room, user)
  t.equal(open.status, 503)
  t.equal(open.body.code, 'upstream_unavailable')
  t.ok(Number(open.headers['retry-after']) >= 1)
  t.equal(h.homeserver.calls.length, calls, 'Synapse is not called while the circuit is open')
  h.homeserver.fault = undefined
  clock.advance(300)
  t.equal((await h.join(room, user)).status, 200, 'a trial goes through after the pause and closes the circuit')
  t.equal((await h.join(room, user)).status, 200)
})

t.test('while shutting down, in-flight requests finish and requests behind them get 503 shutting_down', async (t) => {
  const h = await startHarness(t)
  h.homeserver.fault = { kind: 'slow', delayMs: 300, on: 'join' }
  const { hostname, port } = new URL(h.url)
  const body = JSON.stringify(user)
  const post = (id: string) => `POST /v1/rooms/${room}/members HTTP/1.1\r\nHost: x\r\nX-Request-Id: ${id}\r\nAuthorization: Bearer ${h.token()}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`
  const socket = connect(Number(port), hostname)
  let text = ''
  socket.on('data', (chunk) => { text += chunk.toString() })
  const ended = new Promise((resolve) => socket.on('close', resolve))
  socket.write(post('first'))
  await waitFor(() => h.homeserver.callsTo('join').length > 0, 'the first join to reach the homeserver (in flight)')
  const closed = h.app.close()
  // The server stops listening after the gateway's preClose hook: from then on it refuses what arrives.
  await waitFor(() => !h.app.server.listening, 'the gateway to begin shutting down')
  socket.write(post('behind'))
  await closed
  await ended
  t.match(text, /^HTTP\/1\.1 200 /, 'the in-flight join finished')
  t.match(text, /connection: close/i, 'and ended its keep-alive connection')
  const statuses = h.audit().map((entry) => `${entry.request_id} ${entry.status}`)
  t.ok(statuses.includes('first 200'), 'the in-flight join is audited')
  t.ok(statuses.includes('behind 503'), 'the request behind it is refused (and audited), whether or not its answer still reaches the socket')
  t.equal(h.audit().find((entry) => entry.request_id === 'behind')?.code, 'shutting_down')
  t.equal(h.homeserver.callsTo('join').length, 1, 'only the in-flight join reached Synapse')
})
