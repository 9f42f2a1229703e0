/**
 * Approvals wired into the gateway, over HTTP against the simulated homeserver: a request the
 * policy allows only after an approval answers 202 and changes nothing; a security lead's
 * approval runs it once through the pipeline (policy again, intent before Synapse) and answers
 * with the action's own answer; self-approval, denial, expiry (a moved clock), dry runs,
 * /v1/me, batches, idempotent retries, the approval routes' admission, and the audit trail
 * checked by the verifier.
 */
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { ACTION_ROOMS } from '../../dev/homeserver/state.js'
import { verifyAuditFiles } from '../../src/audit/verify.js'
import { startHarness, type Harness } from '../helpers/harness.js'

const ROOM = ACTION_ROOMS.kickPublic
const promotePath = (query = '') => `/v1/rooms/${encodeURIComponent(ROOM)}/admins${query}`
const HELPDESK = { sub: 'helpdesk-bot', roles: ['helpdesk'] }
const LEAD = { sub: 'lead-1', roles: ['security-lead'] }
const LEAD2 = { sub: 'lead-2', roles: ['security-lead'] }

const POLICY = `rules:
  - name: security-leads
    roles: [security-lead]
    actions: [room.promote]
  - name: helpdesk-joins
    roles: [helpdesk]
    actions: [room.join, user.read]
  - name: helpdesk-promotes-after-approval
    roles: [helpdesk]
    actions: [room.promote, user.read]
    approval: {roles: [security-lead], count: 1}
  - name: auditors-read-after-approval
    roles: [auditor]
    actions: [user.read]
    approval: {roles: [security-lead], count: 1}
`

interface Gateway extends Harness {
  policyFile: string
  as: (who: { sub: string, roles: string[], org?: string }, method: string, path: string, options?: { body?: unknown, headers?: Record<string, string>, token?: string | null }) => Promise<{ status: number, headers: Record<string, string | string[] | undefined>, body: any, requestId: string }>
  recordsOf: (requestId: string) => Array<Record<string, any>>
}

async function gateway (t: Test, env: Record<string, string> = {}, approvals?: { now?: () => number }, roomFacts?: { ttlMs: number }): Promise<Gateway> {
  const dir = mkdtempSync(join(tmpdir(), 'approvals-policy-'))
  t.after(() => { rmSync(dir, { recursive: true, force: true }) })
  const policyFile = join(dir, 'policy.yaml')
  writeFileSync(policyFile, POLICY)
  const h = await startHarness(t, { env: { POLICY_FILE: policyFile, ...env }, homeserver: { fixture: 'actions' }, approvals: { sweepMs: 0, ...approvals }, ...(roomFacts === undefined ? {} : { roomFacts }) })
  return {
    ...h,
    policyFile,
    async as (who, method, path, options = {}) {
      const requestId = randomUUID()
      const headers: Record<string, string> = { 'x-request-id': requestId, ...options.headers }
      const token = options.token === undefined ? h.token({ sub: who.sub, roles: who.roles, ...(who.org === undefined ? {} : { org: who.org }) }) : options.token
      if (token !== null) headers.authorization = `Bearer ${token}`
      if (options.body !== undefined) headers['content-type'] = 'application/json'
      const response = await request(`${h.url}${path}`, { method: method as 'GET', headers, ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }) })
      const text = await response.body.text()
      let body: unknown
      try { body = JSON.parse(text) } catch { body = text }
      return { status: response.statusCode, headers: response.headers, body, requestId }
    },
    recordsOf: (requestId) => h.auditRecords().filter((record) => record.request_id === requestId)
  }
}

const promoteBody = (user: string) => ({ user_id: user, reason: 'HD-1: new room owner' })

t.test('held: 202 with the approval and Location, nothing sent to Synapse; the lead\'s approval runs it once and answers the action\'s answer', async (t) => {
  const g = await gateway(t)
  const held = await g.as(HELPDESK, 'POST', promotePath(), { body: promoteBody('@vic:test.local') })
  t.equal(held.status, 202)
  const approval = held.body.approval
  t.equal(held.headers.location, `/v1/approvals/${approval.id}`)
  t.match(approval, { status: 'pending', action: 'room.promote', target: { room: ROOM, user_id: '@vic:test.local' }, reason: 'HD-1: new room owner', requested_by: { sub: 'helpdesk-bot', iss: null }, required: { roles: ['security-lead'], count: 1 }, decisions: [] })
  t.equal(g.homeserver.callsTo('make_room_admin').length, 0, 'no change at the homeserver')
  t.equal(g.homeserver.callsTo('user_lookup').length, 1, 'only the gateway\'s own checks (the user exists) before holding')
  // A request the gateway itself would refuse is refused now, not held for an approver's time.
  const unknown = await g.as(HELPDESK, 'POST', promotePath(), { body: promoteBody('@nobody-here:test.local') })
  t.equal(unknown.status, 404, 'an unknown user is not held')
  t.equal(unknown.body.code, 'user_not_found')
  const heldRecords = g.recordsOf(held.requestId)
  t.same(heldRecords.map((record) => record.event), ['result'], 'no intent: nothing acted')
  t.match(heldRecords[0], { action: 'room.promote', outcome: 'approval_requested', status: 202, actor: { sub: 'helpdesk-bot' }, policy: { rule: 'helpdesk-promotes-after-approval', effect: 'allow' }, approval: { id: approval.id, rule: 'helpdesk-promotes-after-approval', roles: ['security-lead'], count: 1, requested_by: { sub: 'helpdesk-bot' }, approved_by: [] } })

  t.equal((await g.as(LEAD, 'GET', '/v1/approvals?status=pending')).body.approvals[0]?.id, approval.id, 'the lead sees what waits')

  const approved = await g.as(LEAD, 'POST', `/v1/approvals/${approval.id}/approve`, { body: { reason: 'confirmed' } })
  t.equal(approved.status, 200)
  t.same(approved.body, { room_id: ROOM, user_id: '@vic:test.local', power_level: 100 }, 'the action\'s own answer')
  t.equal(g.homeserver.callsTo('make_room_admin').length, 1, 'it ran once')
  const records = g.recordsOf(approved.requestId)
  t.same(records.map((record) => [record.event, record.outcome ?? null]), [['result', 'approval_approved'], ['intent', null], ['result', 'success']], 'the decision, then the action\'s intent and result')
  t.match(records[0], { action: 'room.promote', decision: 'approve', actor: { sub: 'lead-1' }, reason: 'confirmed', complete: true, approval: { id: approval.id, approved_by: [{ sub: 'lead-1' }] } })
  for (const record of records.slice(1)) {
    t.match(record, { action: 'room.promote', actor: { sub: 'helpdesk-bot', roles: ['helpdesk'] }, reason: 'HD-1: new room owner', target: { room: ROOM, user_id: '@vic:test.local' }, approval: { id: approval.id, approved_by: [{ sub: 'lead-1', iss: null }] } }, `${String(record.event)}: the requester acts, with the approval`)
  }
  t.match(records[2], { status: 200, upstream: { call: 'make_room_admin', status: 200 }, policy: { rule: 'helpdesk-promotes-after-approval' } })

  const after = await g.as(HELPDESK, 'GET', `/v1/approvals/${approval.id}`)
  t.match(after.body.approval, { status: 'approved', result: { status: 200, code: null } })
  const again = await g.as(LEAD2, 'POST', `/v1/approvals/${approval.id}/approve`)
  t.equal(again.status, 409)
  t.equal(again.body.code, 'approval_decided')
  t.equal(g.homeserver.callsTo('make_room_admin').length, 1, 'still once')

  const report = verifyAuditFiles([{ name: 'audit.log', text: g.auditText() }])
  t.ok(report.intact, 'audit:verify accepts the records')
  t.same(report.openIntents, [])
})

t.test('self-approval 403; a denial ends it; an expired approval 410 (moved clock); all audited', async (t) => {
  let now = Date.now()
  const g = await gateway(t, {}, { now: () => now })
  const hold = async (user: string) => (await g.as(HELPDESK, 'POST', promotePath(), { body: promoteBody(user) })).body.approval.id as string

  const mine = await hold('@vic:test.local')
  const self = await g.as(HELPDESK, 'POST', `/v1/approvals/${mine}/approve`)
  t.equal(self.status, 403)
  t.equal(self.body.code, 'self_approval')
  t.match(g.recordsOf(self.requestId), [{ event: 'result', outcome: 'approval_refused', code: 'self_approval', decision: 'approve', actor: { sub: 'helpdesk-bot' }, approval: { id: mine } }])

  const denied = await g.as(LEAD, 'POST', `/v1/approvals/${mine}/deny`, { body: { reason: 'no ticket' } })
  t.equal(denied.status, 200)
  t.match(denied.body.approval, { status: 'denied', decisions: [{ sub: 'lead-1', decision: 'deny', reason: 'no ticket' }] })
  t.match(g.recordsOf(denied.requestId), [{ outcome: 'approval_denied', decision: 'deny', approval: { id: mine } }])
  t.equal((await g.as(LEAD2, 'POST', `/v1/approvals/${mine}/approve`)).body.code, 'approval_decided', 'denied: nobody approves it any more')

  const late = await hold('@xena:test.local')
  now += 86_400_000 + 1000
  const expired = await g.as(LEAD, 'POST', `/v1/approvals/${late}/approve`)
  t.equal(expired.status, 410)
  t.equal(expired.body.code, 'approval_expired')
  t.match(g.recordsOf(expired.requestId), [{ outcome: 'approval_expired', approval: { id: late } }, { outcome: 'approval_refused', code: 'approval_expired' }])
  t.equal(g.homeserver.callsTo('make_room_admin').length, 0, 'nothing ran')
})

t.test('dry runs are never held; /v1/me names the actions that need approval; an idempotent retry replays the same 202', async (t) => {
  const g = await gateway(t)
  const dry = await g.as(HELPDESK, 'POST', promotePath('?dry_run=true'), { body: promoteBody('@vic:test.local') })
  t.equal(dry.status, 200)
  t.match(dry.body, { dry_run: true, would_succeed: true, approval_required: true })
  t.equal((await g.as(HELPDESK, 'GET', '/v1/approvals')).body.approvals.length, 0, 'nothing held')
  const outright = await g.as(LEAD, 'POST', promotePath('?dry_run=true'), { body: promoteBody('@vic:test.local') })
  t.notOk('approval_required' in outright.body, 'a caller allowed outright: no approval_required')

  const me = await g.as(HELPDESK, 'GET', '/v1/me')
  t.same(me.body.approvals, [{ action: 'room.promote', roles: ['security-lead'], count: 1, always: true }, { action: 'user.read', roles: ['security-lead'], count: 1, always: false }])
  t.same((await g.as(LEAD, 'GET', '/v1/me')).body.approvals, [])

  const read = await g.as({ sub: 'auditor-1', roles: ['auditor'] }, 'GET', `/v1/users/${encodeURIComponent('@vic:test.local')}`)
  t.equal(read.status, 403, 'a read is never held: its answer would go to the approver')
  t.equal(read.body.code, 'policy_denied')

  const headers = { 'idempotency-key': 'hold-once' }
  const first = await g.as(HELPDESK, 'POST', promotePath(), { body: promoteBody('@vic:test.local'), headers })
  const retry = await g.as(HELPDESK, 'POST', promotePath(), { body: promoteBody('@vic:test.local'), headers })
  t.equal(retry.status, 202)
  t.equal(retry.headers['idempotent-replayed'], 'true')
  t.equal(retry.headers.location, first.headers.location, 'the same Location')
  t.same(retry.body, first.body)
  t.match(g.recordsOf(retry.requestId), [{ outcome: 'approval_requested', status: 202, replayed: true }])
  t.equal((await g.as(HELPDESK, 'GET', '/v1/approvals')).body.approvals.length, 1, 'one approval')
})

t.test('a batch: the item that needs approval gets its own pending approval, the others run', async (t) => {
  const g = await gateway(t)
  const batch = await g.as(HELPDESK, 'POST', '/v1/batch', {
    body: { items: [{ action: 'room.join', room: ROOM, user_id: '@eli:test.local' }, { action: 'room.promote', room: ROOM, user_id: '@vic:test.local', reason: 'HD-2' }] }
  })
  t.equal(batch.status, 200)
  t.match(batch.body.results, [{ index: 0, status: 200 }, { index: 1, status: 202, body: { approval: { status: 'pending', action: 'room.promote', target: { room: ROOM, user_id: '@vic:test.local' }, reason: 'HD-2' } } }])
  t.equal(g.homeserver.callsTo('join').length, 1)
  t.equal(g.homeserver.callsTo('make_room_admin').length, 0)
  const id = batch.body.results[1].body.approval.id
  t.match(g.recordsOf(batch.requestId).find((record) => record.batch?.index === 1), { outcome: 'approval_requested', status: 202, approval: { id } })

  const approved = await g.as(LEAD, 'POST', `/v1/approvals/${id}/approve`)
  t.equal(approved.status, 200)
  t.match(approved.body, { user_id: '@vic:test.local', power_level: 100 })
  t.equal(g.homeserver.callsTo('make_room_admin').length, 1)
})

t.test('the policy is evaluated again when the request runs: one that now asks for more approvals refuses it', async (t) => {
  const g = await gateway(t)
  const id = (await g.as(HELPDESK, 'POST', promotePath(), { body: promoteBody('@vic:test.local') })).body.approval.id
  writeFileSync(g.policyFile, POLICY.replace('count: 1', 'count: 2'))
  g.app.reload()
  const approved = await g.as(LEAD, 'POST', `/v1/approvals/${id}/approve`)
  t.equal(approved.status, 403)
  t.equal(approved.body.code, 'policy_denied')
  t.match(approved.body.detail, /only after 2 approvals by security-lead/)
  t.equal(g.homeserver.callsTo('make_room_admin').length, 0, 'nothing ran')
  t.match(g.recordsOf(approved.requestId), [{ outcome: 'approval_approved' }, { event: 'result', outcome: 'denied', code: 'policy_denied', approval: { id } }])
  t.match((await g.as(LEAD, 'GET', `/v1/approvals/${id}`)).body.approval, { status: 'approved', result: { status: 403, code: 'policy_denied' } }, 'used up, with its result')
})

t.test('the approval routes: per-IP limit, token, ALLOWED_ORGS, and every call audited', async (t) => {
  const g = await gateway(t, { ALLOWED_ORGS: 'example', RATE_LIMIT_PER_IP_PER_MINUTE: '6' })
  const noToken = await g.as(LEAD, 'POST', `/v1/approvals/${'A'.repeat(22)}/approve`, { token: null })
  t.equal(noToken.status, 401)
  t.match(g.recordsOf(noToken.requestId), [{ outcome: 'approval_refused', code: 'missing_token', actor: null, decision: 'approve' }])
  const badToken = await g.as(LEAD, 'GET', '/v1/approvals', { token: 'not.a.jwt' })
  t.equal(badToken.status, 401)
  t.match(g.recordsOf(badToken.requestId), [{ action: 'approvals.list', outcome: 'denied', code: 'invalid_token', token_refusal: String }])
  const otherOrg = await g.as({ ...LEAD, org: 'elsewhere' }, 'GET', '/v1/approvals')
  t.equal(otherOrg.status, 403)
  t.equal(otherOrg.body.code, 'org_not_allowed')
  const read = await g.as(LEAD, 'GET', `/v1/approvals/${'B'.repeat(22)}`)
  t.equal(read.status, 404)
  t.match(g.recordsOf(read.requestId), [{ action: 'approvals.read', outcome: 'invalid', code: 'approval_not_found', actor: { sub: 'lead-1' }, approval: { id: 'B'.repeat(22) } }])
  const statuses: number[] = []
  for (let i = 0; i < 3; i++) statuses.push((await g.as(LEAD, 'GET', '/v1/approvals')).status)
  t.same(statuses, [200, 200, 429], 'the per-IP limit counts these routes too')
})

t.test('an alias pointed at another room after the request was held: the approval does not run there (409 approval_stale)', async (t) => {
  // Room facts are not reused here, as on a replica that never saw the alias before.
  const g = await gateway(t, {}, undefined, { ttlMs: 0 })
  const alias = '#handover:test.local'
  const first = g.homeserver.state.rooms.get(ACTION_ROOMS.kickPublic)
  const other = g.homeserver.state.rooms.get(ACTION_ROOMS.privateAdmin)
  if (first === undefined || other === undefined) throw new Error('the fixture lacks its rooms')
  first.aliases.push(alias)
  const held = await g.as(HELPDESK, 'POST', `/v1/rooms/${encodeURIComponent(alias)}/admins`, { body: promoteBody('@vic:test.local') })
  t.equal(held.status, 202)
  t.equal(held.body.approval.target.room_id, ACTION_ROOMS.kickPublic, 'the approval shows the room the alias named when it was held')
  // Whoever controls the alias repoints it while the request waits.
  first.aliases.splice(first.aliases.indexOf(alias), 1)
  other.aliases.push(alias)
  const approved = await g.as(LEAD, 'POST', `/v1/approvals/${String(held.body.approval.id)}/approve`, { body: {} })
  t.equal(approved.status, 409)
  t.equal(approved.body.code, 'approval_stale')
  t.equal(g.homeserver.callsTo('make_room_admin').length, 0, 'nothing was done in either room')
})
