import rateLimit from '@fastify/rate-limit'
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { pino } from 'pino'
import { registerRateLimits, sharedLimitOptions } from '../../src/state/rate-limit.js'
import { MemoryLimitStore } from '../../src/state/memory-limit-store.js'
import { createSharedState, StateUnavailableError, type SharedState } from '../../src/state/shared.js'
import { skipWithoutRedis, startRedisServer, until } from '../helpers/redis.js'

type Tap = Test

interface Replica { app: FastifyInstance, state: SharedState }

/**
 * A bare Fastify app using the limits as the gateway does: `POST /act` refuses when the shared
 * count is unavailable (503 state_unavailable), `GET /read` falls back to a per-replica count.
 */
async function replica (t: Tap, redisUrl: string | undefined): Promise<Replica> {
  const state = createSharedState({ redisUrl, idempotencyTtlS: 3600, inFlightTtlS: 60, log: pino({ level: 'silent' }) })
  t.after(() => state.close())
  await until('the replica is connected', () => state.available)
  const app = Fastify()
  t.after(() => app.close())
  app.setErrorHandler((error, _request, reply) => {
    if (error instanceof StateUnavailableError) return reply.code(503).send({ code: 'state_unavailable' })
    return reply.code(500).send({ code: 'internal_error' })
  })
  const limits = await registerRateLimits(app, state)
  const perCaller = limits.create({ name: 'caller', max: 5, timeWindow: 60_000, keyGenerator: (request) => String(request.headers['x-caller']) })
  app.post('/act', async (request, reply) => {
    const verdict = await perCaller(request, 'refuse')
    if (!verdict.allowed) return reply.code(429).header('retry-after', verdict.retryAfterS).send({ code: 'rate_limited' })
    return { counted: verdict.counted, remaining: verdict.remaining }
  })
  app.get('/read', async (request, reply) => {
    const verdict = await perCaller(request, 'per-replica')
    if (!verdict.allowed) return reply.code(429).send({ code: 'rate_limited', counted: verdict.counted })
    return { counted: verdict.counted }
  })
  await app.ready()
  return { app, state }
}

async function call (target: Replica, method: 'POST' | 'GET', caller = 'helpdesk-bot'): Promise<{ status: number, body: any, headers: Record<string, unknown> }> {
  const response = await target.app.inject({ method, url: method === 'POST' ? '/act' : '/read', headers: { 'x-caller': caller } })
  return { status: response.statusCode, body: response.json(), headers: response.headers }
}

t.test('sharedLimitOptions', async (t) => {
  const memory = createSharedState({ redisUrl: undefined, idempotencyTtlS: 1, inFlightTtlS: 1, log: pino({ level: 'silent' }) })
  t.same(sharedLimitOptions(memory), { global: false, store: MemoryLimitStore }, 'without Redis: a memory store')
})

t.test('without REDIS_URL every replica counts alone', async (t) => {
  const [a, b] = [await replica(t, undefined), await replica(t, undefined)]
  for (let i = 0; i < 5; i++) t.match(await call(a, 'POST'), { status: 200, body: { counted: 'replica', remaining: 4 - i } })
  t.match(await call(a, 'POST'), { status: 429, body: { code: 'rate_limited' } }, 'the sixth on the same replica')
  t.equal((await call(b, 'POST')).status, 200, 'the other replica has its own count')
})

t.test('registering @fastify/rate-limit twice would shadow the shared limits', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(rateLimit, { global: false })
  const state = createSharedState({ redisUrl: undefined, idempotencyTtlS: 1, inFlightTtlS: 1, log: pino({ level: 'silent' }) })
  await t.rejects(registerRateLimits(app, state), /already registered/)
})

const skip = skipWithoutRedis('the shared rate limit tests against a real Redis')

t.test('two replicas on one Redis share one limit', { skip }, async (t) => {
  const server = await startRedisServer(t)
  const [a, b] = [await replica(t, server.url), await replica(t, server.url)]
  for (let i = 0; i < 5; i++) {
    t.match(await call(i % 2 === 0 ? a : b, 'POST'), { status: 200, body: { counted: 'shared', remaining: 4 - i } }, `request ${i + 1} of 5, alternating replicas`)
  }
  const sixth = await call(a, 'POST')
  t.match(sixth, { status: 429 }, 'the sixth is refused')
  t.ok(Number(sixth.headers['retry-after']) >= 1 && Number(sixth.headers['retry-after']) <= 60, 'with the time left in the window')
  t.match(await call(b, 'POST'), { status: 429 }, 'on the other replica too')
  t.match(await call(b, 'GET'), { status: 429 }, 'reads count against the same limit while Redis is up')
  t.equal((await call(b, 'POST', 'another-caller')).status, 200, 'another caller has its own count')

  const keys = await a.state.redis?.keys('*') ?? []
  t.equal(keys.length, 2, 'one counter per caller')
  for (const key of keys) t.match(key, /^sag:rl:.*(caller:[0-9a-f]{64})$/, 'counters are named by hash: no caller name in Redis')
})

t.test('Redis gone: acting requests refused with 503, reads limited per replica, shared again once back', { skip }, async (t) => {
  const server = await startRedisServer(t)
  const [a, b] = [await replica(t, server.url), await replica(t, server.url)]
  t.equal((await call(a, 'POST')).status, 200)

  await server.kill()
  await until('both replicas to see Redis gone', () => !a.state.available && !b.state.available)
  const started = performance.now()
  t.match(await call(a, 'POST'), { status: 503, body: { code: 'state_unavailable' } }, 'acting: refused, not run without its limit')
  t.match(await call(b, 'POST'), { status: 503, body: { code: 'state_unavailable' } }, 'on every replica')
  t.ok(performance.now() - started < 2000, 'at once, not after a wait for Redis')
  for (let i = 0; i < 5; i++) {
    t.match(await call(a, 'GET'), { status: 200, body: { counted: 'replica' } }, `read ${i + 1} on replica a`)
    t.match(await call(b, 'GET'), { status: 200, body: { counted: 'replica' } }, `read ${i + 1} on replica b`)
  }
  t.match(await call(a, 'GET'), { status: 429, body: { counted: 'replica' } }, 'each replica still limits reads, on its own count')
  t.match(await call(b, 'GET'), { status: 429, body: { counted: 'replica' } })

  await server.restart()
  await until('both replicas to reconnect', () => a.state.available && b.state.available)
  t.match(await call(b, 'POST'), { status: 200, body: { counted: 'shared' } }, 'counted in Redis again')
  t.match(await call(a, 'GET'), { status: 200, body: { counted: 'shared' } }, 'reads too')

  // A Redis that accepts the connection but does not answer: the same 503, after the command timeout.
  server.pause()
  t.after(() => server.resume())
  t.match(await call(a, 'POST'), { status: 503, body: { code: 'state_unavailable' } }, 'a hung Redis refuses acting requests')
  t.match(await call(a, 'GET', 'another-caller'), { status: 200, body: { counted: 'replica' } }, 'and reads go on')
})
