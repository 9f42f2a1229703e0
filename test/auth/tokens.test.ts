/**
 * Org tokens: every key mode, every verify rule set explicitly, roles and org claims. A refused
 * token is a 401/403 problem, an audit entry with outcome `denied`, and no Synapse call.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { RECORDED_ROOMS } from '../../dev/homeserver/state.js'
import { helpdeskClaims, signJwt } from '../../dev/tokens.js'
import { JWT_SECRET, startHarness, type Harness } from '../helpers/harness.js'
import { ecKey, edKey, rsaKey, signWith } from '../helpers/idp.js'

const room = encodeURIComponent(RECORDED_ROOMS.publicTest)
const user = { user_id: '@alice:test.local' }
const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
const now = () => Math.floor(Date.now() / 1000)

async function expectDenied (t: Test, h: Harness, token: string | null, status: number, code: string, what: string) {
  const before = h.homeserver.calls.length
  const res = await h.join(room, user, { token })
  t.equal(res.status, status, `${what}: status`)
  t.equal(res.body?.code, code, `${what}: code`)
  if (code === 'invalid_token' || code === 'token_expired') {
    t.match(res.headers['www-authenticate'], /^Bearer error="invalid_token"/, `${what}: WWW-Authenticate`)
  }
  t.equal(h.homeserver.calls.length, before, `${what}: Synapse not called`)
  t.match(h.audit().at(-1), { outcome: 'denied', code, status }, `${what}: audited as denied`)
}

t.test('no bearer token: 401 missing_token with WWW-Authenticate: Bearer', async (t) => {
  const h = await startHarness(t)
  for (const authorization of [undefined, 'Basic YWxpY2U6cGFzcw==', 'Bearer', 'Bearer ', 'Token abc']) {
    const res = await h.join(room, user, { token: null, headers: authorization === undefined ? {} : { authorization } })
    t.equal(res.status, 401, String(authorization))
    t.equal(res.body.code, 'missing_token')
    t.equal(res.headers['www-authenticate'], 'Bearer')
  }
  t.match(h.audit()[0], { outcome: 'denied', code: 'missing_token', actor: null })
  const lower = await h.join(room, user, { token: null, headers: { authorization: `bearer ${h.token()}` } })
  t.equal(lower.status, 200, 'the scheme is case-insensitive')
  const viaQuery = await request(`${h.url}/v1/rooms/${room}/members?access_token=${h.token()}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(user)
  })
  t.equal(viaQuery.statusCode, 401, 'tokens in the query string are never used')
  t.equal((await viaQuery.body.json() as { code: string }).code, 'missing_token')
})

t.test('HMAC tokens: signature, algorithms and every claim rule', async (t) => {
  const h = await startHarness(t, { env: { JWT_ALGORITHMS: 'HS256', JWT_ISSUER: 'https://idp.example', JWT_AUDIENCE: 'synapse-admin-gateway' } })
  const claims = (extra: Record<string, unknown> = {}) => helpdeskClaims({ iss: 'https://idp.example', aud: 'synapse-admin-gateway', ...extra })
  const sign = (extra: Record<string, unknown> = {}, header: Record<string, unknown> = {}) => signJwt({ alg: 'HS256', ...header }, claims(extra), JWT_SECRET)
  t.equal((await h.join(room, user, { token: sign() })).status, 200, 'a good token')
  t.equal((await h.join(room, user, { token: signJwt({ alg: 'HS256' }, { ...claims(), aud: ['other', 'synapse-admin-gateway'] }, JWT_SECRET) })).status, 200, 'aud as an array containing ours')

  const good = sign()
  const [header, payload] = good.split('.') as [string, string, string]
  const cases: Array<[string, string, string?]> = [
    ['wrong secret', signJwt({ alg: 'HS256' }, claims(), 'another-secret-another-secret-1234')],
    ['HS512 when only HS256 is allowed', signJwt({ alg: 'HS512' }, claims(), JWT_SECRET)],
    ['alg none', `${b64({ alg: 'none', typ: 'JWT' })}.${payload}.`],
    ['alg None', `${b64({ alg: 'None', typ: 'JWT' })}.${payload}.`],
    ['alg NONE', `${b64({ alg: 'NONE', typ: 'JWT' })}.${payload}.`],
    ['empty signature', `${header}.${payload}.`],
    ['all-zero signature', `${header}.${payload}.${b64(Buffer.alloc(32))}`],
    ['non-base64url characters', `${header}.${payload}.abc$%^`],
    ['JWE-shaped', `${header}.${payload}.a.b.c`],
    ['two segments', `${header}.${payload}`],
    ['garbage', 'not-a-jwt'],
    ['payload is an array', signJwt({ alg: 'HS256' }, [1, 2] as unknown as Record<string, unknown>, JWT_SECRET)],
    ['payload is not JSON', `${header}.${b64('{nope')}.${b64('x')}`],
    ['no exp', signJwt({ alg: 'HS256' }, { ...claims(), exp: undefined }, JWT_SECRET)],
    ['exp a string', sign({ exp: String(now() + 60) })],
    ['nbf in the future', sign({ nbf: now() + 120 })],
    ['iat in the future', sign({ iat: now() + 120, exp: now() + 600 })],
    ['lifetime over JWT_MAX_AGE_S', sign({ iat: now(), exp: now() + 86400 + 60 })],
    ['no iat and exp too far away', signJwt({ alg: 'HS256' }, { ...claims(), iat: undefined, exp: now() + 90000 }, JWT_SECRET)],
    ['wrong aud', sign({ aud: 'someone-else' })],
    ['missing aud', signJwt({ alg: 'HS256' }, { ...claims(), aud: undefined }, JWT_SECRET)],
    ['wrong iss', sign({ iss: 'https://evil.example' })],
    ['iss as an array', sign({ iss: ['https://idp.example'] })],
    ['missing iss', signJwt({ alg: 'HS256' }, { ...claims(), iss: undefined }, JWT_SECRET)],
    ['no sub', signJwt({ alg: 'HS256' }, { ...claims(), sub: undefined }, JWT_SECRET)],
    ['signed with an attacker key embedded as jwk', signJwt({ alg: 'HS256', jwk: { kty: 'oct', k: b64('attacker') } }, claims(), 'attacker')],
    ['crit header', sign({}, { crit: ['exp'] })],
    ['over 8 KiB', sign({ pad: 'x'.repeat(9000) })]
  ]
  for (const [what, token] of cases) await expectDenied(t, h, token, 401, 'invalid_token', what)

  await expectDenied(t, h, sign({ iat: now() - 200, exp: now() - 60 }), 401, 'token_expired', 'expired beyond the tolerance')
  t.equal((await h.join(room, user, { token: sign({ iat: now() - 200, exp: now() - 10 }) })).status, 200, 'expired within the 30 s tolerance')
  t.equal((await h.join(room, user, { token: sign({ nbf: now() + 10 }) })).status, 200, 'nbf within the tolerance')
})

t.test('roles and org: exact matches at the configured claim paths', async (t) => {
  const h = await startHarness(t, { env: { JWT_ROLES_CLAIM: 'realm_access.roles', ALLOWED_ORGS: 'example, partner', JOIN_ROLES: 'matrix-admin,helpdesk' } })
  const token = (claims: Record<string, unknown>) => h.token({ roles: undefined, ...claims })
  t.equal((await h.join(room, user, { token: token({ realm_access: { roles: ['helpdesk'] } }) })).status, 200, 'array of roles')
  t.equal((await h.join(room, user, { token: token({ realm_access: { roles: 'openid helpdesk' } }) })).status, 200, 'space-separated roles')
  t.equal((await h.join(room, user, { token: token({ org: 'partner', realm_access: { roles: ['matrix-admin'] } }) })).status, 200, 'second allowed org')
  await expectDenied(t, h, token({ realm_access: { roles: ['xmatrix-adminx', 'matrix-admin2', 'Matrix-Admin'] } }), 403, 'insufficient_role', 'substring and case traps')
  await expectDenied(t, h, token({ roles: ['matrix-admin'] }), 403, 'insufficient_role', 'roles at the wrong path')
  await expectDenied(t, h, token({ realm_access: { roles: [{ name: 'matrix-admin' }] } }), 403, 'insufficient_role', 'roles that are not strings')
  t.equal((await h.join(room, user, { token: token({ 'realm_access.roles': ['helpdesk'] }) })).status, 200, 'a claim named with dots (namespaced claims)')
  await expectDenied(t, h, token({ org: 'evil', realm_access: { roles: ['matrix-admin'] } }), 403, 'org_not_allowed', 'org not allowed')
  await expectDenied(t, h, token({ org: undefined, realm_access: { roles: ['matrix-admin'] } }), 403, 'org_not_allowed', 'no org')
  await expectDenied(t, h, token({ org: '__proto__', realm_access: { roles: ['matrix-admin'] } }), 403, 'org_not_allowed', 'org __proto__')
  await expectDenied(t, h, token({ org: ['example'], realm_access: { roles: ['matrix-admin'] } }), 403, 'org_not_allowed', 'org as an array')
  const denied = h.audit().at(-1)
  t.match(denied, { actor: { sub: 'helpdesk-bot', org: null } }, 'a valid token that is refused still names its caller')
  const insufficient = await h.join(room, user, { token: token({}) })
  t.equal(insufficient.headers['www-authenticate'], 'Bearer error="insufficient_scope"')
})

t.test('public keys: RSA, EC and Ed25519 PEMs; no key confusion', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gateway-keys-'))
  for (const key of [rsaKey('r'), ecKey('e'), edKey('d')]) {
    const pem = key.publicKey.export({ type: 'spki', format: 'pem' }).toString()
    const file = join(dir, `${key.alg}.pem`)
    writeFileSync(file, pem)
    const h = await startHarness(t, { env: { JWT_SECRET: undefined, JWT_PUBLIC_KEY_FILE: file } })
    t.equal((await h.join(room, user, { token: signWith(key) })).status, 200, `${key.alg} accepted`)
    await expectDenied(t, h, signJwt({ alg: 'HS256' }, helpdeskClaims(), pem), 401, 'invalid_token', `${key.alg}: HS256 signed with the public PEM`)
    const jwkText = JSON.stringify(key.publicKey.export({ format: 'jwk' }))
    await expectDenied(t, h, signJwt({ alg: 'HS256' }, helpdeskClaims(), jwkText), 401, 'invalid_token', `${key.alg}: HS256 signed with the JWK text`)
    await expectDenied(t, h, signWith(rsaKey('other')), 401, 'invalid_token', `${key.alg}: another key`)
  }
  const rsa = rsaKey('env')
  const inline = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString().replace(/\n/g, '\\n')
  const h = await startHarness(t, { env: { JWT_SECRET: undefined, JWT_PUBLIC_KEY: inline, JWT_ALGORITHMS: 'RS256' } })
  t.equal((await h.join(room, user, { token: signWith(rsa) })).status, 200, 'PEM in an env variable with \\n escapes')
  await expectDenied(t, h, signWith({ ...rsa, alg: 'PS256' }), 401, 'invalid_token', 'PS256 when only RS256 is allowed')

  const hmac = await startHarness(t)
  await expectDenied(t, hmac, signWith(rsa), 401, 'invalid_token', 'RS256 against an HMAC config')
})
