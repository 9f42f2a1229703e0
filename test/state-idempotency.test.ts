import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { createMemoryIdempotencyStore, createRedisIdempotencyStore, fingerprint, type IdempotencyStore, type StoredAnswer, type StoreTimes } from '../src/state/idempotency.js'
import { REDIS_CLIENT_OPTIONS } from '../src/state/shared.js'
import { skipWithoutRedis, startRedisServer, until } from './helpers/redis.js'

type Tap = Test
type MakeStore = (t: Tap, times: StoreTimes) => Promise<IdempotencyStore>

const answer: StoredAnswer = { status: 200, headers: { 'content-type': 'application/json' }, body: '{"room_id":"!r:test.local","user_id":"@alice:test.local"}' }
const join = fingerprint('POST', '/v1/rooms/!r:test.local/members', '{"user_id":"@alice:test.local"}')
const otherJoin = fingerprint('POST', '/v1/rooms/!r:test.local/members', '{"user_id":"@bob:test.local"}')
const long = { ttlS: 3600, inFlightTtlS: 3600 }

t.test('fingerprint', async (t) => {
  const hex = /^[0-9a-f]{64}$/
  t.match(join, hex, 'SHA-256 hex')
  t.equal(fingerprint('POST', '/p', '{"a":1,"b":{"d":[1,{"y":2,"x":1}],"c":null}}'), fingerprint('post', '/p', ' { "b": {"c": null, "d": [1, {"x": 1, "y": 2}]}, "a": 1 }\n'), 'JSON bodies compare by content: key order, whitespace and method case do not matter')
  t.not(fingerprint('POST', '/p', '{"a":[1,2]}'), fingerprint('POST', '/p', '{"a":[2,1]}'), 'array order matters')
  t.not(fingerprint('POST', '/p', '{}'), fingerprint('POST', '/q', '{}'), 'the path matters')
  t.not(fingerprint('POST', '/p', '{}'), fingerprint('PUT', '/p', '{}'), 'the method matters')
  t.not(fingerprint('POST', '/p', 'not json'), fingerprint('POST', '/p', 'not  json'), 'a body that is not JSON counts as its raw text')
  t.not(fingerprint('POST', '/p', '"x"'), fingerprint('POST', '/p', 'x'), 'a JSON string and the same raw text differ')
  t.equal(fingerprint('POST', '/p', ''), fingerprint('POST', '/p', ''), 'an empty body is fine')
  t.not(fingerprint('POST', '/p', '{"__proto__":{"a":1}}'), fingerprint('POST', '/p', '{}'), 'a __proto__ key is data, not a prototype')
  const deep = '['.repeat(200_000) + ']'.repeat(200_000)
  t.match(fingerprint('POST', '/p', deep), hex, 'a body nested too deeply to walk still gets a fingerprint')
})

function behavesLikeAnIdempotencyStore (t: Tap, name: string, makeStore: MakeStore, skip: string | false): void {
  t.test(`${name}: claim, in progress, mismatch, replay`, { skip }, async (t) => {
    const store = await makeStore(t, long)
    t.same(await store.claim('helpdesk-bot', 'key-1', join), { kind: 'new' }, 'the first request owns the key')
    t.same(await store.claim('helpdesk-bot', 'key-1', join), { kind: 'in_progress' }, 'a repeat while the first runs')
    t.same(await store.claim('helpdesk-bot', 'key-1', otherJoin), { kind: 'mismatch' }, 'the key with another request, while running')
    t.same(await store.claim('other-caller', 'key-1', otherJoin), { kind: 'new' }, 'keys are scoped per caller')
    await store.complete('helpdesk-bot', 'key-1', answer)
    t.same(await store.claim('helpdesk-bot', 'key-1', join), { kind: 'replay', answer }, 'the first answer is replayed')
    t.same(await store.claim('helpdesk-bot', 'key-1', join), { kind: 'replay', answer }, 'and again')
    t.same(await store.claim('helpdesk-bot', 'key-1', otherJoin), { kind: 'mismatch' }, 'the key with another request, once finished')
    await store.complete('helpdesk-bot', 'key-1', { ...answer, status: 500 })
    t.same(await store.claim('helpdesk-bot', 'key-1', join), { kind: 'replay', answer }, 'a second complete does not replace the first answer')
  })

  t.test(`${name}: release frees the key`, { skip }, async (t) => {
    const store = await makeStore(t, long)
    t.same(await store.claim('helpdesk-bot', 'key-2', join), { kind: 'new' })
    await store.release('helpdesk-bot', 'key-2')
    t.same(await store.claim('helpdesk-bot', 'key-2', otherJoin), { kind: 'new' }, 'after release the key is free, even for another request')
    await store.complete('helpdesk-bot', 'key-2', answer)
    await store.release('helpdesk-bot', 'key-2')
    t.same(await store.claim('helpdesk-bot', 'key-2', otherJoin), { kind: 'replay', answer }, 'a stored answer is not released')
    await store.release('helpdesk-bot', 'never-claimed')
    await store.complete('helpdesk-bot', 'never-claimed', answer)
    t.same(await store.claim('helpdesk-bot', 'never-claimed', join), { kind: 'new' }, 'complete without a claim stores nothing')
  })

  t.test(`${name}: an unfinished claim expires after inFlightTtlS`, { skip }, async (t) => {
    const store = await makeStore(t, { ttlS: 3600, inFlightTtlS: 0.2 })
    t.same(await store.claim('helpdesk-bot', 'key-3', join), { kind: 'new' })
    t.same(await store.claim('helpdesk-bot', 'key-3', join), { kind: 'in_progress' })
    await until('the in-flight claim to expire', async () => (await store.claim('helpdesk-bot', 'key-3', join)).kind === 'new')
    t.pass('a replica that died mid-request does not block the key for long')
  })

  t.test(`${name}: a stored answer expires after ttlS`, { skip }, async (t) => {
    const store = await makeStore(t, { ttlS: 0.3, inFlightTtlS: 3600 })
    t.same(await store.claim('helpdesk-bot', 'key-4', join), { kind: 'new' })
    await store.complete('helpdesk-bot', 'key-4', answer)
    t.equal((await store.claim('helpdesk-bot', 'key-4', join)).kind, 'replay')
    await until('the stored answer to expire', async () => (await store.claim('helpdesk-bot', 'key-4', otherJoin)).kind === 'new')
    t.pass('after expiry the key is free, even for another request')
  })

  t.test(`${name}: an answer that comes after the claim expired is not stored`, { skip }, async (t) => {
    const store = await makeStore(t, { ttlS: 3600, inFlightTtlS: 0.2 })
    t.same(await store.claim('helpdesk-bot', 'late', join), { kind: 'new' })
    // Claimed after `late`, so it expires after it: once the probe is free again, `late` is too.
    t.same(await store.claim('helpdesk-bot', 'probe', join), { kind: 'new' })
    await until('the probe claim to expire', async () => (await store.claim('helpdesk-bot', 'probe', join)).kind === 'new')
    await store.complete('helpdesk-bot', 'late', answer)
    t.same(await store.claim('helpdesk-bot', 'late', join), { kind: 'new' }, 'the late answer was dropped')
  })

  t.test(`${name}: any string is a key`, { skip }, async (t) => {
    const store = await makeStore(t, long)
    const keys = ['', ' ', 'a'.repeat(10_000), 'nul\u0000inside', 'line\nbreak', '\u{1F600}\uD800', '{"json":"key"}', '*', 'sag:idem:x']
    for (const key of keys) {
      t.same(await store.claim('helpdesk-bot', key, join), { kind: 'new' }, `key of length ${key.length}`)
      await store.complete('helpdesk-bot', key, answer)
    }
    for (const key of keys) t.same(await store.claim('helpdesk-bot', key, join), { kind: 'replay', answer })
    t.same(await store.claim('', '', join), { kind: 'new' }, 'an empty scope is its own scope')
    t.same(await store.claim('a', 'bc', join), { kind: 'new' }, 'scope and key do not run into each other')
    t.same(await store.claim('ab', 'c', join), { kind: 'new' })
  })
}

const memoryStore: MakeStore = async (t, times) => {
  const store = createMemoryIdempotencyStore(times)
  t.after(() => store.close())
  return store
}
behavesLikeAnIdempotencyStore(t, 'memory store', memoryStore, false)

t.test('memory store: bounded, the oldest record goes first', async (t) => {
  const store = createMemoryIdempotencyStore({ ...long, maxEntries: 3 })
  for (const key of ['a', 'b', 'c']) {
    t.same(await store.claim('s', key, join), { kind: 'new' })
    await store.complete('s', key, answer)
  }
  t.same(await store.claim('s', 'd', join), { kind: 'new' }, 'a fourth record')
  t.same(await store.claim('s', 'a', join), { kind: 'new' }, 'pushed out the oldest')
  t.equal((await store.claim('s', 'c', join)).kind, 'replay', 'the newer ones stay')
  await store.close()
  t.same(await store.claim('s', 'c', join), { kind: 'new' }, 'close forgets everything')
})

const clients = async (t: Tap, count: number): Promise<Redis[]> => {
  const server = await startRedisServer(t)
  const made = Array.from({ length: count }, () => new Redis(server.url, REDIS_CLIENT_OPTIONS))
  t.after(() => { for (const client of made) client.disconnect() })
  await Promise.all(made.map(async (client) => await until('the client to be ready', () => client.status === 'ready')))
  return made
}

const skip = skipWithoutRedis('the Redis idempotency store tests')
const redisStore: MakeStore = async (t, times) => {
  const [client] = await clients(t, 1) as [Redis]
  const store = createRedisIdempotencyStore(client, times)
  t.after(() => store.close())
  return store
}
behavesLikeAnIdempotencyStore(t, 'Redis store', redisStore, skip)

t.test('Redis store: two replicas racing 50 claims on one key get exactly one new', { skip }, async (t) => {
  const [a, b] = await clients(t, 2) as [Redis, Redis]
  const replicas = [createRedisIdempotencyStore(a, long), createRedisIdempotencyStore(b, long)]
  const claims = await Promise.all(Array.from({ length: 50 }, async (_, i) => await replicas[i % 2]!.claim('helpdesk-bot', 'raced', join)))
  t.equal(claims.filter((claim) => claim.kind === 'new').length, 1, 'one new')
  t.equal(claims.filter((claim) => claim.kind === 'in_progress').length, 49, '49 in progress')
  // Whichever replica won finishes; the other one's complete() is a no-op, it never owned the key.
  await Promise.all(replicas.map(async (replica, i) => await replica.complete('helpdesk-bot', 'raced', { ...answer, body: `replica ${i}` })))
  const replayed = await replicas[0]!.claim('helpdesk-bot', 'raced', join)
  const winner = claims.findIndex((claim) => claim.kind === 'new') % 2
  t.same(replayed, { kind: 'replay', answer: { ...answer, body: `replica ${winner}` } }, 'the answer stored is the owner\'s, seen by both replicas')
  t.same(await replicas[1]!.claim('helpdesk-bot', 'raced', join), replayed)
})

t.test('Redis store: no key material in Redis', { skip }, async (t) => {
  const [client] = await clients(t, 1) as [Redis]
  const store = createRedisIdempotencyStore(client, long)
  const secretKey = 'CANARY-idempotency-key-7f3e'
  await store.claim('helpdesk-bot', secretKey, join)
  await store.complete('helpdesk-bot', secretKey, answer)
  await store.claim('helpdesk-bot', `${secretKey}-running`, join)
  const keys = await client.keys('*')
  t.equal(keys.length, 2)
  for (const key of keys) {
    t.match(key, /^sag:idem:[0-9a-f]{64}$/, 'only hashes as Redis keys')
    const record = await client.hgetall(key)
    t.notMatch(JSON.stringify(record), /CANARY|helpdesk-bot/, 'nor in the records')
  }
  const custom = createRedisIdempotencyStore(client, { ...long, prefix: 'other:' })
  await custom.claim('helpdesk-bot', secretKey, join)
  t.equal((await client.keys('other:*')).length, 1, 'the prefix is configurable')
})
