/**
 * JWKS mode against a real IdP listener: keys warmed at start, rotation within one refetch,
 * at most one fetch per cooldown for unknown kids, cached keys served while the IdP is down,
 * 503 keys_unavailable (never 500, never an internal address) when no cached key fits.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomUUID } from 'node:crypto'
import t from 'tap'
import { request } from 'undici'
import { RECORDED_ROOMS } from '../../dev/homeserver/state.js'
import { startHarness, type Harness } from '../helpers/harness.js'
import { FakeIdp, rsaKey, ecKey, signWith } from '../helpers/idp.js'
import { waitFor } from '../helpers/wait.js'
import { manualClock } from '../helpers/clock.js'

const room = encodeURIComponent(RECORDED_ROOMS.publicTest)
const user = { user_id: '@alice:test.local' }

async function startIdp (t: { after: (fn: () => unknown) => void }) {
  const idp = new FakeIdp()
  const url = await idp.start()
  t.after(async () => { await idp.stop() })
  return { idp, url }
}

const until = async (check: () => Promise<boolean> | boolean, what: string) => { await waitFor(check, what) }

/** JWKS fetches the gateway has finished (keys applied or failure recorded), by result. */
async function fetchesDone (h: Harness, result: 'ok' | 'failed'): Promise<number> {
  const metric = await h.app.metrics.jwksFetches.get()
  return metric.values.find((value) => value.labels.result === result)?.value ?? 0
}

t.test('keys are loaded at start and tokens verify against them', async (t) => {
  const { idp, url } = await startIdp(t)
  const rsa = rsaKey('rsa-1')
  const ec = ecKey('ec-1')
  idp.keys = [rsa, ec]
  const h = await startHarness(t, { env: { JWT_SECRET: undefined, JWT_JWKS_URL: url } })
  await until(async () => (await request(`${h.url}/readyz`).then(async (r) => { await r.body.dump(); return r.statusCode })) === 200, 'ready')
  t.equal(idp.fetches, 1, 'one fetch at start')
  t.equal((await h.join(room, user, { token: signWith(rsa) })).status, 200, 'RSA key')
  t.equal((await h.join(room, user, { token: signWith(ec) })).status, 200, 'EC key')
  t.equal(idp.fetches, 1, 'no fetch for known keys')
  const mismatched = await h.join(room, user, { token: signWith({ ...ec, kid: 'rsa-1' }) })
  t.equal(mismatched.body.code, 'invalid_token', 'an EC signature presented with the RSA key\'s kid')
  const badKid = await h.join(room, user, { token: signWith(rsa, {}, { kid: 42 }) })
  t.equal(badKid.body.code, 'invalid_token', 'a kid that is not a string')
})

t.test('a flood of unknown kids costs at most one fetch per cooldown; a rotated key works after one refetch', async (t) => {
  const { idp, url } = await startIdp(t)
  const first = rsaKey('first')
  idp.keys = [first]
  const cooldownMs = 1000
  const clock = manualClock()
  const h = await startHarness(t, { env: { JWT_SECRET: undefined, JWT_JWKS_URL: url }, jwksTiming: { cooldownMs, now: clock.now } })
  await until(async () => await fetchesDone(h, 'ok') === 1, 'warm fetch')
  clock.advance(cooldownMs)
  // An EC key: its signatures cost little to make, and the kid is refused before any signature is checked.
  const attacker = ecKey('x')
  // The clock stands still during the flood: all of it falls in one cooldown window.
  const flood = await Promise.all(Array.from({ length: 1000 }, async () =>
    await h.join(room, user, { token: signWith({ ...attacker, kid: randomUUID() }) })))
  const windows = 1
  t.ok(flood.every((res) => res.status === 401 && res.body.code === 'invalid_token'), 'all refused with 401')
  t.ok(idp.fetches - 1 <= windows, `1000 unknown kids caused ${idp.fetches - 1} fetch(es) in ${windows} cooldown window(s)`)

  const second = rsaKey('second')
  idp.keys = [first, second]
  clock.advance(cooldownMs)
  const fetchesBefore = idp.fetches
  t.equal((await h.join(room, user, { token: signWith(second) })).status, 200, 'the rotated-in key is accepted')
  t.equal(idp.fetches, fetchesBefore + 1, 'after exactly one refetch')

  idp.keys = [second]
  clock.advance(cooldownMs)
  await h.join(room, user, { token: signWith(rsaKey('unknown')) }) // an unknown kid refreshes the set
  t.equal((await h.join(room, user, { token: signWith(first) })).status, 401, 'the removed key is refused after the refresh')
  t.equal((await h.join(room, user, { token: signWith(second) })).status, 200)
})

t.test('keys removed from the JWKS are refused once the set is refreshed', async (t) => {
  const { idp, url } = await startIdp(t)
  const old = rsaKey('old')
  const fresh = rsaKey('fresh')
  idp.keys = [old]
  const h = await startHarness(t, { env: { JWT_SECRET: undefined, JWT_JWKS_URL: url }, jwksTiming: { cooldownMs: 50, maxAgeMs: 100 } })
  await until(() => idp.fetches >= 1, 'warm fetch')
  t.equal((await h.join(room, user, { token: signWith(old) })).status, 200)
  idp.keys = [fresh]
  const fetches = idp.fetches
  await until(() => idp.fetches > fetches, 'background refresh')
  await until(async () => await fetchesDone(h, 'ok') > fetches, 'the refreshed keys applied')
  const res = await h.join(room, user, { token: signWith(old) })
  t.equal(res.status, 401, 'the removed key is refused')
  t.equal((await h.join(room, user, { token: signWith(fresh) })).status, 200)
})

t.test('IdP down at start: not ready, 503 keys_unavailable with Retry-After; recovers by itself', async (t) => {
  const { idp, url } = await startIdp(t)
  const key = rsaKey('k')
  idp.keys = [key]
  idp.down = true
  const clock = manualClock()
  const h = await startHarness(t, { env: { JWT_SECRET: undefined, JWT_JWKS_URL: url }, jwksTiming: { cooldownMs: 100, now: clock.now } })
  await until(async () => await fetchesDone(h, 'failed') >= 1, 'first attempt failed')
  const res = await h.join(room, user, { token: signWith(key) })
  t.equal(res.status, 503)
  t.equal(res.body.code, 'keys_unavailable')
  t.ok(Number(res.headers['retry-after']) >= 1)
  t.notMatch(res.text, /127\.0\.0\.1|jwks\.json/, 'no internal address in the body')
  t.match(h.audit().at(-1), { outcome: 'failed', code: 'keys_unavailable', actor: null })
  t.equal(h.homeserver.calls.length, 0)
  const ready = await request(`${h.url}/readyz`)
  t.equal(ready.statusCode, 503)
  t.match(await ready.body.json(), { code: 'keys_unavailable' })
  t.equal((await request(`${h.url}/healthz`)).statusCode, 200, 'the process serves /healthz all the same')

  idp.down = false
  clock.advance(100)
  t.equal((await h.join(room, user, { token: signWith(key) })).status, 200, 'works once the IdP is back')
})

t.test('IdP down later: cached keys keep working; unknown kids get 503', async (t) => {
  const { idp, url } = await startIdp(t)
  const key = rsaKey('cached')
  idp.keys = [key]
  const h = await startHarness(t, { env: { JWT_SECRET: undefined, JWT_JWKS_URL: url }, jwksTiming: { cooldownMs: 50, maxAgeMs: 100 } })
  await until(async () => await fetchesDone(h, 'ok') >= 1, 'warm fetch')
  idp.down = true
  await until(async () => await fetchesDone(h, 'failed') >= 1, 'a failed background refresh')
  t.equal((await h.join(room, user, { token: signWith(key) })).status, 200, 'the cached key is still served')
  const unknown = await h.join(room, user, { token: signWith(rsaKey('new')) })
  t.equal(unknown.status, 503)
  t.equal(unknown.body.code, 'keys_unavailable')
  t.match(h.logs(), /cannot load JWKS keys/)
})

t.test('the JWKS URL comes from configuration only: jku and x5u headers cause no request', async (t) => {
  const { idp, url } = await startIdp(t)
  const key = rsaKey('k')
  idp.keys = [key]
  let elsewhere = 0
  const trap = createServer((_req, res) => { elsewhere++; res.end('{}') })
  await new Promise<void>((resolve) => trap.listen(0, '127.0.0.1', resolve))
  t.after(() => { trap.closeAllConnections(); trap.close() })
  const trapUrl = `http://127.0.0.1:${(trap.address() as AddressInfo).port}/jwks`
  const h = await startHarness(t, { env: { JWT_SECRET: undefined, JWT_JWKS_URL: url }, jwksTiming: { cooldownMs: 50 } })
  await until(() => idp.fetches >= 1, 'warm fetch')
  const attacker = rsaKey('evil')
  for (const header of [{ jku: trapUrl }, { x5u: trapUrl }, { jku: trapUrl, kid: 'k' }]) {
    const res = await h.join(room, user, { token: signWith(attacker, {}, header) })
    t.equal(res.status, 401)
  }
  t.equal(elsewhere, 0, 'no request to the URL in the token')
  const kids = ['../../dev/null', '\' OR 1=1 --', '0']
  for (const kid of kids) t.equal((await h.join(room, user, { token: signWith({ ...attacker, kid }) })).status, 401, `kid ${kid}`)
  t.equal(idp.fetches > 0, true)
})

t.test('a JWKS that is not usable is reported, never a 500', async (t) => {
  const server = createServer((req, res) => {
    if (req.url === '/html') res.writeHead(200, { 'content-type': 'text/html' }).end('<html>')
    else if (req.url === '/empty') res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}')
    else res.writeHead(200).end('{"keys": "nope"}')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => { server.closeAllConnections(); server.close() })
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  for (const path of ['/html', '/empty', '/shape']) {
    const h = await startHarness(t, { env: { JWT_SECRET: undefined, JWT_JWKS_URL: `${base}${path}` } })
    await until(async () => await fetchesDone(h, 'failed') >= 1, `the load of ${path} failed`)
    const res = await h.join(room, user, { token: signWith(rsaKey('k')) })
    t.equal(res.status, 503, path)
    t.equal(res.body.code, 'keys_unavailable', path)
  }
})
