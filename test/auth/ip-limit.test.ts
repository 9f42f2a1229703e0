/**
 * Every authenticated route is behind the per-IP limit before any token check (issue 19, item 2):
 * a flood of junk tokens on /v1/me or /v1/batch is answered 429 once the address's window is
 * spent, without the token's crypto, and a batch costs its one result record, no more.
 */
import t from 'tap'
import { RECORDED_ROOMS } from '../../dev/homeserver/state.js'
import { startHarness } from '../helpers/harness.js'
import { send } from '../helpers/http.js'

const LIMIT = 5
const JUNK = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqdW5rIn0.bm90LWEtc2lnbmF0dXJl'
const ENV = { RATE_LIMIT_PER_IP_PER_MINUTE: String(LIMIT) }

t.test('GET /v1/me: junk tokens get 401 up to the limit, then 429 with Retry-After', async (t) => {
  const h = await startHarness(t, { env: ENV })
  const statuses: number[] = []
  let last
  for (let i = 0; i < LIMIT + 3; i++) {
    last = await send(h.url, 'GET', '/v1/me', { token: JUNK })
    statuses.push(last.status)
  }
  t.same(statuses, [...Array(LIMIT).fill(401), 429, 429, 429])
  t.match(last?.body, { code: 'rate_limited', status: 429 })
  t.match(last?.headers['retry-after'], /^\d+$/)
  const valid = await send(h.url, 'GET', '/v1/me', { token: h.token() })
  t.equal(valid.status, 429, 'a valid token from the same address waits too: the limit comes first')
  t.same(h.auditRecords().filter((record) => record.event === 'result'), [], '/v1/me is not audited')
})

t.test('POST /v1/batch: junk tokens get 401 up to the limit, then 429; one record per batch, no item records', async (t) => {
  const h = await startHarness(t, { env: ENV })
  const items = Array.from({ length: 10 }, (_, i) => ({ action: 'room.join', room: RECORDED_ROOMS.publicTest, user_id: `@junk${i}:test.local` }))
  const answers = []
  for (let i = 0; i < LIMIT + 3; i++) answers.push(await send(h.url, 'POST', '/v1/batch', { token: JUNK, body: { items } }))
  t.same(answers.map((answer) => answer.status), [...Array(LIMIT).fill(401), 429, 429, 429])
  t.match(answers.at(-1)?.body, { code: 'rate_limited' })
  const records = h.auditRecords().filter((record) => record.event === 'result')
  t.equal(records.length, answers.length, 'one record per batch request')
  t.ok(records.every((record) => record.action === 'batch' && record.batch === undefined && record.actor === null), 'only the batch\'s own records')
  t.same(records.map((record) => record.code), [...Array(LIMIT).fill('invalid_token'), 'rate_limited', 'rate_limited', 'rate_limited'])
  t.same(h.homeserver.calls.filter((call) => call.endpoint !== 'whoami'), [])
})

t.test('/v1/me, /v1/batch and the approval routes count against one window per address', async (t) => {
  const h = await startHarness(t, { env: ENV })
  for (let i = 0; i < LIMIT; i++) t.equal((await send(h.url, 'GET', '/v1/me', { token: JUNK })).status, 401)
  const batch = await send(h.url, 'POST', '/v1/batch', { token: JUNK, body: { items: [{ action: 'room.join', room: RECORDED_ROOMS.publicTest, user_id: '@a:test.local' }] } })
  t.equal(batch.status, 429)
  t.equal((await send(h.url, 'GET', '/v1/approvals', { token: JUNK })).status, 429, 'the approval routes too')
})
