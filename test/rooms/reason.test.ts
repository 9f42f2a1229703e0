/**
 * `reason` on the acting actions (room.join, room.remove, room.promote): recorded in the audit,
 * passed to Synapse where it takes one (the kick), validated (at most 512 characters, no control
 * characters), and required with REQUIRE_REASON=true. The version-1 join cases stay in
 * test/rooms/join.test.ts; these are the version-2 additions, against the actions fixture.
 */
import t from 'tap'
import { ACTION_ROOMS } from '../../dev/homeserver/state.js'
import { enc, memberOf, startActionHarness } from '../helpers/actions.js'

const PUBLIC = ACTION_ROOMS.kickPublic
const joinPath = `/v1/rooms/${enc(PUBLIC)}/members`
const promotePath = `/v1/rooms/${enc(PUBLIC)}/admins`
const removePath = (user: string) => `/v1/rooms/${enc(PUBLIC)}/members/${enc(user)}`

t.test('a join\'s reason is in its intent and result records, and not sent to the admin join API (it takes none)', async (t) => {
  const h = await startActionHarness(t)
  const res = await h.call('POST', joinPath, { body: { user_id: '@eli:test.local', reason: 'Ticket HD-2: onboarding' } })
  t.equal(res.status, 200)
  t.same(res.body, { room_id: PUBLIC, user_id: '@eli:test.local' })
  t.same(JSON.parse(h.homeserver.callsTo('join')[0]?.body ?? ''), { user_id: '@eli:test.local' })
  t.match(h.recordsOf(res.requestId), [
    { event: 'intent', action: 'room.join', reason: 'Ticket HD-2: onboarding', policy: { rule: 'all', effect: 'allow' } },
    { event: 'result', action: 'room.join', outcome: 'success', reason: 'Ticket HD-2: onboarding', policy: { rule: 'all', effect: 'allow' } }
  ])
})

t.test('reason limits: 512 characters and unicode pass (k4); longer or with control characters is invalid_body, for every acting action', async (t) => {
  const h = await startActionHarness(t)
  const unicode = 'Ticket 🎫 工单 תקלה e\u0301 ' + 'x'.repeat(480)
  const longest = await h.call('DELETE', removePath('@dot:test.local'), { body: { reason: unicode.padEnd(512, '.') } })
  t.equal(longest.status, 200, longest.text)
  t.equal(memberOf(h.homeserver, PUBLIC, '@dot:test.local').event?.reason, unicode.padEnd(512, '.'), 'stored verbatim')
  t.equal(h.recordsOf(longest.requestId)[1]?.reason, unicode.padEnd(512, '.'))

  const requests = [
    (reason: string) => h.call('POST', joinPath, { body: { user_id: '@eli:test.local', reason } }),
    (reason: string) => h.call('DELETE', removePath('@kay:test.local'), { body: { reason } }),
    (reason: string) => h.call('POST', promotePath, { body: { user_id: '@vic:test.local', reason } })
  ]
  const calls = h.homeserver.calls.length
  for (const send of requests) {
    for (const reason of ['x'.repeat(513), 'two\nlines', 'nul\u0000', 'escape\u001b[31m', 'del\u007f', 'c1\u0085']) {
      const res = await send(reason)
      t.equal(res.status, 400, JSON.stringify(reason))
      t.match(res.body, { code: 'invalid_body', detail: /reason/ })
      t.match(h.recordsOf(res.requestId), [{ event: 'result', outcome: 'invalid', code: 'invalid_body' }])
    }
  }
  t.equal(h.homeserver.calls.length, calls, 'none reached Synapse')
  t.notOk(h.auditText().includes('\u001b'), 'the audit never holds the control characters')
})

t.test('REQUIRE_REASON=true: join, remove and promote without a reason (or an empty or blank one) are reason_required', async (t) => {
  const h = await startActionHarness(t, { env: { REQUIRE_REASON: 'true' } })
  const attempts: Array<[string, () => ReturnType<typeof h.call>]> = []
  for (const reason of [undefined, '', '   ']) {
    const extra = reason === undefined ? {} : { reason }
    attempts.push(
      [`join ${JSON.stringify(reason)}`, async () => await h.call('POST', joinPath, { body: { user_id: '@eli:test.local', ...extra } })],
      [`remove ${JSON.stringify(reason)}`, async () => await h.call('DELETE', removePath('@kay:test.local'), reason === undefined ? {} : { body: extra })],
      [`promote ${JSON.stringify(reason)}`, async () => await h.call('POST', promotePath, { body: { user_id: '@vic:test.local', ...extra } })],
      [`join dry run ${JSON.stringify(reason)}`, async () => await h.call('POST', `${joinPath}?dry_run=true`, { body: { user_id: '@eli:test.local', ...extra } })]
    )
  }
  // A DELETE with an empty JSON body has no reason either.
  attempts.push(['remove, empty body', async () => await h.call('DELETE', removePath('@kay:test.local'), { rawBody: '' })])
  for (const [name, send] of attempts) {
    const res = await send()
    t.equal(res.status, 400, name)
    t.match(res.body, { code: 'reason_required', status: 400 }, name)
    t.match(h.recordsOf(res.requestId), [{ event: 'result', outcome: 'invalid', code: 'reason_required' }], name)
  }
  t.same(h.homeserver.calls, [], 'nothing reached Synapse')

  // With a reason they go through; reads need none.
  t.equal((await h.call('POST', joinPath, { body: { user_id: '@eli:test.local', reason: 'HD-3' } })).status, 200)
  t.equal((await h.call('DELETE', removePath('@kay:test.local'), { body: { reason: 'HD-3' } })).status, 200)
  t.equal((await h.call('POST', promotePath, { body: { user_id: '@vic:test.local', reason: 'HD-3' } })).status, 200)
  t.equal((await h.call('GET', joinPath)).status, 200)
  t.equal((await h.call('GET', `/v1/users/${enc('@kay:test.local')}`)).status, 200)
})

t.test('without POLICY_FILE a JOIN_ROLES caller may join (version 1) and nothing else', async (t) => {
  const h = await startActionHarness(t, { policy: false })
  const joined = await h.call('POST', joinPath, { body: { user_id: '@eli:test.local', reason: 'HD-4' } })
  t.equal(joined.status, 200)
  t.match(h.recordsOf(joined.requestId), [{ event: 'intent', reason: 'HD-4' }, { event: 'result', outcome: 'success', reason: 'HD-4' }])
  const denied = [
    await h.call('DELETE', removePath('@kay:test.local')),
    await h.call('POST', promotePath, { body: { user_id: '@vic:test.local' } }),
    await h.call('GET', joinPath),
    await h.call('GET', `/v1/users/${enc('@kay:test.local')}`),
    await h.call('POST', joinPath, { body: { user_id: '@eli:test.local' }, token: h.token({ roles: ['helpdesk'] }) })
  ]
  for (const res of denied) {
    t.equal(res.status, 403)
    t.match(res.body, { code: 'insufficient_role', detail: 'This action needs one of the roles: matrix-admin.' })
    t.match(res.headers['www-authenticate'], /insufficient_scope/)
  }
  t.same(h.homeserver.callsTo('kick'), [])
  t.same(h.homeserver.callsTo('make_room_admin'), [])
  t.equal(h.homeserver.callsTo('join').length, 1)
})
