/**
 * The approval store's state machine, over memory and over a real redis-server: self-approval,
 * distinct approvers, exactly one execution (also when approvers race on two connections),
 * deny, expiry by an injected clock, listing by requester and roles, and the bounds.
 */
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import {
  ApprovalsFullError, createApprovalStore, createMemoryApprovalStore, createRedisApprovalStore, heldRequest, holdForApproval, satisfies,
  type ApprovalStore, type ApprovalStoreLimits, type Decider, type NewApproval
} from '../../src/approvals/index.js'
import { GatewayError } from '../../src/errors.js'
import { REDIS_CLIENT_OPTIONS, StateUnavailableError } from '../../src/state/shared.js'
import { skipWithoutRedis, startRedisServer, until, type RedisServer } from '../helpers/redis.js'

type Tap = Test
interface Clock { at: number }
type MakeStores = (t: Tap, limits: Omit<ApprovalStoreLimits, 'now'>, clock: Clock, count?: number) => Promise<ApprovalStore[]>

const HOUR_S = 3600
const limits = { ttlS: HOUR_S, maxEntries: 1000, maxBytes: 16 * 1024 * 1024 }
const requester = { sub: 'helpdesk-bot', iss: 'https://idp.example.com', org: 'acme', roles: ['helpdesk'], claims: { department: 'it' } }
const lead = (n: number, iss: string | null = 'https://idp.example.com'): Decider => ({ sub: `lead-${n}`, iss, roles: ['security-lead'] })
const request = (count = 1, overrides: Partial<NewApproval> = {}): NewApproval => ({
  action: 'room.remove',
  target: { room: '#support-1:example.com', user_id: '@mallory:example.com' },
  reason: 'Ticket SEC-1: spam',
  requested_by: requester,
  required: { rule: 'helpdesk-removes-with-approval', roles: ['security-lead', 'support-manager'], count },
  held: { method: 'DELETE', url: '/v1/rooms/%23support-1%3Aexample.com/members/%40mallory%3Aexample.com', body: { reason: 'Ticket SEC-1: spam' } },
  ...overrides
})

function behavesLikeAnApprovalStore (t: Tap, name: string, makeStores: MakeStores, skip: string | false): void {
  const one = async (t: Tap, clock: Clock, bounds = limits): Promise<ApprovalStore> => (await makeStores(t, bounds, clock))[0] as ApprovalStore

  t.test(`${name}: pending until count distinct approvers, never the requester; one execution`, { skip }, async (t) => {
    const clock = { at: 1_800_000_000_000 }
    const store = await one(t, clock)
    const created = await store.create(request(2))
    t.match(created.id, /^[A-Za-z0-9_-]{22}$/, 'an unguessable URL-safe id')
    t.match(created, { status: 'pending', action: 'room.remove', reason: 'Ticket SEC-1: spam', decisions: [], result: null, created_at: clock.at, expires_at: clock.at + HOUR_S * 1000 })
    t.same(await store.get(created.id), created, 'read back as created')
    t.not((await store.create(request(2))).id, created.id, 'every approval has its own id')

    const self = await store.approve(created.id, { sub: requester.sub, iss: requester.iss, roles: ['security-lead'] }, null)
    t.equal(self.kind, 'self_approval', 'the requester never approves, whatever its roles')
    for (const iss of ['https://other-idp.example.com', '', null]) {
      t.equal((await store.approve(created.id, { sub: requester.sub, iss, roles: ['security-lead'] }, null)).kind, 'self_approval', `the same sub with a token from another issuer (${JSON.stringify(iss)}) is still the requester`)
    }

    const created2 = await store.create(request(2))
    clock.at += 1000
    const first = await store.approve(created2.id, lead(1), 'looks right')
    t.equal(first.kind, 'recorded', 'one of two approvals')
    t.match(first, { approval: { status: 'pending', decisions: [{ sub: 'lead-1', iss: 'https://idp.example.com', decision: 'approve', reason: 'looks right', roles: ['security-lead'], at: clock.at }] } })
    t.equal((await store.approve(created2.id, lead(1), null)).kind, 'repeat', 'the same approver again counts once')
    const second = await store.approve(created2.id, lead(2), null)
    t.equal(second.kind, 'execute', 'the second distinct approver completes the count and owns the execution')
    t.equal(second.kind === 'execute' && second.approval.status, 'approved')
    t.equal((await store.approve(created2.id, lead(3), null)).kind, 'decided', 'a later approval: already decided')
    t.equal((await store.deny(created2.id, lead(3), null)).kind, 'decided', 'a later denial too')

    await store.complete(created2.id, { status: 200, code: null })
    await store.complete(created2.id, { status: 500, code: 'internal_error' })
    t.same((await store.get(created2.id))?.result, { status: 200, code: null, at: clock.at }, 'the execution result is recorded once')
    await store.complete(created.id, { status: 200, code: null })
    t.equal((await store.get(created.id))?.result, null, 'a pending approval takes no result')
    t.equal((await store.approve('no-such-approval-id-xx', lead(1), null)).kind, 'not_found')
    t.equal((await store.deny('no-such-approval-id-xx', lead(1), null)).kind, 'not_found')
    t.equal(await store.get('no-such-approval-id-xx'), undefined)
  })

  t.test(`${name}: a denial ends it; the requester may withdraw`, { skip }, async (t) => {
    const clock = { at: 1_800_000_000_000 }
    const store = await one(t, clock)
    const a = await store.create(request(2))
    t.equal((await store.approve(a.id, lead(1), null)).kind, 'recorded')
    const denied = await store.deny(a.id, lead(2), 'not this one')
    t.match(denied, { kind: 'denied', approval: { status: 'denied', decisions: [{ decision: 'approve' }, { sub: 'lead-2', decision: 'deny', reason: 'not this one' }] } })
    t.equal((await store.approve(a.id, lead(3), null)).kind, 'decided', 'approving after a denial: approval_decided')
    const b = await store.create(request(1))
    t.equal((await store.deny(b.id, { sub: requester.sub, iss: requester.iss, roles: [] }, 'withdrawn')).kind, 'denied', 'the requester withdraws its own request')
  })

  t.test(`${name}: expiry by the clock`, { skip }, async (t) => {
    const clock = { at: 1_800_000_000_000 }
    const store = await one(t, clock)
    const a = await store.create(request(1))
    const b = await store.create(request(1))
    const c = await store.create(request(1))
    clock.at += HOUR_S * 1000 - 1
    t.equal((await store.get(a.id))?.status, 'pending', 'pending until expires_at')
    clock.at += 1
    t.equal((await store.get(a.id))?.status, 'expired', 'expired from expires_at on, before anything marked it')
    t.match(await store.approve(a.id, lead(1), null), { kind: 'expired', expiredNow: true }, 'the first decision after expiry marks it (and so audits it)')
    t.match(await store.approve(a.id, lead(1), null), { kind: 'expired', expiredNow: false }, 'later ones only see it')
    t.match(await store.deny(a.id, lead(1), null), { kind: 'expired', expiredNow: false })
    const swept = await store.expireDue()
    t.same(swept.map((approval) => approval.id).sort(), [b.id, c.id].sort(), 'the sweep marks the others, each once')
    t.ok(swept.every((approval) => approval.status === 'expired'))
    t.same(await store.expireDue(), [], 'nothing twice')
    clock.at += HOUR_S * 1000
    t.equal(await store.get(a.id), undefined, 'an ended approval is kept APPROVAL_TTL_S after it ended, then gone')
  })

  t.test(`${name}: a decided approval stays visible for the TTL after its decision`, { skip }, async (t) => {
    const clock = { at: 1_800_000_000_000 }
    const store = await one(t, clock)
    const a = await store.create(request(1))
    clock.at += HOUR_S * 1000 - 10
    t.equal((await store.deny(a.id, lead(1), null)).kind, 'denied', 'decided just before expiry')
    clock.at += HOUR_S * 1000 - 1
    t.equal((await store.get(a.id))?.status, 'denied', 'still there (and still denied, not expired)')
    clock.at += 1
    t.equal(await store.get(a.id), undefined, 'gone')
  })

  t.test(`${name}: list what the caller requested or may decide, by status, in pages`, { skip }, async (t) => {
    const clock = { at: 1_800_000_000_000 }
    const store = await one(t, clock)
    const ids: string[] = []
    for (let i = 0; i < 5; i++) {
      clock.at += 1000
      ids.push((await store.create(request(1))).id)
    }
    const other = await store.create(request(1, { requested_by: { ...requester, sub: 'other-bot' }, required: { rule: 'r', roles: ['cso'], count: 1 } }))
    await store.deny(ids[1] as string, lead(1), null)
    const mine = { requester: { sub: requester.sub, iss: requester.iss }, roles: requester.roles, org: requester.org }
    const all = await store.list({ ...mine, limit: 10 })
    t.same(all.approvals.map((approval) => approval.id), [...ids].reverse(), 'the requester sees its own, newest first, not the other bot\'s')
    t.equal(all.next, undefined, 'one page')
    const pending = await store.list({ ...mine, status: 'pending', limit: 10 })
    t.same(pending.approvals.map((approval) => approval.id), [ids[4], ids[3], ids[2], ids[0]], 'status filter')
    const page1 = await store.list({ ...mine, limit: 2 })
    t.same(page1.approvals.map((approval) => approval.id), [ids[4], ids[3]])
    t.type(page1.next, 'string')
    const page2 = await store.list({ ...mine, limit: 2, from: page1.next })
    t.same(page2.approvals.map((approval) => approval.id), [ids[2], ids[1]])
    const page3 = await store.list({ ...mine, limit: 2, from: page2.next })
    t.same(page3.approvals.map((approval) => approval.id), [ids[0]])
    t.equal(page3.next, undefined, 'the last page has no next')
    const deciderView = await store.list({ requester: { sub: 'lead-1', iss: 'https://idp.example.com' }, roles: ['support-manager', 'viewer'], org: 'acme', limit: 10 })
    t.equal(deciderView.approvals.length, 5, 'a holder of a required role sees them all')
    const otherOrg = await store.list({ requester: { sub: 'lead-g', iss: 'https://idp.example.com' }, roles: ['support-manager', 'cso'], org: 'globex', limit: 10 })
    t.same(otherOrg.approvals, [], 'a holder of the roles in another org sees none: four eyes never cross organisations')
    t.same((await store.list({ requester: { sub: 'cso-1', iss: null }, roles: ['cso'], org: 'acme', limit: 10 })).approvals.map((approval) => approval.id), [other.id], 'roles select')
    t.same((await store.list({ requester: { sub: 'nobody', iss: null }, roles: ['viewer'], org: 'acme', limit: 10 })).approvals, [], 'an outsider sees none')
    clock.at += HOUR_S * 1000
    t.equal((await store.list({ ...mine, status: 'expired', limit: 10 })).approvals.length, 4, 'expired ones listed as expired before the sweep')
  })

  t.test(`${name}: bounded; ended approvals go first, pending ones are never dropped`, { skip }, async (t) => {
    const clock = { at: 1_800_000_000_000 }
    const store = await one(t, clock, { ...limits, maxEntries: 3 })
    const [a, b, c] = [await store.create(request(1)), await store.create(request(1)), await store.create(request(1))]
    await t.rejects(store.create(request(1)), ApprovalsFullError, 'full of pending approvals: refused')
    await store.deny(b.id, lead(1), null)
    const d = await store.create(request(1))
    t.equal(await store.get(b.id), undefined, 'the ended one made room')
    for (const kept of [a, c, d]) t.equal((await store.get(kept.id))?.status, 'pending', 'pending ones stay')

    const small = await one(t, clock, { ...limits, maxBytes: 4096 })
    let made = 0
    const big = request(1, { reason: 'x'.repeat(500) })
    try { for (;;) { await small.create(big); made++ } } catch (error) { t.type(error, ApprovalsFullError, 'the byte budget refuses too') }
    t.ok(made >= 1 && made < 8, `${made} approvals of ~1.4 KB fit in 4 KiB`)
  })

  t.test(`${name}: concurrent approvals complete the count once`, { skip }, async (t) => {
    const clock = { at: 1_800_000_000_000 }
    const stores = await makeStores(t, limits, clock, 2)
    const approval = await (stores[0] as ApprovalStore).create(request(3))
    const outcomes = await Promise.all(Array.from({ length: 20 }, async (_, n) => (await (stores[n % 2] as ApprovalStore).approve(approval.id, lead(n), null)).kind))
    t.equal(outcomes.filter((kind) => kind === 'execute').length, 1, 'exactly one execution')
    t.equal(outcomes.filter((kind) => kind === 'recorded').length, 2, 'two approvals before it')
    t.equal(outcomes.filter((kind) => kind === 'decided').length, 17, 'the rest found it decided')
    t.equal((await (stores[1] as ApprovalStore).get(approval.id))?.decisions.length, 3, 'three decisions kept')
  })
}

behavesLikeAnApprovalStore(t, 'memory', async (t, bounds, clock, count = 1) => {
  const store = createMemoryApprovalStore({ ...bounds, now: () => clock.at })
  t.after(() => store.close())
  // One replica's memory: "two stores" are the same one.
  return Array.from({ length: count }, () => store)
}, false)

const skip = skipWithoutRedis('the Redis approval store')
/** Each test its own redis-server; `count` connections, as separate replicas have. */
async function readyClients (t: Tap, count: number): Promise<{ server: RedisServer, clients: Redis[] }> {
  const server = await startRedisServer(t)
  const clients = Array.from({ length: count }, () => new Redis(server.url, REDIS_CLIENT_OPTIONS))
  t.after(() => { for (const client of clients) client.disconnect() })
  await until('the Redis clients to be ready', () => clients.every((client) => client.status === 'ready'))
  return { server, clients }
}
behavesLikeAnApprovalStore(t, 'redis', async (t, bounds, clock, count = 1) => {
  const { clients } = await readyClients(t, count)
  return clients.map((client) => createRedisApprovalStore(client, { ...bounds, now: () => clock.at }))
}, skip)

t.test('redis: an unreachable Redis rejects with StateUnavailableError, naming no key', { skip }, async (t) => {
  const { server: down, clients: [client] } = await readyClients(t, 1) as { server: RedisServer, clients: [Redis] }
  const store = createRedisApprovalStore(client, limits)
  const approval = await store.create(request(1))
  await down.kill()
  for (const call of [() => store.get(approval.id), () => store.approve(approval.id, lead(1), null), () => store.create(request(1)), () => store.expireDue(), () => store.list({ requester, roles: [], org: requester.org, limit: 1 })]) {
    const error = await call().then(() => undefined, (rejected: unknown) => rejected)
    t.type(error, StateUnavailableError)
    t.notMatch(String((error as Error).message), approval.id)
  }
})

t.test('createApprovalStore: in memory without a Redis client', async (t) => {
  const store = createApprovalStore(undefined, limits)
  const approval = await store.create(request(1))
  t.equal((await store.get(approval.id))?.status, 'pending')
  await store.close()
  t.equal(await store.get(approval.id), undefined, 'memory: gone once closed (and on restart)')
})

t.test('satisfies: distinct approvers holding a required role, never the requester', async (t) => {
  const clock = { at: 1_800_000_000_000 }
  const store = createMemoryApprovalStore({ ...limits, now: () => clock.at })
  const a = await store.create(request(3))
  await store.approve(a.id, lead(1), null)
  await store.approve(a.id, { sub: 'manager', iss: null, roles: ['support-manager'] }, null)
  const approval = await store.get(a.id)
  if (approval === undefined) throw new Error('missing')
  t.ok(satisfies({ roles: ['security-lead', 'support-manager'], count: 2 }, approval))
  t.notOk(satisfies({ roles: ['security-lead'], count: 2 }, approval), 'the policy now asks for two security leads')
  t.notOk(satisfies({ roles: ['security-lead', 'support-manager'], count: 3 }, approval), 'or for three approvals')
})

t.test('heldRequest: a password never waits for an approval', async (t) => {
  t.same(heldRequest('user.password.reset', 'POST', '/v1/users/%40a%3Ax/password', { logout_devices: false }), { method: 'POST', url: '/v1/users/%40a%3Ax/password', body: { logout_devices: false } })
  t.same(heldRequest('room.remove', 'DELETE', '/v1/rooms/x/members/y', null), { method: 'DELETE', url: '/v1/rooms/x/members/y', body: undefined })
  const error = (() => { try { heldRequest('user.password.reset', 'POST', '/p', { new_password: 'correct horse battery staple' }); return undefined } catch (thrown) { return thrown } })()
  t.type(error, GatewayError)
  t.equal((error as GatewayError).problem, 'password_not_held')
  t.equal((error as GatewayError).statusCode, 400)
  t.notMatch((error as GatewayError).message, 'correct horse', 'the detail never repeats the password')
})

t.test('holdForApproval: the pending approval, or the problem to answer', async (t) => {
  const store = createMemoryApprovalStore({ ...limits, maxEntries: 1 })
  const { held: _held, ...asked } = request(1)
  const approval = await holdForApproval(store, { ...asked, method: 'POST', url: '/v1/users/%40a%3Aexample.com/deactivate', body: { erase: true } })
  t.match(await store.get(approval.id), { status: 'pending', held: { method: 'POST', url: '/v1/users/%40a%3Aexample.com/deactivate', body: { erase: true } } })
  const full = await holdForApproval(store, { ...asked, method: 'POST', url: '/p', body: undefined }).catch((error: unknown) => error)
  t.match(full, { problem: 'approvals_full', statusCode: 503, retryAfterS: 60 })
  const secret = await holdForApproval(store, { ...asked, action: 'user.password.reset', method: 'POST', url: '/p', body: { new_password: 'correct horse battery staple' } }).catch((error: unknown) => error)
  t.match(secret, { problem: 'password_not_held', statusCode: 400 }, 'refused before the store is asked')
})

t.test('holdForApproval: an unreachable Redis is state_unavailable', { skip }, async (t) => {
  const { server, clients: [client] } = await readyClients(t, 1) as { server: RedisServer, clients: [Redis] }
  await server.kill()
  const { held: _held, ...asked } = request(1)
  const error = await holdForApproval(createRedisApprovalStore(client, limits), { ...asked, method: 'POST', url: '/p', body: undefined }).catch((rejected: unknown) => rejected)
  t.match(error, { problem: 'state_unavailable', statusCode: 503, retryAfterS: 2 })
})
