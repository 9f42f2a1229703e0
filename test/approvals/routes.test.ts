/**
 * The approval routes as a plugin on a bare Fastify, with a real store (memory, and Redis for
 * the two-replica race): who sees and decides what, the problem codes, one execution whose
 * answer the approving call passes on, and the audit records. `execute` is the seam to the
 * action pipeline: here it records what it was asked to run and answers like an action.
 */
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import {
  approvalRoutes, createMemoryApprovalStore, createRedisApprovalStore, heldAnswer, sweepExpiredApprovals,
  type Approval, type ApprovalAuditEvent, type ApprovalStore, type NewApproval, type Person
} from '../../src/approvals/index.js'
import errorHandler from '../../src/error-handler.js'
import { problem } from '../../src/errors.js'
import { Problem } from '../../src/schemas.js'
import { REDIS_CLIENT_OPTIONS } from '../../src/state/shared.js'
import { skipWithoutRedis, startRedisServer, until } from '../helpers/redis.js'

type Tap = Test
const ISS = 'https://idp.example.com'
const CALLERS: Record<string, { sub: string, iss?: string, org: string, roles: string[] }> = {
  helpdesk: { sub: 'helpdesk-bot', iss: ISS, org: 'acme', roles: ['helpdesk'] },
  lead1: { sub: 'alice', iss: ISS, org: 'acme', roles: ['security-lead'] },
  lead2: { sub: 'bob', iss: ISS, org: 'acme', roles: ['security-lead'] },
  manager: { sub: 'carol', org: 'acme', roles: ['support-manager'] },
  outsider: { sub: 'mallory', iss: ISS, org: 'acme', roles: ['viewer'] },
  // The required role, but in another organisation: four eyes never cross organisations.
  foreignLead: { sub: 'gustav', iss: ISS, org: 'globex', roles: ['security-lead'] }
}
const requester = { sub: 'helpdesk-bot', iss: ISS, org: 'acme', roles: ['helpdesk'], claims: { department: 'it' } }
const held = (count: number): NewApproval => ({
  action: 'user.deactivate',
  target: { room: null, user_id: '@leaver:example.com' },
  reason: 'HR-77: left the company',
  requested_by: requester,
  required: { rule: 'deactivate-after-approval', roles: ['security-lead', 'support-manager'], count },
  held: { method: 'POST', url: '/v1/users/%40leaver%3Aexample.com/deactivate', body: { erase: true, reason: 'HR-77: left the company' } }
})

interface Recorded { audits: Array<{ event: ApprovalAuditEvent, fields: Record<string, any>, requestId: string | null }>, executed: Array<{ approval: Approval, approvedBy: Person[] }> }

const deactivated = async () => ({ status: 200, headers: { 'content-type': 'application/json; charset=utf-8' }, body: '{"user_id":"@leaver:example.com","erased":true,"changed":true}' })

async function gateway (t: Tap, store: ApprovalStore, recorded: Recorded, answer = deactivated, expirySweepMs = 0): Promise<FastifyInstance> {
  const app = Fastify({ ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false } } })
  app.addSchema(Problem)
  await app.register(errorHandler)
  await app.register(approvalRoutes, {
    store,
    expirySweepMs,
    authenticate: async (request) => {
      const caller = CALLERS[(request.headers.authorization ?? '').replace(/^Bearer /, '')]
      if (caller === undefined) throw problem('missing_token', 'Send a token.')
      return caller
    },
    execute: async (approval, approvedBy) => {
      recorded.executed.push({ approval, approvedBy })
      return await answer()
    },
    audit: (event, fields, requestId) => { recorded.audits.push({ event, fields, requestId }) }
  })
  t.after(() => app.close())
  return app
}

const as = (who: string) => ({ authorization: `Bearer ${who}` })
const fresh = (): Recorded => ({ audits: [], executed: [] })

t.test('who sees an approval: the requester and the holders of a required role; everyone else gets 404', async (t) => {
  const store = createMemoryApprovalStore({ ttlS: 3600, maxEntries: 100, maxBytes: 1 << 20 })
  const app = await gateway(t, store, fresh())
  const approval = await store.create(held(1))

  const list = await app.inject({ method: 'GET', url: '/v1/approvals?status=pending', headers: as('helpdesk') })
  t.equal(list.statusCode, 200)
  t.same(list.json().approvals.map((a: { id: string }) => a.id), [approval.id], 'the requester lists its request')
  const view = list.json().approvals[0]
  t.match(view, { id: approval.id, status: 'pending', action: 'user.deactivate', target: { room: null, user_id: '@leaver:example.com' }, reason: 'HR-77: left the company', requested_by: { sub: 'helpdesk-bot', iss: ISS }, required: { roles: ['security-lead', 'support-manager'], count: 1 }, decisions: [] })
  t.match(view.expires_at, /^\d{4}-\d\d-\d\dT/, 'times as ISO 8601')
  t.notOk('held' in view || 'claims' in view.requested_by || 'rule' in view.required, 'never the held body, the requester\'s claims or the rule')
  t.same((await app.inject({ method: 'GET', url: '/v1/approvals', headers: as('manager') })).json().approvals.length, 1, 'a support-manager may decide it: listed')
  t.same((await app.inject({ method: 'GET', url: '/v1/approvals', headers: as('outsider') })).json(), { approvals: [] }, 'an outsider lists nothing')

  t.equal((await app.inject({ method: 'GET', url: `/v1/approvals/${approval.id}`, headers: as('lead1') })).json().approval.id, approval.id)
  const hidden = await app.inject({ method: 'GET', url: `/v1/approvals/${approval.id}`, headers: as('outsider') })
  const unknown = await app.inject({ method: 'GET', url: '/v1/approvals/AAAAAAAAAAAAAAAAAAAAAA', headers: as('outsider') })
  const malformed = await app.inject({ method: 'GET', url: '/v1/approvals/..%2F..', headers: as('outsider') })
  for (const answer of [hidden, unknown, malformed]) {
    t.equal(answer.statusCode, 404)
    t.equal(answer.headers['content-type'], 'application/problem+json; charset=utf-8')
    t.equal(answer.json().code, 'approval_not_found')
  }
  t.equal(hidden.json().detail, unknown.json().detail, 'an existing id the caller may not see answers exactly like an unknown one')
  t.equal((await app.inject({ method: 'POST', url: `/v1/approvals/${approval.id}/approve`, headers: as('outsider') })).json().code, 'approval_not_found', 'and cannot be decided')
  t.equal((await app.inject({ method: 'POST', url: `/v1/approvals/${approval.id}/deny`, headers: as('outsider') })).json().code, 'approval_not_found')
  t.same((await app.inject({ method: 'GET', url: '/v1/approvals', headers: as('foreignLead') })).json(), { approvals: [] }, 'a holder of the role in another org lists nothing')
  t.equal((await app.inject({ method: 'GET', url: `/v1/approvals/${approval.id}`, headers: as('foreignLead') })).json().code, 'approval_not_found', 'nor sees it')
  t.equal((await app.inject({ method: 'POST', url: `/v1/approvals/${approval.id}/approve`, headers: as('foreignLead') })).json().code, 'approval_not_found', 'nor approves it')
  t.equal((await store.get(approval.id))?.status, 'pending', 'still pending')

  t.equal((await app.inject({ method: 'GET', url: '/v1/approvals' })).json().code, 'missing_token', 'the app\'s authentication answers first')
  for (const query of ['status=done', 'limit=0', 'limit=101', 'limit=ten', 'from=not-a-cursor', 'other=1']) {
    const answer = await app.inject({ method: 'GET', url: `/v1/approvals?${query}`, headers: as('lead1') })
    t.equal(answer.statusCode, 400, query)
    t.equal(answer.json().code, 'invalid_request', query)
  }
  t.equal((await app.inject({ method: 'GET', url: '/v1/approvals?status=done' })).json().code, 'missing_token', 'the token before the input')
})

t.test('the last approval needed runs the request once and answers with the action\'s own answer', async (t) => {
  const store = createMemoryApprovalStore({ ttlS: 3600, maxEntries: 100, maxBytes: 1 << 20 })
  const recorded = fresh()
  const app = await gateway(t, store, recorded)
  const approval = await store.create(held(2))
  const url = `/v1/approvals/${approval.id}/approve`

  const self = await app.inject({ method: 'POST', url, headers: as('helpdesk') })
  t.equal(self.statusCode, 403)
  t.equal(self.json().code, 'self_approval')
  t.match(recorded.audits.at(-1), { event: 'approval_refused', fields: { decision: 'approve', outcome: 'approval_refused', code: 'self_approval', actor: { sub: 'helpdesk-bot', iss: ISS }, approval: { id: approval.id, rule: 'deactivate-after-approval' } } })

  const first = await app.inject({ method: 'POST', url, headers: as('lead1'), payload: { reason: 'confirmed with HR' } })
  t.equal(first.statusCode, 202, 'one of two: recorded')
  t.match(first.json().approval, { status: 'pending', decisions: [{ sub: 'alice', iss: ISS, decision: 'approve', reason: 'confirmed with HR' }] })
  t.notOk('roles' in first.json().approval.decisions[0], 'deciders\' roles stay inside')
  t.match(recorded.audits.at(-1), { event: 'approval_approved', fields: { action: 'user.deactivate', outcome: 'approval_approved', reason: 'confirmed with HR', approvals: 1, complete: false, approval: { approved_by: [{ sub: 'alice', iss: ISS }] } } })

  const repeat = await app.inject({ method: 'POST', url, headers: as('lead1') })
  t.equal(repeat.statusCode, 409)
  t.equal(repeat.json().code, 'approval_decided')
  t.match(repeat.json().detail, /already approved.*1 approval by other callers/)
  t.equal(recorded.executed.length, 0, 'nothing ran yet')

  const last = await app.inject({ method: 'POST', url, headers: { ...as('manager'), 'content-type': 'application/json' }, payload: '{}' })
  t.equal(last.statusCode, 200, 'the action\'s status')
  t.same(last.json(), { user_id: '@leaver:example.com', erased: true, changed: true }, 'the action\'s body')
  t.equal(last.headers['content-type'], 'application/json; charset=utf-8')
  t.equal(recorded.executed.length, 1, 'run once')
  t.match(recorded.executed[0], { approval: { id: approval.id, status: 'approved', held: { method: 'POST', url: '/v1/users/%40leaver%3Aexample.com/deactivate', body: { erase: true } }, requested_by: { claims: { department: 'it' } } }, approvedBy: [{ sub: 'alice', iss: ISS }, { sub: 'carol', iss: null }] })
  t.match(recorded.audits.at(-1), { event: 'approval_approved', fields: { approvals: 2, complete: true }, requestId: last.json().request_id ?? String })

  const after = await app.inject({ method: 'POST', url, headers: as('lead2') })
  t.equal(after.statusCode, 409)
  t.equal(after.json().code, 'approval_decided')
  t.equal((await app.inject({ method: 'POST', url: `/v1/approvals/${approval.id}/deny`, headers: as('lead2') })).json().code, 'approval_decided')
  t.equal(recorded.executed.length, 1, 'never twice')
  t.match((await app.inject({ method: 'GET', url: `/v1/approvals/${approval.id}`, headers: as('helpdesk') })).json().approval, { status: 'approved', result: { status: 200, code: null } }, 'the requester sees how it ended')
})

t.test('an action that refuses when it runs: its problem is the answer and the result', async (t) => {
  const store = createMemoryApprovalStore({ ttlS: 3600, maxEntries: 100, maxBytes: 1 << 20 })
  const recorded = fresh()
  const refused = '{"type":"urn:synapse-admin-gateway:problem:policy_denied","title":"Not allowed by policy","status":403,"detail":"the policy now asks for 2 approvals","code":"policy_denied","request_id":"r"}'
  const app = await gateway(t, store, recorded, async () => ({ status: 403, headers: { 'content-type': 'application/problem+json; charset=utf-8' }, body: refused }))
  const approval = await store.create(held(1))
  const answer = await app.inject({ method: 'POST', url: `/v1/approvals/${approval.id}/approve`, headers: as('lead1') })
  t.equal(answer.statusCode, 403)
  t.equal(answer.json().code, 'policy_denied')
  t.equal(answer.headers['content-type'], 'application/problem+json; charset=utf-8')
  t.match((await store.get(approval.id))?.result, { status: 403, code: 'policy_denied' })

  const broken = await gateway(t, store, fresh(), async () => { throw new Error('pipeline exploded') })
  const other = await store.create(held(1))
  const failed = await broken.inject({ method: 'POST', url: `/v1/approvals/${other.id}/approve`, headers: as('lead1') })
  t.equal(failed.statusCode, 500)
  t.equal(failed.json().code, 'internal_error')
  t.notMatch(failed.body, 'exploded', 'no internals in the answer')
  t.match((await store.get(other.id))?.result, { status: 500, code: 'internal_error' }, 'still consumed: it never runs twice')
})

t.test('deny ends it; the requester may withdraw; bodies are checked', async (t) => {
  const store = createMemoryApprovalStore({ ttlS: 3600, maxEntries: 100, maxBytes: 1 << 20 })
  const recorded = fresh()
  const app = await gateway(t, store, recorded)
  const a = await store.create(held(1))
  const denied = await app.inject({ method: 'POST', url: `/v1/approvals/${a.id}/deny`, headers: as('lead1'), payload: { reason: 'not without a ticket' } })
  t.equal(denied.statusCode, 200)
  t.match(denied.json().approval, { status: 'denied', decisions: [{ sub: 'alice', decision: 'deny', reason: 'not without a ticket' }] })
  t.match(recorded.audits.at(-1), { event: 'approval_denied', fields: { decision: 'deny', outcome: 'approval_denied', reason: 'not without a ticket' } })
  const late = await app.inject({ method: 'POST', url: `/v1/approvals/${a.id}/approve`, headers: as('lead2') })
  t.equal(late.statusCode, 409, 'approving after a denial')
  t.equal(late.json().code, 'approval_decided')
  t.equal(recorded.executed.length, 0)

  const b = await store.create(held(1))
  t.equal((await app.inject({ method: 'POST', url: `/v1/approvals/${b.id}/deny`, headers: as('helpdesk') })).json().approval.status, 'denied', 'the requester withdraws')

  const c = await store.create(held(1))
  for (const payload of [{ reason: 'x'.repeat(513) }, { reason: 'line\nbreak' }, { reason: 7 }, { note: 'hi' }]) {
    const answer = await app.inject({ method: 'POST', url: `/v1/approvals/${c.id}/approve`, headers: as('lead1'), payload })
    t.equal(answer.statusCode, 400, JSON.stringify(payload).slice(0, 40))
    t.equal(answer.json().code, 'invalid_body')
  }
  t.equal((await store.get(c.id))?.status, 'pending', 'a bad body decides nothing')
})

t.test('expiry: 410 approval_expired, audited once whoever sees it first', async (t) => {
  const clock = { at: 1_800_000_000_000 }
  const store = createMemoryApprovalStore({ ttlS: 3600, maxEntries: 100, maxBytes: 1 << 20, now: () => clock.at })
  const recorded = fresh()
  const app = await gateway(t, store, recorded)
  const a = await store.create(held(1))
  const b = await store.create(held(1))
  clock.at += 3600 * 1000
  t.equal((await app.inject({ method: 'GET', url: `/v1/approvals/${a.id}`, headers: as('helpdesk') })).json().approval.status, 'expired')
  for (let i = 0; i < 2; i++) {
    const answer = await app.inject({ method: 'POST', url: `/v1/approvals/${a.id}/approve`, headers: as('lead1') })
    t.equal(answer.statusCode, 410)
    t.equal(answer.json().code, 'approval_expired')
  }
  t.equal(recorded.audits.filter((audit) => audit.event === 'approval_expired').length, 1, 'the expiry is audited once')
  t.equal(await sweepExpiredApprovals(store, (event, fields, requestId) => { recorded.audits.push({ event, fields, requestId }) }), 1, 'the sweep finds the other one')
  t.match(recorded.audits.at(-1), { event: 'approval_expired', requestId: null, fields: { action: 'user.deactivate', code: 'approval_expired', approval: { id: b.id } } })
  t.equal(recorded.executed.length, 0)
})

t.test('the sweep runs on its own once the app is ready', async (t) => {
  const clock = { at: 1_800_000_000_000 }
  const store = createMemoryApprovalStore({ ttlS: 3600, maxEntries: 100, maxBytes: 1 << 20, now: () => clock.at })
  const recorded = fresh()
  const app = await gateway(t, store, recorded, deactivated, 5)
  await store.create(held(1))
  clock.at += 3600 * 1000
  await app.ready()
  await until('the sweep to audit the expiry', () => recorded.audits.some((audit) => audit.event === 'approval_expired'))
  t.pass('expired and audited without any request')
})

t.test('heldAnswer: the pipeline\'s 202 with Location', async (t) => {
  const store = createMemoryApprovalStore({ ttlS: 3600, maxEntries: 100, maxBytes: 1 << 20 })
  const approval = await store.create(held(1))
  const answer = heldAnswer(approval)
  t.equal(answer.status, 202)
  t.equal(answer.headers.location, `/v1/approvals/${approval.id}`)
  t.match(answer.body, { approval: { id: approval.id, status: 'pending', action: 'user.deactivate', target: { user_id: '@leaver:example.com' }, reason: 'HR-77: left the company', requested_by: { sub: 'helpdesk-bot', iss: ISS } } })
})

const skip = skipWithoutRedis('the two-replica approval race')
t.test('two replicas over Redis: approvers racing on both run the request once', { skip }, async (t) => {
  const server = await startRedisServer(t)
  const clients = [new Redis(server.url, REDIS_CLIENT_OPTIONS), new Redis(server.url, REDIS_CLIENT_OPTIONS)]
  t.after(() => { for (const client of clients) client.disconnect() })
  await until('the Redis clients to be ready', () => clients.every((client) => client.status === 'ready'))
  const limits = { ttlS: 3600, maxEntries: 100, maxBytes: 1 << 20 }
  const recorded = fresh()
  const stores = clients.map((client) => createRedisApprovalStore(client, limits))
  const replicas = [await gateway(t, stores[0] as ApprovalStore, recorded), await gateway(t, stores[1] as ApprovalStore, recorded)]
  const approval = await (stores[0] as ApprovalStore).create(held(1))
  const deciders = ['lead1', 'lead2', 'manager']
  const answers = await Promise.all(Array.from({ length: 12 }, async (_, n) => await (replicas[n % 2] as FastifyInstance).inject({ method: 'POST', url: `/v1/approvals/${approval.id}/approve`, headers: as(deciders[n % 3] as string) })))
  t.equal(recorded.executed.length, 1, 'one execution across both replicas')
  t.equal(answers.filter((answer) => answer.statusCode === 200).length, 1, 'one call answers with the action\'s answer')
  t.ok(answers.filter((answer) => answer.statusCode !== 200).every((answer) => answer.statusCode === 409 && answer.json().code === 'approval_decided'), 'the others: approval_decided')

  await server.kill()
  const down = await (replicas[1] as FastifyInstance).inject({ method: 'GET', url: '/v1/approvals', headers: as('lead1') })
  t.equal(down.statusCode, 503)
  t.equal(down.json().code, 'state_unavailable')
  t.equal(down.headers['retry-after'], '2')
})
