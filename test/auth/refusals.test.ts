/**
 * A refused token says which check failed: in `detail`, in WWW-Authenticate's
 * error_description, in the debug log line and as `request.tokenRefusal` (for the audit entry),
 * without ever repeating the token or a signature.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import authPlugin from '../../src/auth/plugin.js'
import { rolesHint } from '../../src/auth/claims.js'
import { loadConfig } from '../../src/config.js'
import errorHandler, { toGatewayError } from '../../src/error-handler.js'
import { helpdeskClaims, signJwt } from '../../dev/tokens.js'
import { LogCapture, startHarness, type Harness } from '../helpers/harness.js'
import { FakeIdp, rsaKey, signWith } from '../helpers/idp.js'

const SECRET = 'CANARY-refusal-secret-0123456789abcdef-0123'
const now = () => Math.floor(Date.now() / 1000)
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')

/** A bare Fastify with the auth plugin and one route that authenticates. */
async function gateway (t: Test, env: Record<string, string | undefined> = {}) {
  const logs = new LogCapture()
  const config = loadConfig({
    SYNAPSE_URL: 'http://127.0.0.1:8008',
    SYNAPSE_ADMIN_TOKEN: 'unused',
    SYNAPSE_SERVER_NAME: 'example.com',
    JWT_SECRET: SECRET,
    ...env
  })
  const app = Fastify({ logger: { level: 'debug', stream: logs } })
  await app.register(errorHandler)
  await app.register(authPlugin, { jwt: config.jwt })
  const refusals: Array<string | undefined> = []
  app.addHook('onResponse', (request, _reply, done) => { refusals.push(request.tokenRefusal); done() })
  app.get('/whoami', async (request) => {
    const caller = await app.authenticate(request)
    return { ...caller }
  })
  t.after(async () => { await app.close() })
  const call = async (token: string) => {
    const res = await app.inject({ method: 'GET', url: '/whoami', headers: { authorization: `Bearer ${token}` } })
    return { status: res.statusCode, body: res.json(), wwwAuthenticate: String(res.headers['www-authenticate']), refusal: refusals.at(-1) }
  }
  return { app, call, logs }
}

async function expectRefusal (t: Test, call: Awaited<ReturnType<typeof gateway>>['call'], token: string, reason: string, detail: RegExp, what: string) {
  const res = await call(token)
  t.equal(res.status, 401, `${what}: 401`)
  t.equal(res.refusal, reason, `${what}: request.tokenRefusal is ${reason}`)
  t.match(res.body.detail, detail, `${what}: detail names the check`)
  t.match(res.wwwAuthenticate, /^Bearer error="invalid_token", error_description="[\x20\x21\x23-\x5b\x5d-\x7e]+"$/, `${what}: RFC 6750 error_description`)
  const signature = token.split('.')[2]
  if (signature !== undefined && signature.length > 8) t.notOk(res.body.detail.includes(signature) || res.wwwAuthenticate.includes(signature), `${what}: no signature echoed`)
  t.notOk(JSON.stringify(res.body).includes(token), `${what}: the token is not echoed`)
}

t.test('HMAC: every failed check is named', async (t) => {
  const issuer = 'https://idp.example/realms/acme'
  const { call, logs } = await gateway(t, { JWT_ALGORITHMS: 'HS256', JWT_ISSUER: issuer, JWT_AUDIENCE: 'synapse-admin-gateway' })
  const claims = (extra: Record<string, unknown> = {}) => helpdeskClaims({ iss: issuer, aud: 'synapse-admin-gateway', ...extra })
  const sign = (extra: Record<string, unknown> = {}) => signJwt({ alg: 'HS256' }, claims(extra), SECRET)
  t.equal((await call(sign())).status, 200, 'a good token passes')
  const [header, payload] = sign().split('.') as [string, string]

  await expectRefusal(t, call, sign({ aud: 'account' }), 'audience', /meant for account; .*audience synapse-admin-gateway \(JWT_AUDIENCE\)/, 'Keycloak\'s default aud')
  await expectRefusal(t, call, signJwt({ alg: 'HS256' }, { ...claims(), aud: undefined }, SECRET), 'audience', /has no aud claim/, 'no aud')
  await expectRefusal(t, call, sign({ iss: 'https://other.example' }), 'issuer', /issued by https:\/\/other\.example; .*issued by https:\/\/idp\.example\/realms\/acme \(JWT_ISSUER\)/, 'another issuer')
  await expectRefusal(t, call, signJwt({ alg: 'HS256' }, { ...claims(), iss: undefined }, SECRET), 'issuer', /has no iss claim/, 'no iss')
  await expectRefusal(t, call, signJwt({ alg: 'HS256' }, { ...claims(), exp: undefined }, SECRET), 'exp_missing', /no exp claim/, 'no exp')
  await expectRefusal(t, call, sign({ exp: String(now() + 60) }), 'claims', /exp claim must be a number/, 'exp a string')
  await expectRefusal(t, call, signJwt({ alg: 'HS512' }, claims(), SECRET), 'algorithm', /signed with HS512 but this gateway accepts only HS256/, 'HS512')
  await expectRefusal(t, call, `${b64({ alg: 'none', typ: 'JWT' })}.${payload}.`, 'algorithm', /signed with none/, 'alg none')
  await expectRefusal(t, call, signJwt({ alg: 'HS256' }, claims(), 'another-secret-another-secret-another'), 'signature', /signature does not verify/, 'another secret')
  await expectRefusal(t, call, `${header}.${payload}.`, 'signature', /signature/, 'no signature')
  await expectRefusal(t, call, 'not-a-jwt', 'malformed', /malformed/, 'garbage')
  await expectRefusal(t, call, signJwt({ alg: 'HS256' }, [1] as unknown as Record<string, unknown>, SECRET), 'malformed', /malformed/, 'payload an array')
  await expectRefusal(t, call, signJwt({ alg: 'HS256', crit: ['exp'] }, claims(), SECRET), 'malformed', /crit header/, 'crit header')
  await expectRefusal(t, call, sign({ nbf: now() + 600 }), 'not_yet_valid', /nbf claim is in the future/, 'nbf ahead')
  await expectRefusal(t, call, sign({ iat: now() + 600, exp: now() + 900 }), 'not_yet_valid', /issued in the future/, 'iat ahead')
  await expectRefusal(t, call, sign({ iat: 'yesterday' }), 'claims', /iat claim must be a number/, 'iat a string')
  await expectRefusal(t, call, sign({ iat: now(), exp: now() + 90000 }), 'lifetime', /JWT_MAX_AGE_S, 86400 s/, 'lifetime')
  await expectRefusal(t, call, signJwt({ alg: 'HS256' }, { ...claims(), sub: undefined }, SECRET), 'sub_missing', /sub claim/, 'no sub')
  await expectRefusal(t, call, sign({ pad: 'x'.repeat(9000) }), 'too_large', /8 KiB/, 'over 8 KiB')

  const expired = await call(sign({ iat: now() - 600, exp: now() - 300 }))
  t.equal(expired.status, 401)
  t.equal(expired.body.code, 'token_expired')
  t.equal(expired.refusal, 'expired')
  t.match(expired.wwwAuthenticate, /error_description="The token has expired/)

  const debug = logs.text.split('\n').filter((line) => line.includes('"token refused"')).map((line) => JSON.parse(line) as Record<string, unknown>)
  t.ok(debug.length >= 20, 'each refusal is logged')
  t.match(debug[0], { level: 20, token_refusal: 'audience', detail: /JWT_AUDIENCE/ }, 'at debug, with the reason')
  t.notOk(logs.text.includes(SECRET), 'the secret never reaches the log')
})

t.test('Entra ID: a v1.0 token against the v2.0 issuer, and the other way round, get the hint', async (t) => {
  const tenant = '72f988bf-86f1-41af-91ab-2d7cd011db47'
  const v2 = `https://login.microsoftonline.com/${tenant}/v2.0`
  const v1 = `https://sts.windows.net/${tenant}/`
  const v2Gateway = await gateway(t, { JWT_ISSUER: v2 })
  await expectRefusal(t, v2Gateway.call, signJwt({ alg: 'HS256' }, helpdeskClaims({ iss: v1 }), SECRET), 'issuer', /Entra ID v1\.0 token .*accessTokenAcceptedVersion/, 'v1 token, v2 issuer')
  const v1Gateway = await gateway(t, { JWT_ISSUER: v1 })
  await expectRefusal(t, v1Gateway.call, signJwt({ alg: 'HS256' }, helpdeskClaims({ iss: v2 }), SECRET), 'issuer', /Entra ID v2\.0 token/, 'v2 token, v1 issuer')
  await expectRefusal(t, v1Gateway.call, signJwt({ alg: 'HS256' }, helpdeskClaims({ iss: 'x'.repeat(300) }), SECRET), 'issuer', /has an iss claim that is not the expected one/, 'an issuer too long to repeat')
})

t.test('JWKS: unknown kid and an algorithm that does not fit the key are named', async (t) => {
  const idp = new FakeIdp()
  const url = await idp.start()
  t.after(async () => { await idp.stop() })
  const key = rsaKey('k1')
  idp.keys = [key]
  const { call } = await gateway(t, { JWT_SECRET: undefined, JWT_JWKS_URL: url, JWT_AUDIENCE: 'gw' })
  t.equal((await call(signWith(key, { aud: 'gw' }))).status, 200, 'a good token passes')
  await expectRefusal(t, call, signWith(rsaKey('k2'), { aud: 'gw' }), 'kid_unknown', /kid k2\) the identity provider does not publish at JWT_JWKS_URL/, 'unknown kid')
  await expectRefusal(t, call, signWith({ ...key, alg: 'RS384' }, { aud: 'gw' }), 'algorithm', /algorithm \(RS384\) does not fit its key, which verifies RS256/, 'an algorithm the key is not published for')
  await expectRefusal(t, call, signWith({ ...rsaKey('k1') }, { aud: 'gw' }), 'signature', /signature does not verify/, 'another key presented with a published kid')
  await expectRefusal(t, call, signWith(key, { aud: 'account' }), 'audience', /meant for account/, 'wrong audience through the JWKS path')
  await expectRefusal(t, call, signWith(key, { aud: 'gw' }, { kid: 7 }), 'malformed', /kid header is malformed/, 'kid a number')
  await expectRefusal(t, call, signWith(key, { aud: 'gw', exp: undefined }), 'exp_missing', /no exp claim/, 'no exp through the JWKS path')
})

t.test('roles at another usual place: insufficient_role and policy_denied hint at JWT_ROLES_CLAIM', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'roles-hint-'))
  t.after(() => { rmSync(dir, { recursive: true, force: true }) })
  const policyFile = join(dir, 'policy.yaml')
  writeFileSync(policyFile, 'rules:\n  - name: operators\n    roles: [matrix-admin]\n    actions: ["*"]\n')
  const withoutPolicy = await startHarness(t)
  const withPolicy = await startHarness(t, { env: { POLICY_FILE: policyFile } })
  const denied = async (h: Harness, code: string, claims: Record<string, unknown>) => {
    const res = await h.join('%23public-test:test.local', { user_id: '@alice:test.local' }, { token: h.token({ roles: undefined, ...claims }) })
    t.equal(res.status, 403)
    t.equal(res.body.code, code)
    return res.body.detail as string
  }
  for (const [h, code] of [[withoutPolicy, 'insufficient_role'], [withPolicy, 'policy_denied']] as const) {
    t.match(await denied(h, code, { realm_access: { roles: ['matrix-admin'] } }), /no roles at roles \(JWT_ROLES_CLAIM\) but has some at realm_access\.roles: set JWT_ROLES_CLAIM=realm_access\.roles/, `${code}: Keycloak realm roles`)
    t.match(await denied(h, code, { resource_access: { 'synapse-admin-gateway': { roles: ['matrix-admin'] } } }), /JWT_ROLES_CLAIM=resource_access\.synapse-admin-gateway\.roles/, `${code}: Keycloak client roles`)
    t.match(await denied(h, code, { scp: 'matrix-admin openid' }), /JWT_ROLES_CLAIM=scp/, `${code}: OAuth scopes`)
    t.notMatch(await denied(h, code, {}), /JWT_ROLES_CLAIM/, `${code}: no hint when there are no roles anywhere`)
    t.notMatch(await denied(h, code, { roles: ['viewer'], groups: ['matrix-admin'] }), /JWT_ROLES_CLAIM/, `${code}: no hint when the claim has roles, just not the right ones`)
  }

  t.equal(rolesHint({ groups: ['a'] }, 'groups'), undefined, 'roles where configured: no hint')
  t.match(rolesHint({ groups: ['a'], permissions: ['b'] }, 'roles'), /has some at groups, permissions/)
})

t.test('the caller carries the verified claims, iss and jti, but an audit actor built from it does not', async (t) => {
  const { app } = await gateway(t, { JWT_ISSUER: 'https://idp.example' })
  const token = signJwt({ alg: 'HS256' }, helpdeskClaims({ iss: 'https://idp.example', jti: 'j-1', email: 'x@example.com' }), SECRET)
  const request = { headers: { authorization: `Bearer ${token}` }, raw: { rawHeaders: ['Authorization', `Bearer ${token}`] }, log: app.log } as never
  await app.ready()
  const caller = await app.authenticate(request)
  t.equal(caller.iss, 'https://idp.example')
  t.equal(caller.jti, 'j-1')
  t.match(caller.claims, { email: 'x@example.com', sub: 'helpdesk-bot' })
  t.same(JSON.parse(JSON.stringify(caller)), { sub: 'helpdesk-bot', org: 'example', roles: ['matrix-admin'] }, 'serialized: sub, org and roles only')
})

t.test('a verifier error that reaches the error handler is still a 401 invalid_token', async (t) => {
  const error = toGatewayError(Object.assign(new Error('x'), { code: 'FAST_JWT_MALFORMED' }) as never)
  t.equal(error.problem, 'invalid_token')
  t.equal(error.statusCode, 401)
})
