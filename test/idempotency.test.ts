/**
 * Idempotency-Key end to end: the gateway over HTTP, the simulated homeserver as a real listener,
 * and (where it matters) a real redis-server as the store. A replay never reaches the homeserver,
 * is audited, and the raw key is kept nowhere.
 */
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { RECORDED_ROOMS } from '../dev/homeserver/state.js'
import { manualClock } from './helpers/clock.js'
import { startHarness, type Harness, type HarnessOptions } from './helpers/harness.js'
import { memberPath, membersPath, send } from './helpers/http.js'
import { skipWithoutRedis, startRedisServer, until } from './helpers/redis.js'

const ROOM = RECORDED_ROOMS.publicTest
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')
const skipRedis = skipWithoutRedis('the idempotency tests against Redis')

/** Everything may be done by matrix-admin: reads and removals need a policy file. */
function operatorsPolicy (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'idem-policy-'))
  t.after(() => { rmSync(dir, { recursive: true, force: true }) })
  const file = join(dir, 'policy.yaml')
  writeFileSync(file, 'rules:\n  - name: operators\n    roles: [matrix-admin]\n    actions: ["*"]\n')
  return file
}

type Store = 'memory' | 'redis'

async function gateway (t: Test, store: Store, options: HarnessOptions = {}): Promise<Harness & { redisUrl: string | undefined }> {
  const redisUrl = store === 'redis' ? (await startRedisServer(t)).url : undefined
  const h = await startHarness(t, { ...options, env: { POLICY_FILE: operatorsPolicy(t), ...(redisUrl === undefined ? {} : { REDIS_URL: redisUrl }), ...options.env } })
  if (redisUrl !== undefined) await until('the gateway to connect to Redis', () => h.logs().includes('Shared state connected'))
  return { ...h, redisUrl }
}

const joinAlice = (h: Harness, key: string, extra: { token?: string, body?: unknown, room?: string, query?: string } = {}) =>
  send(h.url, 'POST', membersPath(extra.room ?? ROOM, extra.query), { token: extra.token ?? h.token(), headers: { 'idempotency-key': key }, body: extra.body ?? { user_id: '@alice:test.local' } })

for (const store of ['memory', 'redis'] as const) {
  const skip = store === 'redis' ? skipRedis : false

  t.test(`${store}: the first answer is stored and replayed; the replay never reaches the homeserver and is audited`, { skip }, async (t) => {
    const h = await gateway(t, store)
    const key = 'CANARY-idempotency-key-7b3e1f-never-stored'
    const first = await joinAlice(h, key)
    t.equal(first.status, 200)
    t.notOk('idempotent-replayed' in first.headers, 'the first answer is not a replay')
    const callsAfterFirst = h.homeserver.calls.length
    t.equal(h.homeserver.callsTo('join').length, 1)

    const second = await joinAlice(h, key)
    t.equal(second.status, 200)
    t.equal(second.headers['idempotent-replayed'], 'true')
    t.equal(second.text, first.text, 'the same body, byte for byte')
    t.match(second.headers['content-type'], /^application\/json/)
    t.equal(h.homeserver.calls.length, callsAfterFirst, 'the replay sent nothing to the homeserver')

    const results = h.audit()
    t.equal(results.length, 2)
    t.match(results[0], { action: 'room.join', outcome: 'success', status: 200, idempotency_key: sha256(key) })
    t.notOk('replayed' in (results[0] as object))
    t.match(results[1], { action: 'room.join', outcome: 'success', status: 200, replayed: true, idempotency_key: sha256(key), actor: { sub: 'helpdesk-bot' } })
    t.equal(h.auditRecords().filter((record) => record.event === 'intent').length, 1, 'only the first wrote an intent: the replay acted on nothing')

    // The raw key is kept nowhere: not in the service log, the audit log, or Redis.
    t.notOk(h.logs().includes(key), 'not in the service log')
    t.notOk(h.auditText().includes(key), 'not in the audit log')
    t.notOk(second.text.includes(key), 'not in the answer')
    if (h.redisUrl !== undefined) {
      const redis = new Redis(h.redisUrl)
      t.after(() => redis.quit())
      const keys = await redis.keys('*')
      t.ok(keys.some((name) => name.startsWith('sag:idem:')), 'the record is in Redis')
      let dump = keys.join('\n')
      for (const name of keys) {
        const type = await redis.type(name)
        dump += type === 'hash' ? JSON.stringify(await redis.hgetall(name)) : type === 'zset' ? (await redis.zrange(name, '0', '-1')).join() : String(await redis.get(name))
      }
      t.notOk(dump.includes(key), 'not in any Redis key or value')
      t.notOk(dump.includes(sha256(key)), 'not even its plain SHA-256 (records are keyed by caller and key)')
    }
  })

  t.test(`${store}: scoped per caller: another caller's same key is a new request`, { skip }, async (t) => {
    const h = await gateway(t, store)
    const a = await joinAlice(h, 'shared-key-1', { token: h.token({ sub: 'agent-a' }) })
    const b = await joinAlice(h, 'shared-key-1', { token: h.token({ sub: 'agent-b' }) })
    t.equal(a.status, 200)
    t.equal(b.status, 200)
    t.notOk('idempotent-replayed' in b.headers, 'not a replay of agent-a\'s answer')
    t.equal(h.homeserver.callsTo('join').length, 2, 'both reached the homeserver')
    const again = await joinAlice(h, 'shared-key-1', { token: h.token({ sub: 'agent-b' }) })
    t.equal(again.headers['idempotent-replayed'], 'true', 'agent-b\'s own repeat is replayed')
  })

  t.test(`${store}: 409 idempotency_in_progress while the first runs`, { skip }, async (t) => {
    const h = await gateway(t, store)
    h.homeserver.fault = { kind: 'slow', on: 'join', delayMs: 800 }
    const first = joinAlice(h, 'slow-key')
    await until('the first join to reach the homeserver', () => h.homeserver.callsTo('join').length === 1)
    const second = await joinAlice(h, 'slow-key')
    t.equal(second.status, 409)
    t.equal(second.body.code, 'idempotency_in_progress')
    t.ok(Number(second.headers['retry-after']) >= 1, 'Retry-After set')
    t.equal((await first).status, 200)
    t.equal(h.homeserver.callsTo('join').length, 1, 'the 409 sent nothing')
    h.homeserver.fault = undefined
    const third = await joinAlice(h, 'slow-key')
    t.equal(third.status, 200)
    t.equal(third.headers['idempotent-replayed'], 'true', 'once the first has answered, the retry gets its answer')
    t.match(h.audit().find((record) => record.status === 409), { code: 'idempotency_in_progress', outcome: 'denied', idempotency_key: sha256('slow-key') })
  })

  t.test(`${store}: 422 idempotency_key_reused with another body, path or method`, { skip }, async (t) => {
    const h = await gateway(t, store)
    t.equal((await joinAlice(h, 'reuse-key')).status, 200)
    const otherBody = await joinAlice(h, 'reuse-key', { body: { user_id: '@bob:test.local' } })
    const otherRoom = await joinAlice(h, 'reuse-key', { room: RECORDED_ROOMS.publicBob })
    const dryRun = await joinAlice(h, 'reuse-key', { query: '?dry_run=true' })
    const otherMethod = await send(h.url, 'DELETE', memberPath(ROOM, '@alice:test.local'), { token: h.token(), headers: { 'idempotency-key': 'reuse-key' } })
    for (const [what, answer] of [['body', otherBody], ['path', otherRoom], ['query', dryRun], ['method', otherMethod]] as const) {
      t.equal(answer.status, 422, `another ${what}`)
      t.equal(answer.body.code, 'idempotency_key_reused', `another ${what}`)
    }
    t.equal(h.homeserver.callsTo('join').length, 1, 'none of them reached the join')
    t.equal(h.homeserver.callsTo('kick').length, 0, 'nor the kick')
    t.equal(h.homeserver.state.rooms.get(ROOM)?.members.get('@alice:test.local'), 'join', 'alice is still in the room')
    // The same body with its keys in another order and other whitespace is the same request.
    const reordered = await send(h.url, 'POST', membersPath(ROOM), { token: h.token(), headers: { 'idempotency-key': 'reuse-key' }, body: { user_id: '@alice:test.local' } })
    t.equal(reordered.headers['idempotent-replayed'], 'true')
  })

  t.test(`${store}: IDEMPOTENCY_MAX_BYTES: fresh keys push the oldest answers out; a retry of one runs again`, { skip }, async (t) => {
    const h = await gateway(t, store, { env: { IDEMPOTENCY_MAX_BYTES: '4096' } })
    const keys = Array.from({ length: 30 }, (_, i) => `budget-${i}`)
    for (const key of keys) t.equal((await joinAlice(h, key)).status, 200)
    const joins = h.homeserver.callsTo('join').length
    const newest = await joinAlice(h, keys.at(-1)!)
    t.equal(newest.headers['idempotent-replayed'], 'true', 'the newest answer is replayed')
    const oldest = await joinAlice(h, keys[0]!)
    t.equal(oldest.status, 200)
    t.notOk('idempotent-replayed' in oldest.headers, 'the oldest answer is gone: the retry ran again')
    t.equal(h.homeserver.callsTo('join').length, joins + 1, 'and reached the homeserver (a second join changes nothing)')
  })

  t.test(`${store}: an answer bigger than the budget is answered, not stored: a retry runs again`, { skip }, async (t) => {
    const h = await gateway(t, store, { env: { IDEMPOTENCY_MAX_BYTES: '4096' } })
    const items = Array.from({ length: 40 }, () => ({ action: 'room.join', room: ROOM, user_id: '@alice:test.local' }))
    const batch = () => send(h.url, 'POST', '/v1/batch', { token: h.token(), headers: { 'idempotency-key': 'big-batch' }, body: { items } })
    const first = await batch()
    t.equal(first.status, 200)
    t.ok(first.text.length > 4096, `the answer is ${first.text.length} bytes`)
    t.equal(first.body.results.length, 40)
    const retry = await batch()
    t.equal(retry.status, 200)
    t.notOk('idempotent-replayed' in retry.headers, 'not stored: the retry ran again')
    t.equal(h.homeserver.callsTo('join').length, 80, 'every item ran twice')
  })

  t.test(`${store}: a stored answer expires after IDEMPOTENCY_TTL_S`, { skip }, async (t) => {
    // In memory the records expire by a clock the test moves; Redis expires its own by its clock, so that store is given a real second.
    const clock = manualClock()
    const h = await gateway(t, store, { env: { IDEMPOTENCY_TTL_S: '1' }, ...(store === 'memory' ? { idempotencyClock: clock.now } : {}) })
    const started = performance.now()
    t.equal((await joinAlice(h, 'short-lived')).status, 200)
    t.equal((await joinAlice(h, 'short-lived')).headers['idempotent-replayed'], 'true', 'replayed within the TTL')
    if (store === 'memory') {
      clock.advance(999)
      t.equal((await joinAlice(h, 'short-lived')).headers['idempotent-replayed'], 'true', 'still replayed a millisecond before the TTL')
      clock.advance(1)
      const ranAgain = await joinAlice(h, 'short-lived')
      t.equal(ranAgain.status, 200)
      t.notOk('idempotent-replayed' in ranAgain.headers, 'run again once the TTL has passed')
    } else {
      let ranAgain: Awaited<ReturnType<typeof joinAlice>> | undefined
      await until('the stored answer to expire (the repeat to run again)', async () => {
        const answer = await joinAlice(h, 'short-lived')
        if (answer.headers['idempotent-replayed'] === 'true') {
          await new Promise((resolve) => setTimeout(resolve, 100))
          return false
        }
        ranAgain = answer
        return true
      }, 5000)
      t.equal(ranAgain?.status, 200)
      t.ok(performance.now() - started >= 900, 'not before the TTL')
    }
    t.equal(h.homeserver.callsTo('join').length, 2, 'the repeat after expiry reached the homeserver')
  })
}

t.test('answers that say "try again" are not stored: a retry with the same key runs again', async (t) => {
  t.test('429 from Synapse', async (t) => {
    const h = await gateway(t, 'memory')
    h.homeserver.fault = { kind: 'rate-limited', on: 'join' }
    const limited = await joinAlice(h, 'key-429')
    t.equal(limited.status, 429)
    t.equal(limited.body.code, 'rate_limited')
    h.homeserver.fault = undefined
    const retry = await joinAlice(h, 'key-429')
    t.equal(retry.status, 200)
    t.notOk('idempotent-replayed' in retry.headers)
    t.equal(h.homeserver.callsTo('join').length, 2)
  })

  t.test('429 from the gateway\'s own limit', async (t) => {
    const h = await gateway(t, 'memory', { env: { RATE_LIMIT_PER_MINUTE: '1' } })
    t.equal((await joinAlice(h, 'key-a')).status, 200)
    const limited = await joinAlice(h, 'key-b')
    t.equal(limited.status, 429)
    t.equal(h.homeserver.callsTo('join').length, 1)
  })

  t.test('503 when every slot towards Synapse is taken', async (t) => {
    const h = await gateway(t, 'memory', { env: { SYNAPSE_MAX_CONCURRENCY: '1', SYNAPSE_QUEUE_TIMEOUT_MS: '50' } })
    h.homeserver.fault = { kind: 'slow', on: 'user_lookup', delayMs: 600 }
    const busy = joinAlice(h, 'key-busy')
    await until('the first request to hold the only slot', () => h.homeserver.callsTo('user_lookup').length === 1)
    const refused = await joinAlice(h, 'key-503', { body: { user_id: '@bob:test.local' } })
    t.equal(refused.status, 503)
    t.equal(refused.body.code, 'upstream_unavailable')
    t.equal((await busy).status, 200)
    h.homeserver.fault = undefined
    const retry = await joinAlice(h, 'key-503', { body: { user_id: '@bob:test.local' } })
    t.equal(retry.status, 200)
    t.notOk('idempotent-replayed' in retry.headers, 'ran again')
    t.equal(h.homeserver.state.rooms.get(ROOM)?.members.get('@bob:test.local'), 'join')
  })

  t.test('504 with outcome unknown: the join ran at the homeserver, the retry runs again and changes nothing more', async (t) => {
    const h = await gateway(t, 'memory', { env: { SYNAPSE_TIMEOUT_MS: '300' } })
    // The homeserver joins alice after 600 ms; the gateway gave up at 300 ms.
    h.homeserver.fault = { kind: 'slow', on: 'join', delayMs: 600 }
    const timedOut = await joinAlice(h, 'key-504')
    t.equal(timedOut.status, 504)
    t.equal(timedOut.body.code, 'upstream_timeout')
    t.match(h.audit()[0], { outcome: 'unknown', status: 504 })
    await until('the homeserver to have joined alice after all', () => h.homeserver.state.rooms.get(ROOM)?.members.get('@alice:test.local') === 'join')
    const membersBefore = [...(h.homeserver.state.rooms.get(ROOM)?.members ?? [])]
    h.homeserver.fault = undefined
    const retry = await joinAlice(h, 'key-504')
    t.equal(retry.status, 200)
    t.notOk('idempotent-replayed' in retry.headers, 'the 504 was not stored: the retry ran')
    t.same(retry.body, { room_id: ROOM, user_id: '@alice:test.local' })
    t.same([...(h.homeserver.state.rooms.get(ROOM)?.members ?? [])], membersBefore, 'the second join changed nothing')
    t.equal((await joinAlice(h, 'key-504')).headers['idempotent-replayed'], 'true', 'now the 200 is stored')
  })

  t.test('504 on a removal: the retry runs again and answers changed: false', async (t) => {
    const h = await gateway(t, 'memory', { env: { SYNAPSE_TIMEOUT_MS: '300' } })
    t.equal((await joinAlice(h, 'setup')).status, 200)
    h.homeserver.fault = { kind: 'slow', on: 'kick', delayMs: 600 }
    const remove = () => send(h.url, 'DELETE', memberPath(ROOM, '@alice:test.local'), { token: h.token(), headers: { 'idempotency-key': 'remove-504' } })
    const timedOut = await remove()
    t.equal(timedOut.status, 504)
    await until('the homeserver to have kicked alice after all', () => h.homeserver.state.rooms.get(ROOM)?.members.get('@alice:test.local') === 'leave')
    const membersBefore = [...(h.homeserver.state.rooms.get(ROOM)?.members ?? [])]
    h.homeserver.fault = undefined
    const retry = await remove()
    t.equal(retry.status, 200)
    t.notOk('idempotent-replayed' in retry.headers, 'the 504 was not stored: the retry ran')
    t.match(retry.body, { room_id: ROOM, user_id: '@alice:test.local', membership: 'leave', changed: false })
    t.same([...(h.homeserver.state.rooms.get(ROOM)?.members ?? [])], membersBefore, 'the second removal changed nothing')
  })
})

t.test('a bad Idempotency-Key is 400 invalid_request and reaches nothing', async (t) => {
  const h = await gateway(t, 'memory')
  for (const [what, key] of [['256 characters', 'k'.repeat(256)], ['a space', 'two words'], ['a tab', 'tab\there'], ['non-ASCII', 'caf\u00e9']] as const) {
    const answer = await send(h.url, 'POST', membersPath(ROOM), { token: h.token(), headers: { 'idempotency-key': key }, body: { user_id: '@alice:test.local' } })
    t.equal(answer.status, 400, what)
    t.equal(answer.body.code, 'invalid_request', what)
    t.match(answer.headers['content-type'], /application\/problem\+json/)
  }
  t.equal((await joinAlice(h, 'k'.repeat(255))).status, 200, '255 characters are fine')
  t.equal(h.homeserver.callsTo('join').length, 1)
})

t.test('reads ignore Idempotency-Key', async (t) => {
  const h = await gateway(t, 'memory')
  const read = () => send(h.url, 'GET', membersPath(ROOM), { token: h.token(), headers: { 'idempotency-key': 'read-key' } })
  const first = await read()
  const second = await read()
  t.equal(first.status, 200)
  t.equal(second.status, 200)
  t.notOk('idempotent-replayed' in second.headers)
  t.equal(h.homeserver.callsTo('room_members').length, 2, 'both reads reached the homeserver')
})

t.test('a refusal is stored like a success (fix the request, use a new key); 409 user_deactivated is not', async (t) => {
  const h = await gateway(t, 'memory')
  const unknown = await joinAlice(h, 'key-404', { body: { user_id: '@newhire:test.local' } })
  t.equal(unknown.status, 404)
  t.equal(unknown.body.code, 'user_not_found')
  const template = h.homeserver.state.users.get('@alice:test.local')
  if (template !== undefined) h.homeserver.state.users.set('@newhire:test.local', { ...template, devices: [] })
  const sameKey = await joinAlice(h, 'key-404', { body: { user_id: '@newhire:test.local' } })
  t.equal(sameKey.status, 404, 'the same key replays the 404 even though the user exists now')
  t.equal(sameKey.headers['idempotent-replayed'], 'true')
  t.equal((await joinAlice(h, 'key-404-b', { body: { user_id: '@newhire:test.local' } })).status, 200, 'a new key runs')

  const deactivated = await joinAlice(h, 'key-409', { body: { user_id: '@dave:test.local' } })
  t.equal(deactivated.status, 409)
  t.equal(deactivated.body.code, 'user_deactivated')
  const user = h.homeserver.state.users.get('@dave:test.local')
  if (user !== undefined) user.deactivated = false
  const reactivated = await joinAlice(h, 'key-409', { body: { user_id: '@dave:test.local' } })
  t.equal(reactivated.status, 200, 'once reactivated, the same key runs again')
  t.notOk('idempotent-replayed' in reactivated.headers)
})
