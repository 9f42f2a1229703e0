/**
 * POST /v1/batch end to end: each item through the same pipeline as its single route (policy,
 * validation, rate limit, audit), answered per item in order, at most BATCH_CONCURRENCY at a time.
 */
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { SimulatedHomeserver } from '../../dev/homeserver/server.js'
import { RECORDED_ROOMS } from '../../dev/homeserver/state.js'
import { ADMIN_TOKEN, startHarness, type Harness, type HarnessOptions } from '../helpers/harness.js'
import { startCountingProxy } from '../helpers/counting-proxy.js'
import { membersPath, send } from '../helpers/http.js'

const { publicTest, privateAdmin } = RECORDED_ROOMS
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')
const users = (count: number) => Array.from({ length: count }, (_, i) => `@rl${String(i + 1).padStart(2, '0')}:test.local`)

/** Operators may do everything except join anyone to privateAdmin. */
function policy (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'batch-policy-'))
  t.after(() => { rmSync(dir, { recursive: true, force: true }) })
  const file = join(dir, 'policy.yaml')
  writeFileSync(file, [
    'rules:',
    '  - name: operators',
    '    roles: [matrix-admin]',
    '    actions: ["*"]',
    '  - name: not-the-admins-room',
    '    effect: deny',
    '    actions: [room.join]',
    `    rooms: ["${privateAdmin}"]`,
    ''
  ].join('\n'))
  return file
}

async function gateway (t: Test, options: HarnessOptions = {}): Promise<Harness> {
  return await startHarness(t, { ...options, env: { POLICY_FILE: policy(t), ...options.env } })
}

interface Item { action: 'room.join' | 'room.remove', room: string, user_id: string, reason?: string }
const batch = (h: Harness, items: Item[], options: { query?: string, headers?: Record<string, string>, token?: string } = {}) =>
  send(h.url, 'POST', `/v1/batch${options.query ?? ''}`, { token: options.token ?? h.token(), headers: options.headers, body: { items } })

t.test('per-item results in order, each with its own status and body, each through the policy and validation', async (t) => {
  const h = await gateway(t)
  // The policy denies joins to privateAdmin, not removals from it.
  h.homeserver.state.rooms.get(privateAdmin)?.members.set('@erin:test.local', 'join')
  const answer = await batch(h, [
    { action: 'room.join', room: publicTest, user_id: '@alice:test.local', reason: 'onboarding' },
    { action: 'room.join', room: privateAdmin, user_id: '@alice:test.local' },
    { action: 'room.join', room: publicTest, user_id: 'not-a-user-id' },
    { action: 'room.join', room: '#public-test:test.local', user_id: '@bob:test.local' },
    { action: 'room.remove', room: privateAdmin, user_id: '@erin:test.local' },
    { action: 'room.join', room: publicTest, user_id: '@ghost:test.local' }
  ])
  t.equal(answer.status, 200)
  const results = answer.body.results as Array<{ index: number, status: number, body: any }>
  t.same(results.map((result) => result.index), [0, 1, 2, 3, 4, 5], 'in the order sent')
  t.same(results.map((result) => result.status), [200, 403, 400, 200, 200, 404])
  t.same(results[0]?.body, { room_id: publicTest, user_id: '@alice:test.local' })
  t.match(results[1]?.body, { status: 403, code: 'policy_denied', type: /policy_denied/ })
  t.match(results[2]?.body, { status: 400, code: 'invalid_user_id' })
  t.same(results[3]?.body, { room_id: publicTest, user_id: '@bob:test.local' })
  t.match(results[4]?.body, { room_id: privateAdmin, user_id: '@erin:test.local', membership: 'leave', changed: true })
  t.match(results[5]?.body, { status: 404, code: 'user_not_found' })
  t.equal(h.homeserver.state.rooms.get(publicTest)?.members.get('@alice:test.local'), 'join')
  t.equal(h.homeserver.state.rooms.get(privateAdmin)?.members.get('@erin:test.local'), 'leave')
  t.notOk(h.homeserver.state.rooms.get(privateAdmin)?.members.has('@alice:test.local'), 'the denied item was not joined')
  t.equal(h.homeserver.callsTo('join').length, 2, 'only the allowed, valid joins reached the join API')

  // Audit: every item has its own records, tied to the batch; the batch itself one result.
  const batchId = answer.headers['x-request-id']
  const records = h.auditRecords()
  const itemResults = records.filter((record) => record.event === 'result' && record.action !== 'batch')
  t.same(itemResults.map((record) => record.batch.index).sort(), [0, 1, 2, 3, 4, 5])
  t.ok(itemResults.every((record) => record.batch.id === batchId && record.request_id === batchId), 'each item names the batch')
  const byIndex = (index: number) => itemResults.find((record) => record.batch.index === index)
  t.match(byIndex(0), { action: 'room.join', outcome: 'success', reason: 'onboarding', policy: { rule: 'operators', effect: 'allow' } })
  t.match(byIndex(1), { outcome: 'denied', code: 'policy_denied', policy: { rule: 'not-the-admins-room', effect: 'deny' } })
  t.match(byIndex(2), { outcome: 'invalid', code: 'invalid_user_id' })
  t.match(byIndex(4), { action: 'room.remove', outcome: 'success' })
  const intents = records.filter((record) => record.event === 'intent')
  t.same(intents.map((record) => record.batch.index).sort(), [0, 3, 4], 'intents for the items that acted, each with its batch')
  const batchResults = records.filter((record) => record.action === 'batch')
  t.equal(batchResults.length, 1)
  t.match(batchResults[0], { event: 'result', request_id: batchId, outcome: 'success', status: 200, items: 6, actor: { sub: 'helpdesk-bot' } })
})

t.test('each item counts against the caller\'s rate limit', async (t) => {
  const h = await gateway(t, { env: { RATE_LIMIT_PER_MINUTE: '3' } })
  const answer = await batch(h, users(5).map((user) => ({ action: 'room.join' as const, room: publicTest, user_id: user })))
  t.equal(answer.status, 200)
  const results = answer.body.results as Array<{ status: number, body: any }>
  t.same(results.map((result) => result.status), [200, 200, 200, 429, 429])
  t.match(results[4]?.body, { code: 'rate_limited' })
  t.equal(h.homeserver.callsTo('join').length, 3)
  const single = await h.join(encodeURIComponent(publicTest), { user_id: '@alice:test.local' })
  t.equal(single.status, 429, 'the single route shares the same count')
})

t.test('at most BATCH_CONCURRENCY items in flight at the homeserver', async (t) => {
  const homeserver = new SimulatedHomeserver({ adminToken: ADMIN_TOKEN })
  const target = await homeserver.listen()
  t.after(() => homeserver.close())
  const proxy = await startCountingProxy(t, target, (request) => request.url?.startsWith('/_synapse/admin/') === true)
  const h = await gateway(t, { synapseUrl: proxy.url, env: { BATCH_CONCURRENCY: '3' } })
  homeserver.fault = { kind: 'slow', delayMs: 60 }
  const answer = await batch(h, users(10).map((user) => ({ action: 'room.join' as const, room: publicTest, user_id: user })))
  t.equal(answer.status, 200)
  t.ok((answer.body.results as Array<{ status: number }>).every((result) => result.status === 200), 'all joined')
  t.equal(proxy.maxInFlight, 3, 'three items at once, never more')
  t.equal(homeserver.callsTo('join').length, 10)
})

t.test('?dry_run=true applies to every item: nothing changes', async (t) => {
  const h = await gateway(t)
  const before = [...(h.homeserver.state.rooms.get(publicTest)?.members ?? [])]
  const answer = await batch(h, [
    { action: 'room.join', room: publicTest, user_id: '@alice:test.local' },
    { action: 'room.join', room: privateAdmin, user_id: '@alice:test.local' },
    { action: 'room.remove', room: publicTest, user_id: '@alice:test.local' }
  ], { query: '?dry_run=true' })
  t.equal(answer.status, 200)
  const results = answer.body.results as Array<{ status: number, body: any }>
  t.match(results[0], { status: 200, body: { dry_run: true, would_succeed: true } })
  t.match(results[1], { status: 403, body: { code: 'policy_denied' } })
  t.match(results[2], { status: 200, body: { dry_run: true } })
  t.equal(h.homeserver.callsTo('join').length, 0)
  t.equal(h.homeserver.callsTo('kick').length, 0)
  t.same([...(h.homeserver.state.rooms.get(publicTest)?.members ?? [])], before, 'membership unchanged')
  const items = h.audit().filter((record) => record.action !== 'batch')
  t.same(items.filter((record) => record.status === 200).map((record) => record.outcome), ['dry_run', 'dry_run'])
  t.equal(h.auditRecords().filter((record) => record.event === 'intent').length, 0, 'no intent: nothing was about to act')
})

t.test('more than BATCH_MAX_ITEMS: 413 batch_too_large, nothing runs', async (t) => {
  const h = await gateway(t, { env: { BATCH_MAX_ITEMS: '3' } })
  const answer = await batch(h, users(4).map((user) => ({ action: 'room.join' as const, room: publicTest, user_id: user })))
  t.equal(answer.status, 413)
  t.match(answer.body, { code: 'batch_too_large', status: 413 })
  t.match(answer.headers['content-type'], /application\/problem\+json/)
  t.equal(h.homeserver.calls.length, 0)
  t.same(h.audit().map((record) => [record.action, record.outcome, record.code]), [['batch', 'invalid', 'batch_too_large']])
  t.equal((await batch(h, users(3).map((user) => ({ action: 'room.join' as const, room: publicTest, user_id: user })))).status, 200, 'three are fine')
})

t.test('an Idempotency-Key on the batch replays the whole batch answer', async (t) => {
  const h = await gateway(t)
  const key = 'CANARY-batch-key-9c1d-never-stored'
  const items: Item[] = [
    { action: 'room.join', room: publicTest, user_id: '@alice:test.local' },
    { action: 'room.join', room: privateAdmin, user_id: '@alice:test.local' }
  ]
  const first = await batch(h, items, { headers: { 'idempotency-key': key } })
  t.equal(first.status, 200)
  const calls = h.homeserver.calls.length
  const recordsAfterFirst = h.auditRecords().length
  const second = await batch(h, items, { headers: { 'idempotency-key': key } })
  t.equal(second.status, 200)
  t.equal(second.headers['idempotent-replayed'], 'true')
  t.equal(second.text, first.text, 'the same per-item results')
  t.equal(h.homeserver.calls.length, calls, 'the replay sent nothing to the homeserver')
  const added = h.auditRecords().slice(recordsAfterFirst)
  t.equal(added.length, 1, 'one record for the replay, none for its items')
  t.match(added[0], { event: 'result', action: 'batch', outcome: 'success', status: 200, replayed: true, idempotency_key: sha256(key) })
  const other = await batch(h, items.slice(0, 1), { headers: { 'idempotency-key': key } })
  t.equal(other.status, 422)
  t.equal(other.body.code, 'idempotency_key_reused')
  t.notOk(h.logs().includes(key) || h.auditText().includes(key), 'the raw key is in neither log')
})

t.test('a caller cannot pass a single request off as a batch item', async (t) => {
  const h = await gateway(t)
  const forged = await send(h.url, 'POST', membersPath(publicTest), {
    token: h.token(),
    headers: { 'x-gateway-batch-item': 'guess batch-1 0' },
    body: { user_id: '@alice:test.local' }
  })
  t.equal(forged.status, 200)
  const [record] = h.audit()
  t.notOk('batch' in (record as object), 'no batch field in its audit record')
  const intent = h.auditRecords().find((entry) => entry.event === 'intent')
  t.notOk('batch' in (intent as object))
})

t.test('a batch is refused as a whole without a valid token, with bad items, or when not JSON', async (t) => {
  const h = await gateway(t)
  const noToken = await send(h.url, 'POST', '/v1/batch', { body: { items: [{ action: 'room.join', room: publicTest, user_id: '@alice:test.local' }] } })
  t.equal(noToken.status, 401)
  t.equal(noToken.body.code, 'missing_token')
  const badItem = await send(h.url, 'POST', '/v1/batch', { token: h.token(), body: { items: [{ action: 'room.ban', room: publicTest, user_id: '@alice:test.local' }] } })
  t.equal(badItem.status, 400)
  t.equal(badItem.body.code, 'invalid_body')
  const empty = await send(h.url, 'POST', '/v1/batch', { token: h.token(), body: { items: [] } })
  t.equal(empty.status, 400)
  t.equal(h.homeserver.calls.length, 0)
  t.same(h.audit().map((record) => [record.action, record.status]), [['batch', 401], ['batch', 400], ['batch', 400]])
  t.equal(h.audit()[0]?.actor, null)
})

t.test('every acting action of the catalog is a batch item, checked by its own route\'s schemas', async (t) => {
  const h = await gateway(t)
  const answer = await send(h.url, 'POST', '/v1/batch', {
    token: h.token(),
    body: {
      items: [
        { action: 'room.promote', room: privateAdmin, user_id: '@alice:test.local', reason: 'HD-7' },
        { action: 'room.join', room: publicTest },
        { action: 'room.join', room: publicTest, user_id: '@bob:test.local', colour: 'blue' },
        { action: 'room.remove', room: 'not a room', user_id: '@bob:test.local' },
        { action: 'room.promote', room: publicTest, user_id: '@alice:test.local', reason: 'bad\u0007reason' }
      ]
    }
  })
  t.equal(answer.status, 200)
  const results = answer.body.results as Array<{ status: number, body: any }>
  t.same(results.map((result) => result.status), [200, 400, 400, 400, 400])
  t.same(results[0]?.body, { room_id: privateAdmin, user_id: '@alice:test.local', power_level: 100 })
  t.match(results[1]?.body, { code: 'invalid_body' }, 'a join without user_id, as on its route')
  t.match(results[2]?.body, { code: 'invalid_body', detail: /Unknown field "colour": the body takes only user_id and reason/ })
  t.match(results[3]?.body, { code: 'invalid_room' })
  t.match(results[4]?.body, { code: 'invalid_body', detail: /reason/ })
  t.equal(h.homeserver.callsTo('make_room_admin').length, 1)
  const promoted = h.audit().find((record) => record.action === 'room.promote' && record.batch?.index === 0)
  t.match(promoted, { outcome: 'success', reason: 'HD-7', batch: { index: 0 } })
  t.match(h.audit().find((record) => record.batch?.index === 3), { action: 'room.remove', outcome: 'invalid', code: 'invalid_room', target: { room: 'not a room', user_id: '@bob:test.local' } })
})
