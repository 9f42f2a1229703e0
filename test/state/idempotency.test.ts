import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { createMemoryIdempotencyStore, createRedisIdempotencyStore, fingerprint, MAX_STORED_ANSWER_BYTES, type IdempotencyStore, type StoredAnswer, type StoreTimes } from '../../src/state/idempotency.js'
import { REDIS_CLIENT_OPTIONS } from '../../src/state/shared.js'
import { skipWithoutRedis, startRedisServer, until } from '../helpers/redis.js'

type Tap = Test
type MakeStore = (t: Tap, times: StoreTimes & { maxBytes?: number }) => Promise<IdempotencyStore>

const answer: StoredAnswer = { status: 200, headers: { 'content-type': 'application/json' }, body: '{"room_id":"!r:test.local","user_id":"@alice:test.local"}' }
const join = fingerprint('POST', '/v1/rooms/!r:test.local/members', '{"user_id":"@alice:test.local"}')
const otherJoin = fingerprint('POST', '/v1/rooms/!r:test.local/members', '{"user_id":"@bob:test.local"}')
const long = { ttlS: 3600, inFlightTtlS: 3600 }
/** An answer whose body is `bytes` long. */
const big = (bytes: number): StoredAnswer => ({ ...answer, body: 'x'.repeat(bytes) })

/** Claims and completes `keys` in order, each with an answer of `bytes`. */
async function storeAll (store: IdempotencyStore, keys: string[], stored: StoredAnswer): Promise<void> {
  for (const key of keys) {
    if ((await store.claim('flooder', key, join)).kind !== 'new') throw new Error(`${key} was not new`)
    await store.complete('flooder', key, stored)
  }
}
const keysFrom = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix}-${i}`)

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

  t.test(`${name}: bounded in bytes: fresh keys with big answers push the oldest out`, { skip }, async (t) => {
    // The attack: every request a fresh key and a big answer. Bounded by count only, all 20 stay.
    const store = await makeStore(t, { ...long, maxBytes: 300_000 })
    const keys = keysFrom('fresh', 20)
    await storeAll(store, keys, big(50_000))
    const kept = []
    for (const key of [...keys].reverse()) {
      if ((await store.claim('flooder', key, join)).kind === 'replay') kept.push(key)
    }
    t.ok(kept.length >= 3 && kept.length <= 6, `${kept.length} answers of 50 000 bytes kept under a budget of 300 000`)
    t.same(kept, keys.slice(-kept.length).reverse(), 'the newest are kept, the oldest went first')
  })

  t.test(`${name}: an answer over 1 MiB is not stored: a retry runs again`, { skip }, async (t) => {
    const store = await makeStore(t, long)
    await storeAll(store, ['huge'], big(MAX_STORED_ANSWER_BYTES + 1))
    t.same(await store.claim('flooder', 'huge', join), { kind: 'new' }, 'the key is free again')
    await storeAll(store, ['under'], big(MAX_STORED_ANSWER_BYTES - 100))
    t.equal((await store.claim('flooder', 'under', join)).kind, 'replay', 'just under 1 MiB is stored')
  })

  t.test(`${name}: an answer bigger than the whole budget is not stored and pushes nothing out`, { skip }, async (t) => {
    const store = await makeStore(t, { ...long, maxBytes: 20_000 })
    await storeAll(store, ['small'], answer)
    await storeAll(store, ['too-big'], big(30_000))
    t.same(await store.claim('flooder', 'too-big', join), { kind: 'new' }, 'not stored')
    t.equal((await store.claim('flooder', 'small', join)).kind, 'replay', 'the small one stays')
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
  const budget = keys.filter((key) => key.startsWith('sag:idem:budget:')).sort()
  t.same(budget, ['sag:idem:budget:answers', 'sag:idem:budget:bytes'], 'the byte budget of the prefix')
  t.match(await client.zrange('sag:idem:budget:answers', '0', '-1'), [/^[0-9]+:[0-9a-f]{64}$/], 'sizes and hashes only')
  const records = keys.filter((key) => !budget.includes(key))
  t.equal(records.length, 2)
  for (const key of records) {
    t.match(key, /^sag:idem:[0-9a-f]{64}$/, 'only hashes as Redis keys')
    const record = await client.hgetall(key)
    t.notMatch(JSON.stringify(record), /CANARY|helpdesk-bot/, 'nor in the records')
  }
  const custom = createRedisIdempotencyStore(client, { ...long, prefix: 'other:' })
  await custom.claim('helpdesk-bot', secretKey, join)
  t.equal((await client.keys('other:*')).length, 1, 'the prefix is configurable')
})

const usedMemory = async (client: Redis): Promise<number> => Number(/used_memory:(\d+)/.exec(await client.info('memory'))?.[1])

t.test('Redis store: two replicas flooding one prefix keep Redis\'s memory within the budget', { skip }, async (t) => {
  const [a, b] = await clients(t, 2) as [Redis, Redis]
  const replicas = [createRedisIdempotencyStore(a, { ...long, maxBytes: 1024 * 1024 }), createRedisIdempotencyStore(b, { ...long, maxBytes: 1024 * 1024 })]
  const before = await usedMemory(a)
  const keys = keysFrom('flood', 300)
  for (const [i, key] of keys.entries()) await storeAll(replicas[i % 2]!, [key], big(50_000))
  const grown = (await usedMemory(a)) - before
  t.ok(grown < 4 * 1024 * 1024, `Redis grew by ${(grown / 1048576).toFixed(1)} MiB for 15 MB of answers under a 1 MiB budget`)
  t.ok(Number(await a.get('sag:idem:budget:bytes')) <= 1024 * 1024, 'the counted total is within the budget')
  t.equal((await replicas[1]!.claim('flooder', keys.at(-1)!, join)).kind, 'replay', 'the newest answer is there, for either replica')
  t.equal((await replicas[0]!.claim('flooder', keys[0]!, join)).kind, 'new', 'the oldest went')
  const other = createRedisIdempotencyStore(a, { ...long, prefix: 'other:', maxBytes: 1024 * 1024 })
  await storeAll(other, ['own'], big(50_000))
  t.equal((await other.claim('flooder', 'own', join)).kind, 'replay', 'another prefix has its own budget')
  t.equal((await replicas[0]!.claim('flooder', keys.at(-1)!, join)).kind, 'replay', 'and pushes nothing out of this one')
})

t.test('Redis store: answers that expired leave the budget, so they push nothing out', { skip }, async (t) => {
  const [client] = await clients(t, 1) as [Redis]
  const shortLived = createRedisIdempotencyStore(client, { ttlS: 0.3, inFlightTtlS: 3600, maxBytes: 300_000 })
  await storeAll(shortLived, keysFrom('early', 5), big(50_000))
  await until('the early answers to expire', async () => (await shortLived.claim('flooder', 'early-4', otherJoin)).kind === 'new')
  const store = createRedisIdempotencyStore(client, { ...long, maxBytes: 300_000 })
  const later = keysFrom('later', 5)
  await storeAll(store, later, big(50_000))
  for (const key of later) t.equal((await store.claim('flooder', key, join)).kind, 'replay', `${key} kept`)
  t.ok(Number(await client.get('sag:idem:budget:bytes')) <= 300_000)
})

t.test('Redis store: the budget keys expire with the last answer', { skip }, async (t) => {
  const [client] = await clients(t, 1) as [Redis]
  const store = createRedisIdempotencyStore(client, { ttlS: 0.3, inFlightTtlS: 3600 })
  await storeAll(store, ['one'], answer)
  t.equal(await client.exists('sag:idem:budget:answers', 'sag:idem:budget:bytes'), 2)
  await until('nothing to be left in Redis', async () => (await client.keys('*')).length === 0)
  t.pass('an idle prefix leaves nothing behind')
})
