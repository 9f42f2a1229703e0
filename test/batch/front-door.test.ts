/**
 * The batch front door (issue 19, item 1): a batch whose caller may use none of its actions is
 * refused whole, before any item runs: one `result` record for the batch, no item records, no
 * Synapse call, and nothing stored under its Idempotency-Key.
 */
import t, { type Test } from 'tap'
import { RECORDED_ROOMS } from '../../dev/homeserver/state.js'
import { startHarness, type Harness } from '../helpers/harness.js'
import { send } from '../helpers/http.js'
import { tempPolicy } from '../helpers/policy-http.js'

const { publicTest } = RECORDED_ROOMS

const POLICY = `
rules:
  - name: operators
    roles: [matrix-admin]
    actions: ["*"]
  - name: helpdesk-joins
    roles: [helpdesk]
    actions: [room.join]
  - name: no-joins-for-trainees
    effect: deny
    roles: [trainee]
    actions: [room.join]
`
const joins = Array.from({ length: 20 }, (_, i) => ({ action: 'room.join', room: publicTest, user_id: `@flood${i}:test.local` }))

const postBatch = async (h: Harness, token: string, items: unknown[], key?: string) =>
  await send(h.url, 'POST', '/v1/batch', { token, body: { items }, headers: key === undefined ? {} : { 'idempotency-key': key } })

/** The batch's refusal: its status and code, one record (the batch's), no item record, no Synapse call, not stored under its key. */
async function assertRefusedWhole (t: Test, h: Harness, token: string, items: unknown[], expected: { status: number, code: string }): Promise<Awaited<ReturnType<typeof postBatch>>> {
  const before = h.auditRecords().length
  const key = `refused-${expected.code}-${Math.random()}`
  const answer = await postBatch(h, token, items, key)
  t.equal(answer.status, expected.status, `${expected.code}: status`)
  t.match(answer.body, { code: expected.code, status: expected.status })
  const records = h.auditRecords().slice(before)
  t.equal(records.length, 1, 'one record: the batch\'s own result')
  t.match(records[0], { event: 'result', action: 'batch', outcome: 'denied', status: expected.status, code: expected.code, request_id: answer.headers['x-request-id'] })
  t.notOk(records.some((record) => record.batch !== undefined), 'no item record')
  t.same(h.homeserver.calls.filter((call) => call.endpoint !== 'whoami'), [], 'no item reached Synapse')
  // A refused batch is not worth keeping: the same request again runs again (and is refused again), no replay.
  const again = await postBatch(h, token, items, key)
  t.equal(again.status, expected.status)
  t.equal(again.headers['idempotent-replayed'], undefined, 'the refusal was not stored under the key')
  return answer
}

t.test('an org outside ALLOWED_ORGS: 403 org_not_allowed for the whole batch', async (t) => {
  const h = await startHarness(t, { env: { POLICY_FILE: tempPolicy(t, POLICY).file, ALLOWED_ORGS: 'example' } })
  await assertRefusedWhole(t, h, h.token({ org: 'elsewhere', roles: [] }), joins, { status: 403, code: 'org_not_allowed' })
  await assertRefusedWhole(t, h, h.token({ org: undefined, roles: ['matrix-admin'] }), joins, { status: 403, code: 'org_not_allowed' })
})

t.test('a policy giving the caller none of the batch\'s actions: 403 policy_denied naming them', async (t) => {
  const h = await startHarness(t, { env: { POLICY_FILE: tempPolicy(t, POLICY).file, ALLOWED_ORGS: 'example' } })
  const noGrant = await assertRefusedWhole(t, h, h.token({ roles: ['visitor'] }), joins, { status: 403, code: 'policy_denied' })
  t.equal(noGrant.body.detail, 'The policy does not allow you room.join.')
  const removals = [{ action: 'room.remove', room: publicTest, user_id: '@alice:test.local' }, { action: 'room.promote', room: publicTest, user_id: '@alice:test.local' }]
  const helpdesk = await assertRefusedWhole(t, h, h.token({ roles: ['helpdesk'] }), removals, { status: 403, code: 'policy_denied' })
  t.equal(helpdesk.body.detail, 'The policy does not allow you room.remove or room.promote.')
  await assertRefusedWhole(t, h, h.token({ roles: ['helpdesk', 'trainee'] }), joins, { status: 403, code: 'policy_denied' })
})

t.test('without a policy file: 403 insufficient_role, as the single routes answer', async (t) => {
  const h = await startHarness(t, { env: { JOIN_ROLES: 'matrix-admin' } })
  const answer = await assertRefusedWhole(t, h, h.token({ roles: ['viewer'] }), joins, { status: 403, code: 'insufficient_role' })
  t.equal(answer.headers['www-authenticate'], 'Bearer error="insufficient_scope"')
})

t.test('a batch holding at least one granted action still runs item by item', async (t) => {
  const h = await startHarness(t, { env: { POLICY_FILE: tempPolicy(t, POLICY).file, ALLOWED_ORGS: 'example' } })
  const answer = await postBatch(h, h.token({ roles: ['helpdesk'] }), [
    { action: 'room.join', room: publicTest, user_id: '@alice:test.local' },
    { action: 'room.remove', room: publicTest, user_id: '@alice:test.local' }
  ])
  t.equal(answer.status, 200)
  t.same(answer.body.results.map((result: { status: number }) => result.status), [200, 403])
  t.match(answer.body.results[1].body, { code: 'policy_denied' })
  t.equal(h.auditRecords().filter((record) => record.event === 'result' && record.batch !== undefined).length, 2, 'each item has its own record')
})
