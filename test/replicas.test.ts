/**
 * Two gateway replicas (two apps, each listening on its own port) on one real redis-server and one
 * simulated homeserver: one per-caller limit, one idempotency store; Redis killed mid-run gives
 * 503 state_unavailable for acting requests (quickly, and never a double action) while reads go
 * on; Redis back, shared again. And bursts above SYNAPSE_MAX_CONCURRENCY are queued, not refused.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { SimulatedHomeserver } from '../dev/homeserver/server.js'
import { RECORDED_ROOMS } from '../dev/homeserver/state.js'
import { ADMIN_TOKEN, startHarness, type Harness } from './helpers/harness.js'
import { startCountingProxy } from './helpers/counting-proxy.js'
import { membersPath, send, type Answer } from './helpers/http.js'
import { skipWithoutRedis, startRedisServer, until, type RedisServer } from './helpers/redis.js'

const ROOM = RECORDED_ROOMS.publicTest
const skip = skipWithoutRedis('the replica tests against a real Redis')
/** An answer about shared state must come quickly even while Redis is dead or gone. */
const ANSWER_BOUND_MS = 2500

function operatorsPolicy (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'replicas-policy-'))
  t.after(() => { rmSync(dir, { recursive: true, force: true }) })
  const file = join(dir, 'policy.yaml')
  writeFileSync(file, 'rules:\n  - name: operators\n    roles: [matrix-admin]\n    actions: ["*"]\n')
  return file
}

interface Replicas { a: Harness, b: Harness, redis: RedisServer, homeserver: Harness['homeserver'] }

/** Replica A and replica B: the same REDIS_URL, the same homeserver (A's). */
async function replicas (t: Test, env: Record<string, string> = {}): Promise<Replicas> {
  const redis = await startRedisServer(t)
  const shared = { REDIS_URL: redis.url, POLICY_FILE: operatorsPolicy(t), ...env }
  const a = await startHarness(t, { env: shared })
  const b = await startHarness(t, { env: shared, synapseUrl: a.homeserverUrl })
  await until('both replicas to connect to Redis', () => a.logs().includes('Shared state connected') && b.logs().includes('Shared state connected'))
  return { a, b, redis, homeserver: a.homeserver }
}

const joinUser = (replica: Harness, user: string, options: { sub?: string, key?: string } = {}) =>
  send(replica.url, 'POST', membersPath(ROOM), {
    token: replica.token({ sub: options.sub ?? 'helpdesk-bot' }),
    headers: options.key === undefined ? {} : { 'idempotency-key': options.key },
    body: { user_id: user }
  })
const readMembers = (replica: Harness, sub: string) => send(replica.url, 'GET', membersPath(ROOM), { token: replica.token({ sub }) })
const statuses = (answers: Answer[]) => answers.map((answer) => answer.status)

t.test('two replicas share one per-caller limit', { skip }, async (t) => {
  const { a, b } = await replicas(t, { RATE_LIMIT_PER_MINUTE: '4' })
  const passed = [await joinUser(a, '@rl01:test.local'), await joinUser(b, '@rl02:test.local'), await joinUser(a, '@rl03:test.local'), await joinUser(b, '@rl04:test.local')]
  t.same(statuses(passed), [200, 200, 200, 200], '2 + 2 pass')
  const fifthOnA = await joinUser(a, '@rl05:test.local')
  const fifthOnB = await joinUser(b, '@rl05:test.local')
  t.equal(fifthOnA.status, 429)
  t.equal(fifthOnB.status, 429, 'the other replica counts the same caller')
  t.equal(fifthOnA.body.code, 'rate_limited')
  t.ok(Number(fifthOnA.headers['retry-after']) >= 1)
  t.equal((await joinUser(b, '@rl05:test.local', { sub: 'another-caller' })).status, 200, 'another caller has its own count')
})

t.test('two replicas share one idempotency store', { skip }, async (t) => {
  const { a, b, homeserver } = await replicas(t)
  const first = await joinUser(a, '@alice:test.local', { key: 'cross-replica' })
  t.equal(first.status, 200)
  const joins = homeserver.callsTo('join').length
  const onB = await joinUser(b, '@alice:test.local', { key: 'cross-replica' })
  t.equal(onB.status, 200)
  t.equal(onB.headers['idempotent-replayed'], 'true', 'a key used on A replays on B')
  t.equal(onB.text, first.text)
  t.equal(homeserver.callsTo('join').length, joins, 'B sent nothing')
  t.match(b.audit()[0], { replayed: true, outcome: 'success' })

  // Same key on A and B at the same moment: exactly one reaches the homeserver.
  homeserver.fault = { kind: 'slow', on: 'join', delayMs: 300 }
  for (let round = 1; round <= 5; round++) {
    const before = homeserver.callsTo('join').length
    const user = `@rl0${round}:test.local`
    const [onA, onB] = await Promise.all([joinUser(a, user, { key: `race-${round}` }), joinUser(b, user, { key: `race-${round}` })])
    t.equal(homeserver.callsTo('join').length - before, 1, `round ${round}: one join at the homeserver`)
    const sorted = [onA, onB].sort((x, y) => x.status - y.status)
    t.equal(sorted[0]?.status, 200, `round ${round}: one ran`)
    t.ok(sorted[1]?.status === 409 || sorted[1]?.headers['idempotent-replayed'] === 'true', `round ${round}: the other got 409 or the replay`)
  }
})

t.test('Redis killed mid-run: acting requests 503 state_unavailable within a bound, reads go on per replica; back: shared again', { skip }, async (t) => {
  const { a, b, redis, homeserver } = await replicas(t, { RATE_LIMIT_PER_MINUTE: '4' })
  t.equal((await joinUser(a, '@alice:test.local', { key: 'before-outage' })).status, 200)

  // A join in flight when Redis dies still answers; its key could not be stored.
  homeserver.fault = { kind: 'slow', on: 'join', delayMs: 400 }
  const inFlight = joinUser(a, '@bob:test.local', { key: 'during-outage' })
  await until('the in-flight join to reach the homeserver', () => homeserver.callsTo('join').length === 2)
  await redis.kill()
  t.equal((await inFlight).status, 200, 'the request already running finishes')
  homeserver.fault = undefined
  const joinsBefore = homeserver.callsTo('join').length

  for (const [name, replica] of [['A', a], ['B', b]] as const) {
    for (const [what, options] of [['with a key', { key: 'during-outage' }], ['without a key', {}]] as const) {
      const answer = await joinUser(replica, '@bob:test.local', options)
      t.equal(answer.status, 503, `${name}, ${what}: 503`)
      t.equal(answer.body?.code, 'state_unavailable', `${name}, ${what}: state_unavailable`)
      t.ok(answer.ms < ANSWER_BOUND_MS, `${name}, ${what}: answered in ${Math.round(answer.ms)} ms`)
      t.ok(Number(answer.headers['retry-after']) >= 1, 'Retry-After set')
    }
  }
  const removal = await send(b.url, 'DELETE', `/v1/rooms/${encodeURIComponent(ROOM)}/members/${encodeURIComponent('@bob:test.local')}`, { token: b.token() })
  t.equal(removal.status, 503, 'a removal too')
  const batch = await send(a.url, 'POST', '/v1/batch', { token: a.token(), headers: { 'idempotency-key': 'batch-during-outage' }, body: { items: [{ action: 'room.join', room: ROOM, user_id: '@bob:test.local' }] } })
  t.equal(batch.status, 503, 'a batch with a key cannot claim it')
  t.equal(batch.body?.code, 'state_unavailable')
  const unkeyed = await send(a.url, 'POST', '/v1/batch', { token: a.token(), body: { items: [{ action: 'room.join', room: ROOM, user_id: '@bob:test.local' }] } })
  t.match({ status: unkeyed.status, code: unkeyed.body?.code }, { status: 503, code: 'state_unavailable' }, 'a batch without a key: refused whole (its per-IP limit cannot be counted)')
  t.equal(homeserver.callsTo('join').length, joinsBefore, 'nothing acted while Redis was away')
  t.equal(homeserver.callsTo('kick').length, 0)

  // Reads go on, limited per replica: 4 on A, the 5th on A refused, B still has its own 4.
  const readsOnA = [] as Answer[]
  for (let i = 0; i < 5; i++) readsOnA.push(await readMembers(a, 'reader'))
  t.same(statuses(readsOnA), [200, 200, 200, 200, 429], 'A counts reads alone')
  t.ok(readsOnA.every((answer) => answer.ms < ANSWER_BOUND_MS), 'reads answered without waiting for Redis')
  t.equal((await readMembers(b, 'reader')).status, 200, 'B has its own count')
  t.ok(a.logs().includes('Shared state unavailable'), 'A logged the outage')

  await redis.restart()
  await until('both replicas to see Redis again', () => a.logs().includes('Shared state available again') && b.logs().includes('Shared state available again'))
  const afterwards = [await joinUser(a, '@rl11:test.local', { sub: 'after' }), await joinUser(b, '@rl12:test.local', { sub: 'after' }), await joinUser(a, '@rl13:test.local', { sub: 'after' }), await joinUser(b, '@rl14:test.local', { sub: 'after' })]
  t.same(statuses(afterwards), [200, 200, 200, 200])
  t.equal((await joinUser(a, '@rl15:test.local', { sub: 'after' })).status, 429, 'one shared limit again')
  const keyed = await joinUser(b, '@rl16:test.local', { key: 'after-outage', sub: 'after-2' })
  t.equal(keyed.status, 200)
  t.equal((await joinUser(a, '@rl16:test.local', { key: 'after-outage', sub: 'after-2' })).headers['idempotent-replayed'], 'true', 'one idempotency store again')
  // The key of the request that was running when Redis died was never stored (the new Redis is
  // empty): its retry runs again, and joining bob a second time changes nothing.
  const members = [...(homeserver.state.rooms.get(ROOM)?.members ?? [])].filter(([user]) => user === '@bob:test.local')
  const retried = await joinUser(b, '@bob:test.local', { key: 'during-outage' })
  t.equal(retried.status, 200)
  t.same([...(homeserver.state.rooms.get(ROOM)?.members ?? [])].filter(([user]) => user === '@bob:test.local'), members)
})

t.test('Redis hung (SIGSTOP): acting requests answer 503 within the command timeout, not hang', { skip }, async (t) => {
  const { a, redis, homeserver } = await replicas(t)
  redis.pause()
  t.after(() => { redis.resume() })
  const answer = await joinUser(a, '@alice:test.local', { key: 'while-hung' })
  t.equal(answer.status, 503)
  t.equal(answer.body?.code, 'state_unavailable')
  t.ok(answer.ms < ANSWER_BOUND_MS, `answered in ${Math.round(answer.ms)} ms`)
  t.equal(homeserver.callsTo('join').length, 0)
})

/** 100 local users that the homeserver knows, for bursts. */
function addUsers (homeserver: SimulatedHomeserver, count: number): string[] {
  const template = homeserver.state.users.get('@alice:test.local')
  if (template === undefined) throw new Error('the fixture has no alice')
  return Array.from({ length: count }, (_, i) => {
    const id = `@burst${String(i).padStart(3, '0')}:test.local`
    homeserver.state.users.set(id, { ...template, devices: [] })
    return id
  })
}

// At 20 ms a call (the brief's homeserver) the burst may not even fill the cap; at 1 s a call it must
// queue: 64 at the homeserver, the rest waiting within SYNAPSE_QUEUE_TIMEOUT_MS. A second is long
// enough for all 100 requests to reach the queue even on a busy machine (at 300 ms, a loaded
// 2-core machine saw only 50 in flight at once).
for (const delayMs of [20, 1000]) {
  t.test(`a burst of 100 concurrent joins above SYNAPSE_MAX_CONCURRENCY=64 is queued and served (homeserver ${delayMs} ms a call)`, async (t) => {
    const homeserver = new SimulatedHomeserver({ adminToken: ADMIN_TOKEN })
    const target = await homeserver.listen()
    t.after(() => homeserver.close())
    const proxy = await startCountingProxy(t, target)
    const h = await startHarness(t, { synapseUrl: proxy.url, env: { SYNAPSE_TIMEOUT_MS: '10000', SYNAPSE_QUEUE_TIMEOUT_MS: '5000' } })
    const users = addUsers(homeserver, 100)
    homeserver.fault = { kind: 'slow', delayMs }
    const answers = await Promise.all(users.map((user) => h.join(encodeURIComponent(ROOM), { user_id: user })))
    const refused = answers.filter((answer) => answer.status !== 200)
    t.equal(refused.length, 0, `all 200 (refused: ${JSON.stringify(refused.slice(0, 3).map((answer) => answer.body))})`)
    t.equal(homeserver.callsTo('join').length, 100)
    if (delayMs === 20) t.ok(proxy.maxInFlight <= 64, `never more than 64 at the homeserver (saw ${proxy.maxInFlight})`)
    else t.equal(proxy.maxInFlight, 64, `the cap was reached (saw ${proxy.maxInFlight}): the others waited in the queue`)
    t.ok(users.every((user) => homeserver.state.rooms.get(ROOM)?.members.get(user) === 'join'))
  })
}

t.test('a hanging homeserver: queued requests get 503 after about SYNAPSE_QUEUE_TIMEOUT_MS', async (t) => {
  const h = await startHarness(t, { env: { SYNAPSE_MAX_CONCURRENCY: '2', SYNAPSE_QUEUE_TIMEOUT_MS: '300', SYNAPSE_TIMEOUT_MS: '1500' } })
  h.homeserver.fault = { kind: 'hang', on: 'user_lookup' }
  const holding = [h.join(encodeURIComponent(ROOM), { user_id: '@alice:test.local' }), h.join(encodeURIComponent(ROOM), { user_id: '@bob:test.local' })]
  await until('both slots to be taken by hanging lookups', () => h.homeserver.callsTo('user_lookup').length === 2)
  const queued = await Promise.all(['@erin:test.local', '@frank:test.local', '@gina:test.local'].map(async (user) => {
    const started = performance.now()
    const answer = await h.join(encodeURIComponent(ROOM), { user_id: user })
    return { ...answer, ms: performance.now() - started }
  }))
  for (const answer of queued) {
    t.equal(answer.status, 503)
    t.equal(answer.body.code, 'upstream_unavailable')
    t.ok(answer.ms >= 250 && answer.ms < 1400, `refused after ${Math.round(answer.ms)} ms (queue timeout 300 ms)`)
    t.ok(Number(answer.headers['retry-after']) >= 1)
  }
  t.equal(h.homeserver.callsTo('user_lookup').length, 2, 'the queued requests never reached the homeserver')
  for (const answer of await Promise.all(holding)) t.equal(answer.status, 504, 'the hanging ones time out')
})
