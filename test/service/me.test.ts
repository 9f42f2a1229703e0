/**
 * GET /v1/me: any valid token, no role needed; it says who the token is and which actions the
 * policy allows this caller (room and user constraints aside), with or without POLICY_FILE.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { signJwt } from '../../dev/tokens.js'
import { ACTION_NAMES } from '../../src/actions/catalog.js'
import { startActionHarness } from '../helpers/actions.js'

/** The allow-all policy gives every action of the catalog. */
const ALL_ACTIONS = [...ACTION_NAMES].sort()

t.test('with the allow-all policy: sub, org, roles and every action; no Synapse call, no audit record', async (t) => {
  const h = await startActionHarness(t)
  const res = await h.call('GET', '/v1/me', { token: h.token({ sub: 'agent-7', org: 'acme', roles: ['matrix-admin', 'other'] }) })
  t.equal(res.status, 200)
  t.same({ ...res.body, actions: [...res.body.actions].sort() }, { sub: 'agent-7', org: 'acme', roles: ['matrix-admin', 'other'], actions: ALL_ACTIONS, approvals: [] })
  const other = await h.call('GET', '/v1/me', { token: h.token({ sub: 'visitor', org: undefined, roles: ['guest'] }) })
  t.equal(other.status, 200)
  t.same(other.body, { sub: 'visitor', org: null, roles: ['guest'], actions: [], approvals: [] }, 'a valid token without a matching rule: no actions, still 200')
  t.same(h.homeserver.calls, [])
  t.same(h.recordsOf(res.requestId), [])
})

t.test('a policy with room/user constraints and a deny rule: actions ignore the constraints, an unconditional deny removes one', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gateway-policy-'))
  t.after(() => { rmSync(dir, { recursive: true, force: true }) })
  const file = join(dir, 'policy.yaml')
  writeFileSync(file, [
    'rules:',
    '  - name: helpdesk-support',
    '    roles: [helpdesk]',
    '    actions: [room.join, room.remove, user.read]',
    '    rooms: ["#support-*:test.local"]',
    '    users: ["@*:test.local"]',
    '  - name: no-removals-for-trainees',
    '    effect: deny',
    '    roles: [trainee]',
    '    actions: [room.remove]',
    ''
  ].join('\n'))
  const h = await startActionHarness(t, { env: { POLICY_FILE: file } })
  const helpdesk = await h.call('GET', '/v1/me', { token: h.token({ roles: ['helpdesk'] }) })
  t.same([...helpdesk.body.actions].sort(), ['room.join', 'room.remove', 'user.read'])
  const trainee = await h.call('GET', '/v1/me', { token: h.token({ roles: ['helpdesk', 'trainee'] }) })
  t.same([...trainee.body.actions].sort(), ['room.join', 'user.read'])
  const admin = await h.call('GET', '/v1/me', { token: h.token({ roles: ['matrix-admin'] }) })
  t.same(admin.body.actions, [], 'matrix-admin has no rule in this policy')
})

t.test('without POLICY_FILE: ["room.join"] for a JOIN_ROLES caller, [] otherwise; JOIN_ROLES is honoured', async (t) => {
  const h = await startActionHarness(t, { policy: false, env: { JOIN_ROLES: 'matrix-admin,helpdesk' } })
  for (const [roles, actions] of [[['matrix-admin'], ['room.join']], [['helpdesk'], ['room.join']], [['viewer'], []], [[], []]] as const) {
    const res = await h.call('GET', '/v1/me', { token: h.token({ roles: [...roles] }) })
    t.equal(res.status, 200)
    t.same(res.body.actions, actions, JSON.stringify(roles))
    t.same(res.body.roles, roles)
  }
})

t.test('a missing, invalid or expired token is 401 problem+json', async (t) => {
  const h = await startActionHarness(t)
  const missing = await h.call('GET', '/v1/me', { token: null })
  t.equal(missing.status, 401)
  t.match(missing.body, { code: 'missing_token' })
  t.match(missing.headers['www-authenticate'], /^Bearer/)
  t.match(missing.headers['content-type'], /application\/problem\+json/)
  const forged = signJwt({ alg: 'HS256' }, { sub: 'x', roles: ['matrix-admin'], exp: Math.floor(Date.now() / 1000) + 60 }, 'not-the-gateways-secret-0123456789abcdef')
  for (const token of ['not-a-jwt', forged]) {
    const res = await h.call('GET', '/v1/me', { token })
    t.equal(res.status, 401)
    t.match(res.body, { code: 'invalid_token' })
  }
  const now = Math.floor(Date.now() / 1000)
  const expired = await h.call('GET', '/v1/me', { token: h.token({ iat: now - 3600, exp: now - 600 }) })
  t.equal(expired.status, 401)
  t.match(expired.body, { code: 'token_expired' })
})
