/**
 * An unknown room reveals nothing the policy does not allow (issue 19, item 5): a room that does
 * not exist answers 404 room_not_found only to a caller the policy would let act on a room of
 * that name; anyone else gets the very refusal an existing room it may not touch gets.
 */
import t, { type Test } from 'tap'
import { RECORDED_ROOMS } from '../../dev/homeserver/state.js'
import { startHarness, type Harness } from '../helpers/harness.js'
import { membersPath, send, type Answer } from '../helpers/http.js'
import { tempPolicy } from '../helpers/policy-http.js'

const POLICY = `
rules:
  - name: helpdesk-public
    roles: [helpdesk]
    actions: [room.join, room.members.read]
    rooms: ["#public-*:test.local"]
  - name: space-agents
    roles: [space-agent]
    actions: [room.join, room.members.read]
    rooms: ["space:#support:test.local"]
  - name: ops
    roles: [ops]
    actions: [room.join, room.members.read]
  - name: ops-not-secret
    effect: deny
    roles: [ops]
    actions: [room.join, room.members.read]
    rooms: ["#secret-*:test.local"]
  - name: by-id
    roles: [by-id]
    actions: [room.members.read]
    rooms: ["${RECORDED_ROOMS.publicTest}", "!nosuch:test.local"]
  - name: conditional
    roles: [conditional]
    actions: [room.members.read]
    when: room.alias != null && room.alias.startsWith("#public-")
`

async function gateway (t: Test): Promise<Harness> {
  return await startHarness(t, { env: { POLICY_FILE: tempPolicy(t, POLICY).file } })
}

const read = async (h: Harness, role: string, room: string, query = '') => await send(h.url, 'GET', membersPath(room, query), { token: h.token({ roles: [role] }) })
const join = async (h: Harness, role: string, room: string, query = '') => await send(h.url, 'POST', membersPath(room, query), { token: h.token({ roles: [role] }), body: { user_id: '@alice:test.local' } })

/** What a caller can tell two answers apart by, with the room's own name (which the caller gave) taken out. */
const seen = (answer: Answer, named: string) => ({
  status: answer.status,
  contentType: answer.headers['content-type'],
  code: answer.body?.code,
  title: answer.body?.title,
  type: answer.body?.type,
  detail: String(answer.body?.detail).replace(named, '<room>')
})

t.test('an unknown alias the policy would allow: 404 room_not_found', async (t) => {
  const h = await gateway(t)
  for (const answer of [await read(h, 'helpdesk', '#public-nosuch:test.local'), await join(h, 'helpdesk', '#public-nosuch:test.local'), await read(h, 'ops', '#nosuch:test.local')]) {
    t.equal(answer.status, 404)
    t.match(answer.body, { code: 'room_not_found' })
  }
  t.equal((await read(h, 'conditional', '#public-nosuch:test.local')).status, 404, 'a condition on the alias the caller named')
  t.equal((await read(h, 'by-id', '!nosuch:test.local')).status, 404, 'an unknown room ID the policy names')
})

t.test('an unknown alias the policy would not allow: the same 403 as an existing room the caller may not touch', async (t) => {
  const h = await gateway(t)
  const cases: Array<{ why: string, role: string, unknown: string, existing: string }> = [
    { why: 'alias pattern not matched', role: 'helpdesk', unknown: '#nosuch:test.local', existing: '#private-admin:test.local' },
    { why: 'an unknown room is in no space', role: 'space-agent', unknown: '#nosuch:test.local', existing: '#public-bob:test.local' },
    { why: 'a deny rule on the alias', role: 'ops', unknown: '#secret-nosuch:test.local', existing: '#secret-nosuch:test.local' },
    { why: 'a condition not met', role: 'conditional', unknown: '#nosuch:test.local', existing: '#private-admin:test.local' },
    { why: 'an unknown room ID the policy does not name', role: 'helpdesk', unknown: '!nosuch:test.local', existing: RECORDED_ROOMS.privateAdmin },
    { why: 'a room ID rule', role: 'by-id', unknown: '#nosuch:test.local', existing: '#private-admin:test.local' }
  ]
  for (const { why, role, unknown, existing } of cases) {
    const forUnknown = await read(h, role, unknown)
    t.equal(forUnknown.status, 403, `${why}: 403`)
    t.match(forUnknown.body, { code: 'policy_denied' }, why)
    if (existing === unknown) continue
    const forExisting = await read(h, role, existing)
    t.same(seen(forUnknown, unknown), seen(forExisting, existing), `${why}: indistinguishable from ${existing}`)
    t.same(seen(await join(h, role, unknown), unknown), seen(await join(h, role, existing), existing), `${why}: the same for an acting route`)
    t.same(seen(await join(h, role, unknown, '?dry_run=true'), unknown), seen(await join(h, role, existing, '?dry_run=true'), existing), `${why}: the same for a dry run`)
  }
  t.equal(h.homeserver.callsTo('join').length, 0, 'nothing was joined')
})

t.test('the refusal of an unknown room is audited as a policy decision, like any other', async (t) => {
  const h = await gateway(t)
  const answer = await join(h, 'helpdesk', '#nosuch:test.local')
  const record = h.auditRecords().find((entry) => entry.event === 'result' && entry.request_id === answer.headers['x-request-id'])
  t.match(record, { outcome: 'denied', code: 'policy_denied', policy: { rule: null, effect: 'deny' }, target: { room: '#nosuch:test.local' } })
})
