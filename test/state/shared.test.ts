import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import { pino } from 'pino'
import { fingerprint } from '../../src/state/idempotency.js'
import { createSharedState, redactedUrl, StateUnavailableError, type SharedState } from '../../src/state/shared.js'
import { skipWithoutRedis, startRedisServer, until } from '../helpers/redis.js'

type Tap = Test

const join = fingerprint('POST', '/v1/rooms/!r:test.local/members', '{"user_id":"@alice:test.local"}')
const PASSWORD = 'CANARY-redis-password-d41c'

function capture (): { log: ReturnType<typeof pino>, lines: () => Array<Record<string, any>>, text: () => string } {
  let text = ''
  const sink = new Writable({ write (chunk: Buffer, _encoding, done) { text += chunk.toString(); done() } })
  return { log: pino({ level: 'info' }, sink), lines: () => text.split('\n').filter(Boolean).map((line) => JSON.parse(line)), text: () => text }
}

function shared (t: Tap, redisUrl: string | undefined, log = capture().log, heartbeatMs?: number): SharedState {
  const state = createSharedState({ redisUrl, idempotencyTtlS: 3600, inFlightTtlS: 60, log, heartbeatMs })
  t.after(() => state.close())
  return state
}

/** Resolves with how long `promise` took to reject with StateUnavailableError. */
async function rejectsUnavailable (t: Tap, promise: Promise<unknown>, what: string): Promise<number> {
  const started = performance.now()
  const error = await promise.then(() => undefined, (error: unknown) => error)
  t.type(error, StateUnavailableError, `${what}: StateUnavailableError`)
  return performance.now() - started
}

t.test('without REDIS_URL: per replica, always available', async (t) => {
  const state = shared(t, undefined)
  t.equal(state.redis, undefined)
  t.equal(state.available, true)
  t.same(await state.idempotency.claim('helpdesk-bot', 'k', join), { kind: 'new' })
  t.same(await state.idempotency.claim('helpdesk-bot', 'k', join), { kind: 'in_progress' }, 'a memory store')
})

t.test('the Redis URL as logged', async (t) => {
  t.equal(redactedUrl(`redis://user:${PASSWORD}@redis.internal:6380/2`), 'redis://redis.internal:6380/2', 'user and password dropped')
  t.equal(redactedUrl(`rediss://:${PASSWORD}@redis.internal`), 'rediss://redis.internal', 'password only')
  t.equal(redactedUrl('valkey://valkey:6379'), 'valkey://valkey:6379')
  t.equal(redactedUrl('redis://[oops'), '(unparsable REDIS_URL)')
})

const skip = skipWithoutRedis('the shared state tests against a real Redis')

t.test('Redis killed mid-run: calls fail fast, available turns false, and back when Redis returns', { skip }, async (t) => {
  const server = await startRedisServer(t, { password: PASSWORD })
  const logs = capture()
  const state = shared(t, server.url, logs.log)
  await until('connects', () => state.available)
  t.ok(state.redis, 'exposes the client')
  t.same(await state.idempotency.claim('helpdesk-bot', 'before', join), { kind: 'new' })

  await server.kill()
  await until('available to turn false after SIGKILL', () => !state.available)
  const elapsed = await rejectsUnavailable(t, state.idempotency.claim('helpdesk-bot', 'during', join), 'claim')
  t.ok(elapsed < 2000, `rejected in ${elapsed.toFixed(0)} ms, not held until Redis returns`)
  await rejectsUnavailable(t, state.idempotency.complete('helpdesk-bot', 'before', { status: 200, headers: {}, body: '{}' }), 'complete')
  t.equal(state.available, false, 'still unavailable')

  // Several reconnect attempts fail while Redis is away; the log says so once.
  let failures = 0
  state.redis?.on('error', () => { failures++ })
  await until('two reconnect attempts to fail', () => failures >= 2)

  await server.restart()
  await until('reconnects in the background', () => state.available)
  t.equal(state.available, true)
  t.same(await state.idempotency.claim('helpdesk-bot', 'after', join), { kind: 'new' }, 'works again')
  t.same(await state.idempotency.claim('helpdesk-bot', 'during', join), { kind: 'new' }, 'the claim refused during the outage was not queued and sent later')

  const warnings = logs.lines().filter((line) => line.level === 40)
  t.equal(warnings.length, 2, 'one warning per change of state')
  t.match(warnings[0], { redis: `redis://127.0.0.1:${server.port}`, msg: /unavailable/ })
  t.match(warnings[1], { redis: `redis://127.0.0.1:${server.port}`, msg: /available again/ })
  t.match(logs.lines()[0], { level: 30, msg: 'Shared state connected' })
  t.notMatch(logs.text(), PASSWORD, 'the password is never logged')
})

t.test('Redis hung: a command times out and is not re-sent after recovery', { skip }, async (t) => {
  const server = await startRedisServer(t)
  const state = shared(t, server.url)
  await until('connected', () => state.available)
  server.pause()
  t.after(() => server.resume())
  const elapsed = await rejectsUnavailable(t, state.idempotency.claim('helpdesk-bot', 'hung', join), 'claim to a stopped Redis')
  t.ok(elapsed < 5000, `rejected after ${elapsed.toFixed(0)} ms (command timeout)`)
  // The Redis that comes back is a fresh one: had the client re-sent the unanswered claim, its
  // record would show up there.
  await server.restart()
  await until('available again after the restart', () => state.available)
  t.same(await state.redis?.keys('*'), [], 'nothing was replayed into the new server')
  t.same(await state.idempotency.claim('helpdesk-bot', 'hung', join), { kind: 'new' })
})

t.test('Redis unreachable from the start', { skip }, async (t) => {
  const server = await startRedisServer(t)
  await server.kill()
  const logs = capture()
  const state = shared(t, `valkey://127.0.0.1:${server.port}`, logs.log)
  let failures = 0
  state.redis?.on('error', () => { failures++ })
  await until('three connection attempts to fail', () => failures >= 3)
  t.equal(state.available, false)
  const elapsed = await rejectsUnavailable(t, state.idempotency.claim('helpdesk-bot', 'k', join), 'claim')
  t.ok(elapsed < 2000, `rejected in ${elapsed.toFixed(0)} ms, without waiting for a connection`)
  t.equal(logs.lines().filter((line) => line.level === 40).length, 1, 'one warning, not one per attempt')
  await server.restart()
  await until('a valkey:// URL connects once the server is there', () => state.available)
  await state.close()
  t.equal(logs.lines().filter((line) => line.level === 40).length, 2, 'closing is not an outage')
})

t.test('Redis hung: one warning when it stops answering, one info line when it answers again', { skip }, async (t) => {
  const server = await startRedisServer(t)
  const logs = capture()
  const state = shared(t, server.url, logs.log, 100)
  await until('the state to connect', () => state.available)
  const hungLines = () => logs.lines().filter((line) => /does not answer/.test(line.msg))
  const backLines = () => logs.lines().filter((line) => /answers again/.test(line.msg))

  server.pause()
  t.after(() => server.resume())
  await until('the warning', () => hungLines().length === 1)
  t.match(hungLines()[0], { level: 40, redis: `redis://127.0.0.1:${server.port}`, msg: 'Redis does not answer within 1000 ms: acting requests are refused with 503 state_unavailable (reads go on with per-replica limits)' })
  t.equal(state.available, false, 'seen as unavailable, so limits fall back or refuse at once')
  // Each refused claim waits out the command timeout, as long as a heartbeat's PING: more
  // heartbeats fail meanwhile, and still one warning.
  for (const key of ['hung-1', 'hung-2', 'hung-3']) await rejectsUnavailable(t, state.idempotency.claim('helpdesk-bot', key, join), 'a claim while hung')
  t.equal(hungLines().length, 1, 'once per change, not once per heartbeat')

  server.resume()
  await until('the info line', () => backLines().length === 1)
  t.match(backLines()[0], { level: 30, msg: 'Redis answers again: acting requests run again' })
  t.equal(state.available, true)
  t.same(await state.idempotency.claim('helpdesk-bot', 'after', join), { kind: 'new' }, 'works again')
  t.equal(hungLines().length, 1)
  t.equal(logs.lines().filter((line) => line.level === 40).length, 1, 'the connection never dropped: no other warning')
})
