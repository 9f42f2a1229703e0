/**
 * Rooms of any size (issue 18), over real sockets against the simulated homeserver with a room
 * of 5,000 members and a room with 60 KB state events (dev/homeserver/big-rooms.ts): members read
 * page by page, every acting action's dry run, joins decided by alias patterns, spaces and `when`,
 * and a flood naming the big rooms that leaves small-room requests answered and the breaker closed.
 */
import t from 'tap'
import { request } from 'undici'
import { addBigRooms, addMembersRoom, bigMember, BIG_ROOM_MEMBERS, BIG_ROOMS } from '../../dev/homeserver/big-rooms.js'
import { ACTION_ROOMS, ACTION_USERS } from '../../dev/homeserver/state.js'
import { startHarness, type Harness } from '../helpers/harness.js'
import { act, type Answer } from '../helpers/audit.js'
import { enc } from '../helpers/actions.js'
import { tempPolicy } from '../helpers/policy-http.js'

const POLICY = `
rules:
  - name: everything
    roles: [matrix-admin]
    actions: ["*"]
  - name: company-rooms-for-it
    roles: [alias-agent]
    actions: ["*"]
    rooms: ["#company-*:test.local", "#big-state-old:test.local"]
    when: 'caller.claims.department == "it"'
  - name: support-space
    roles: [space-agent]
    actions: ["*"]
    rooms: ["space:#support:test.local"]
`

async function bigRoomGateway (t: { after: (fn: () => unknown) => void }): Promise<Harness> {
  const h = await startHarness(t, {
    env: { POLICY_FILE: tempPolicy(t, POLICY).file, RATE_LIMIT_PER_MINUTE: '100000', RATE_LIMIT_PER_IP_PER_MINUTE: '100000', SYNAPSE_TIMEOUT_MS: '20000' },
    homeserver: { fixture: 'actions' }
  })
  addBigRooms(h.homeserver.state)
  return h
}

const get = async (h: Harness, path: string, token = h.token()) => await act(h.url, 'GET', path, { token })
const post = async (h: Harness, path: string, body: unknown, token = h.token()) => await act(h.url, 'POST', path, { token, body })
const members = (room: string, query = '') => `/v1/rooms/${enc(room)}/members${query}`

t.test('room.members.read pages through 5,000 members: limit, from, next, total', async (t) => {
  const h = await bigRoomGateway(t)
  const first = await get(h, members(BIG_ROOMS.members))
  t.equal(first.status, 200)
  t.equal(first.body.members.length, 1000, 'default page: 1,000')
  t.equal(first.body.total, BIG_ROOM_MEMBERS + 1, 'total: every member (and the admin)')
  t.type(first.body.next, 'string')

  const seen = new Set<string>()
  let page: Answer = await get(h, members(BIG_ROOMS.members, '?limit=1500'))
  let pages = 1
  for (;;) {
    for (const member of page.body.members as string[]) seen.add(member)
    if (page.body.next === undefined) break
    t.equal(page.body.members.length, 1500, `page ${pages} is full`)
    page = await get(h, members(BIG_ROOMS.members, `?limit=1500&from=${enc(page.body.next as string)}`))
    t.equal(page.status, 200)
    pages++
  }
  t.equal(pages, 4, 'four pages of at most 1,500')
  t.equal(seen.size, BIG_ROOM_MEMBERS + 1, 'every member exactly once')
  t.ok(seen.has(bigMember(BIG_ROOM_MEMBERS)))

  const all = await get(h, members(BIG_ROOMS.members, '?limit=10000'))
  t.equal(all.body.members.length, BIG_ROOM_MEMBERS + 1, 'limit=10000: one page')
  t.notOk('next' in all.body, 'no next on the last page')

  for (const query of ['?limit=0', '?limit=10001', '?limit=abc', '?limit=-1', '?from=nonsense', '?from=']) {
    const bad = await get(h, members(BIG_ROOMS.members, query))
    t.equal(bad.status, 400, query)
    t.equal(bad.body.code, 'invalid_request', query)
  }

  const big = await get(h, members(BIG_ROOMS.state))
  t.equal(big.status, 200, 'the room with 60 KB state events')
  t.equal(big.body.total, 9)
  const small = await get(h, members(ACTION_ROOMS.kickPublic, '?limit=1'))
  t.equal(small.body.members.length, 1, 'a small room pages too')
})

t.test('a room whose state is beyond what is parsed whole (20,000 members, some 6 MB) is read streamed', async (t) => {
  const h = await bigRoomGateway(t)
  const huge = '!simHuge:test.local'
  addMembersRoom(h.homeserver.state, huge, '#company-huge:test.local', 20_000)
  let page = await get(h, members(huge, '?limit=10000'))
  const sizes = [page.body.members.length]
  while (page.body.next !== undefined) {
    page = await get(h, members(huge, `?limit=10000&from=${enc(page.body.next as string)}`))
    sizes.push(page.body.members.length)
  }
  t.same(sizes, [10_000, 10_000, 1], 'three pages')
  t.equal(page.body.total, 20_001)
  const dry = await post(h, `/v1/rooms/${enc(huge)}/admins?dry_run=true`, { user_id: bigMember(20_000) })
  t.match(dry, { status: 200, body: { would_succeed: true } }, 'a promote dry run: power users found, a member\'s membership read')
  t.match(await post(h, `/v1/rooms/${enc(huge)}/members`, { user_id: '@eli:test.local' }, h.token({ roles: ['alias-agent'], department: 'it' })), { status: 200 }, 'a join decided by the canonical alias')
})

t.test('every acting action\'s dry run answers on both big rooms', async (t) => {
  const h = await bigRoomGateway(t)
  for (const [room, member, other] of [
    [BIG_ROOMS.members, bigMember(2), bigMember(3)],
    [BIG_ROOMS.state, '@bigstate2:test.local', '@bigstate3:test.local']
  ] as const) {
    const join = await post(h, `/v1/rooms/${enc(room)}/members?dry_run=true`, { user_id: ACTION_USERS.neverJoined })
    t.match(join, { status: 200, body: { dry_run: true, would_succeed: true } }, `join ${room}`)
    t.ok(join.body.checks.some((check: { name: string, ok: boolean }) => check.name === 'admin_can_invite' && check.ok), 'the admin\'s invite power was read')
    const remove = await act(h.url, 'DELETE', `/v1/rooms/${enc(room)}/members/${enc(member)}?dry_run=true`, { token: h.token() })
    t.match(remove, { status: 200, body: { dry_run: true, would_succeed: true } }, `remove from ${room}`)
    t.ok(remove.body.checks.some((check: { name: string, detail: string }) => check.name === 'user_in_room' && check.detail.includes('join')), 'the member\'s membership was read')
    const promote = await post(h, `/v1/rooms/${enc(room)}/admins?dry_run=true`, { user_id: other })
    t.match(promote, { status: 200, body: { dry_run: true, would_succeed: true } }, `promote in ${room}`)
    t.ok(promote.body.checks.some((check: { detail: string }) => check.detail.includes('@admin:test.local (power level 100)')), 'the admin was found among the power users (named after the member events)')
  }
  t.equal(h.homeserver.callsTo('join').length + h.homeserver.callsTo('kick').length + h.homeserver.callsTo('make_room_admin').length, 0, 'nothing changed')
})

t.test('joins into the big rooms decided by alias patterns, alt aliases, spaces and when', async (t) => {
  const h = await bigRoomGateway(t)
  const it = h.token({ roles: ['alias-agent'], department: 'it' })
  const sales = h.token({ roles: ['alias-agent'], department: 'sales' })
  const space = h.token({ roles: ['space-agent'] })
  const join = async (room: string, token: string, user: string) => await post(h, `/v1/rooms/${enc(room)}/members`, { user_id: user }, token)
  t.equal((await join(BIG_ROOMS.members, it, '@eli:test.local')).status, 200, 'by room ID: its canonical alias #company-wide matches, department it')
  t.match(await join(BIG_ROOMS.members, sales, '@eli:test.local'), { status: 403, body: { code: 'policy_denied' } }, 'the same for sales: `when` is false')
  t.equal((await join('#company-wide:test.local', it, '@uli:test.local')).status, 200, 'by alias')
  t.equal((await join(BIG_ROOMS.state, it, '@eli:test.local')).status, 200, 'the big-state room by ID: its published alt alias #big-state-old matches')
  t.equal((await join(BIG_ROOMS.members, space, '@fay:test.local')).status, 200, 'a child of the #support space')
  t.equal((await join(BIG_ROOMS.state, space, '@fay:test.local')).status, 200, 'the big-state room, a child too')
  t.match(await join(ACTION_ROOMS.scratch, space, '@fay:test.local'), { status: 403, body: { code: 'policy_denied' } }, 'a room outside the space')
  t.same(h.homeserver.state.rooms.get(BIG_ROOMS.members)?.members.get('@eli:test.local'), 'join', 'Synapse did the join')
})

t.test('a flood naming the big rooms leaves small-room requests answered and the breaker closed', async (t) => {
  const h = await bigRoomGateway(t)
  const flood: Array<Promise<Answer>> = []
  for (let i = 0; i < 5; i++) {
    flood.push(get(h, members(BIG_ROOMS.members, '?limit=10000')))
    flood.push(get(h, members(BIG_ROOMS.state)))
    flood.push(post(h, `/v1/rooms/${enc(BIG_ROOMS.members)}/members?dry_run=true`, { user_id: ACTION_USERS.neverJoined }))
    flood.push(post(h, `/v1/rooms/${enc(BIG_ROOMS.state)}/admins?dry_run=true`, { user_id: '@bigstate1:test.local' }))
    // Ones that fail: an unknown user, a bad page size, the gateway's own account.
    flood.push(post(h, `/v1/rooms/${enc(BIG_ROOMS.members)}/members`, { user_id: '@nobody:test.local' }))
    flood.push(get(h, members(BIG_ROOMS.members, '?limit=99999')))
    flood.push(act(h.url, 'DELETE', `/v1/rooms/${enc(BIG_ROOMS.members)}/members/${enc(ACTION_USERS.admin)}`, { token: h.token() }))
  }
  const small = await Promise.all(Array.from({ length: 20 }, async () => await get(h, members(ACTION_ROOMS.kickPublic))))
  t.same([...new Set(small.map((answer) => answer.status))], [200], 'every small-room read answered 200 during the flood')
  const answers = await Promise.all(flood)
  const statuses = [...new Set(answers.map((answer) => answer.status))].sort()
  t.same(statuses, [200, 400, 403, 404], 'the big-room requests: 200s and the expected refusals, no 5xx')
  const ready = await request(`${h.url}/readyz`)
  t.equal(ready.statusCode, 200)
  t.same((await ready.body.json() as { synapse_breaker: unknown }).synapse_breaker, { state: 'closed', calls: {} }, 'the breaker stayed closed')
  t.equal((await get(h, members(ACTION_ROOMS.kickPublic))).status, 200)
})
