/**
 * room.adopt (POST /v1/rooms/{room}/adopt) over HTTP against the simulated homeserver, as both
 * Synapse versions: make_room_admin for the gateway's own account (which only invites it into a
 * room that is not public: m3b, g28), then its own join; after that, joins into the private room
 * and removals from it work. Rooms are the actions recording's (ACTION_ROOMS).
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import { request } from 'undici'
import { SYNAPSE_VERSIONS } from '../../dev/homeserver/versions.js'
import { ACTION_ROOMS, ACTION_USERS, buildRoom } from '../../dev/homeserver/state.js'
import { SimulatedHomeserver } from '../../dev/homeserver/server.js'
import { callsSince, enc, memberOf, startActionHarness, stateOf } from '../helpers/actions.js'
import { tempPolicy } from '../helpers/policy-http.js'

const ADMIN = ACTION_USERS.admin
const adopt = (room: string, query = '') => `/v1/rooms/${enc(room)}/adopt${query}`
const levelOf = (homeserver: SimulatedHomeserver, room: string, user: string) => homeserver.state.rooms.get(room)?.powerLevels.get(user)
const ADOPT_HINT = /adopt the room first \(room\.adopt: POST \/v1\/rooms\/\{room\}\/adopt\)/

/** An invite-only room of alice's (PL 100) that the gateway's account is not in. */
function aliceRoom (homeserver: SimulatedHomeserver, id: string, isPublic = false): string {
  const alice = '@alice:test.local'
  homeserver.state.rooms.set(id, buildRoom({ id, name: id, creator: alice, isPublic, members: [[alice, 'join'], ['@lou:test.local', 'join']], powerLevels: { [alice]: 100 } }, homeserver.state))
  return id
}

for (const synapseVersion of SYNAPSE_VERSIONS) {
  t.test(`Synapse ${synapseVersion}`, async (t) => {
    t.test('a private room the account is not in: power 100, invited, joined; then joins and removals work there', async (t) => {
      const h = await startActionHarness(t, { homeserver: { synapseVersion } })
      const room = ACTION_ROOMS.aliceNoAdmin
      const before = await h.call('POST', `/v1/rooms/${enc(room)}/members`, { body: { user_id: ACTION_USERS.neverJoined } })
      t.equal(before.status, 403)
      t.match(before.body, { code: 'admin_not_in_room', detail: ADOPT_HINT }, 'the refusal names room.adopt')

      const from = h.homeserver.calls.length
      const res = await h.call('POST', adopt(room), { body: { reason: 'Ticket OPS-1: prepare the room' } })
      t.equal(res.status, 200, res.text)
      t.same(res.body, { room_id: room, changed: true })
      t.same(callsSince(h.homeserver, from).filter((call) => call !== 'room_state' && call !== 'whoami'), ['make_room_admin', 'client_join'])
      t.same(JSON.parse(h.homeserver.callsTo('make_room_admin')[0]?.body ?? ''), { user_id: ADMIN }, 'make_room_admin names the gateway\'s account')
      t.equal(h.homeserver.callsTo('client_join')[0]?.url, `/_matrix/client/v3/rooms/${enc(room)}/join`)
      t.same(JSON.parse(h.homeserver.callsTo('client_join')[0]?.body ?? ''), { reason: 'Ticket OPS-1: prepare the room' }, 'the reason goes on the join event')
      t.equal(levelOf(h.homeserver, room, ADMIN), 100)
      t.equal(memberOf(h.homeserver, room, ADMIN).membership, 'join')
      const records = h.recordsOf(res.requestId)
      t.match(records, [
        { event: 'intent', action: 'room.adopt', reason: 'Ticket OPS-1: prepare the room', target: { room, room_id: room } },
        { event: 'result', action: 'room.adopt', outcome: 'success', status: 200, upstream: { call: 'own_join', status: 200 } }
      ])
      t.equal(records.length, 2)

      const joined = await h.call('POST', `/v1/rooms/${enc(room)}/members`, { body: { user_id: ACTION_USERS.neverJoined } })
      t.equal(joined.status, 200, joined.text)
      t.equal(memberOf(h.homeserver, room, ACTION_USERS.neverJoined).membership, 'join')
      const removed = await h.call('DELETE', `/v1/rooms/${enc(room)}/members/${enc('@lou:test.local')}`)
      t.equal(removed.status, 200, removed.text)
      t.match(removed.body, { changed: true })

      const again = h.homeserver.calls.length
      const repeat = await h.call('POST', adopt(room))
      t.equal(repeat.status, 200)
      t.same(repeat.body, { room_id: room, changed: false })
      t.same(callsSince(h.homeserver, again).filter((call) => call === 'make_room_admin' || call === 'client_join'), [], 'nothing is sent')
      t.match(h.recordsOf(repeat.requestId), [{ event: 'result', outcome: 'success', status: 200 }])
      t.equal(h.recordsOf(repeat.requestId).length, 1, 'no intent: nothing changed')
    })

    t.test('by alias; a public room: power only (no invite), then the join', async (t) => {
      const h = await startActionHarness(t, { homeserver: { synapseVersion } })
      const byAlias = await h.call('POST', adopt('#fresh-private-not-in-room:test.local'))
      t.equal(byAlias.status, 200, byAlias.text)
      t.same(byAlias.body, { room_id: ACTION_ROOMS.aliceNoAdmin, changed: true })

      const room = aliceRoom(h.homeserver, '!adoptPublic:test.local', true)
      const res = await h.call('POST', adopt(room))
      t.equal(res.status, 200, res.text)
      t.equal(levelOf(h.homeserver, room, ADMIN), 100)
      t.equal(memberOf(h.homeserver, room, ADMIN).membership, 'join')
    })

    t.test('joined with power 0: make_room_admin only; joined with power 100 already: nothing', async (t) => {
      const h = await startActionHarness(t, { homeserver: { synapseVersion } })
      const from = h.homeserver.calls.length
      const res = await h.call('POST', adopt(ACTION_ROOMS.bobNoPower))
      t.equal(res.status, 200, res.text)
      t.same(res.body, { room_id: ACTION_ROOMS.bobNoPower, changed: true })
      t.same(callsSince(h.homeserver, from).filter((call) => call === 'make_room_admin' || call === 'client_join'), ['make_room_admin'])
      t.equal(levelOf(h.homeserver, ACTION_ROOMS.bobNoPower, ADMIN), 100)

      const unchanged = stateOf(h.homeserver)
      const done = await h.call('POST', adopt(ACTION_ROOMS.privateAdmin))
      t.same(done.body, { room_id: ACTION_ROOMS.privateAdmin, changed: false })
      t.equal(stateOf(h.homeserver), unchanged)
    })

    t.test('no joined local member with power: 409 room_cannot_be_adopted, as make_room_admin refuses (m4, m4b)', async (t) => {
      const h = await startActionHarness(t, { homeserver: { synapseVersion } })
      for (const [room, said] of [[ACTION_ROOMS.noAdminJoined, 'No local admin user in room'], [ACTION_ROOMS.weakAdmin, 'No local admin user in room with power to update power levels.']] as const) {
        const before = stateOf(h.homeserver)
        const res = await h.call('POST', adopt(room), { body: { reason: 'prepare' } })
        t.equal(res.status, 409, res.text)
        t.match(res.body, { code: 'room_cannot_be_adopted', matrix_errcode: 'M_UNKNOWN', detail: /must join the room/ })
        t.ok(res.body.detail.includes(said), 'Synapse\'s words are quoted')
        t.equal(stateOf(h.homeserver), before, 'nothing changed')
        t.match(h.recordsOf(res.requestId), [{ event: 'intent' }, { event: 'result', outcome: 'failed', code: 'room_cannot_be_adopted', upstream: { call: 'make_room_admin', status: 400 } }])
      }
    })

    t.test('dry runs predict the answer from the room\'s state and change nothing', async (t) => {
      const h = await startActionHarness(t, { homeserver: { synapseVersion } })
      const before = stateOf(h.homeserver)
      const from = h.homeserver.calls.length
      const would = await h.call('POST', adopt(ACTION_ROOMS.aliceNoAdmin, '?dry_run=true'))
      t.equal(would.status, 200)
      t.match(would.body, { dry_run: true, would_succeed: true })
      t.same(would.body.checks.map((check: { name: string }) => check.name), ['room_exists', 'gateway_not_banned', 'not_adopted_yet', 'local_member_can_grant', 'grant_reaches_100'])
      t.match(would.body.checks[3], { ok: true, detail: /@alice:test\.local \(power level 100\) can grant power level 100/ })

      const refused = await h.call('POST', adopt(ACTION_ROOMS.noAdminJoined, '?dry_run=true'))
      t.match(refused.body, { dry_run: true, would_succeed: false, code: 'room_cannot_be_adopted' })
      const weak = await h.call('POST', adopt(ACTION_ROOMS.weakAdmin, '?dry_run=true'))
      t.match(weak.body, { would_succeed: false, code: 'room_cannot_be_adopted', checks: [{}, {}, {}, { name: 'local_member_can_grant', ok: false, detail: /@dan:test\.local \(power level 10\), may not change the power levels/ }] })
      const done = await h.call('POST', adopt(ACTION_ROOMS.privateAdmin, '?dry_run=true'))
      t.match(done.body, { would_succeed: true, checks: [{}, {}, { name: 'not_adopted_yet', detail: /nothing would change/ }] })
      t.equal(done.body.checks.length, 3)
      const unknown = await h.call('POST', adopt('!nosuch:test.local', '?dry_run=true'))
      t.match(unknown.body, { would_succeed: false, code: 'room_not_found' })

      t.equal(stateOf(h.homeserver), before)
      t.same(callsSince(h.homeserver, from).filter((call) => call === 'make_room_admin' || call === 'client_join'), [])
      t.match(h.recordsOf(would.requestId), [{ event: 'result', outcome: 'dry_run' }])
    })

    t.test('a batch adopts many rooms, each item answered on its own', async (t) => {
      const h = await startActionHarness(t, { homeserver: { synapseVersion } })
      const rooms = Array.from({ length: 40 }, (_, i) => aliceRoom(h.homeserver, `!adoptBatch${i}:test.local`))
      const items = [...rooms, ACTION_ROOMS.noAdminJoined].map((room) => ({ action: 'room.adopt', room, reason: 'Ticket OPS-2: adopt the helpdesk rooms' }))
      const res = await h.call('POST', '/v1/batch', { body: { items } })
      t.equal(res.status, 200, res.text)
      t.equal(res.body.results.length, 41)
      t.same(res.body.results.slice(0, 40).map((item: { status: number, body: unknown }) => [item.status, item.body]), rooms.map((room) => [200, { room_id: room, changed: true }]))
      t.match(res.body.results[40], { index: 40, status: 409, body: { code: 'room_cannot_be_adopted' } })
      t.ok(rooms.every((room) => memberOf(h.homeserver, room, ADMIN).membership === 'join' && levelOf(h.homeserver, room, ADMIN) === 100), 'every room adopted')

      const repeat = await h.call('POST', '/v1/batch', { body: { items: items.slice(0, 40) } })
      t.ok(repeat.body.results.every((item: { body: { changed: boolean } }) => item.body.changed === false), 'a repeat changes nothing')
    })

    t.test('a join refused after the power was granted: audited unknown, said clearly; the retry only joins', async (t) => {
      const h = await startActionHarness(t, { homeserver: { synapseVersion } })
      const room = ACTION_ROOMS.aliceNoAdmin
      h.homeserver.fault = { kind: 'answer', on: 'client_join', status: 403, body: { errcode: 'M_FORBIDDEN', error: 'You are not invited to this room.' } }
      const res = await h.call('POST', adopt(room))
      t.equal(res.status, 403)
      t.match(res.body, { code: 'synapse_forbidden', detail: /already given its power level in the room but has not joined it; retry room\.adopt/ })
      t.match(h.recordsOf(res.requestId), [{ event: 'intent' }, { event: 'result', outcome: 'unknown', code: 'synapse_forbidden', upstream: { call: 'own_join', status: 403 } }])
      t.equal(levelOf(h.homeserver, room, ADMIN), 100)
      t.equal(memberOf(h.homeserver, room, ADMIN).membership, 'invite')

      h.homeserver.fault = undefined
      const from = h.homeserver.calls.length
      const retry = await h.call('POST', adopt(room))
      t.same(retry.body, { room_id: room, changed: true })
      t.same(callsSince(h.homeserver, from).filter((call) => call === 'make_room_admin' || call === 'client_join'), ['client_join'])
    })

    t.test('a banned gateway account: 409 before anything is sent', async (t) => {
      const h = await startActionHarness(t, { homeserver: { synapseVersion } })
      const room = aliceRoom(h.homeserver, '!adoptBanned:test.local')
      h.homeserver.state.rooms.get(room)?.members.set(ADMIN, 'ban')
      const res = await h.call('POST', adopt(room))
      t.equal(res.status, 409)
      t.match(res.body, { code: 'room_cannot_be_adopted', detail: /banned from the room; a room admin must unban it first/ })
      t.equal(h.homeserver.callsTo('make_room_admin').length, 0)
      t.match(h.recordsOf(res.requestId), [{ event: 'result', outcome: 'failed', code: 'room_cannot_be_adopted' }])
    })
  })
}

t.test('the simulator\'s client join answers as recorded (adopt-*.json a3, a4, a7, a8, a9)', async (t) => {
  for (const synapseVersion of SYNAPSE_VERSIONS) {
    const recorded = JSON.parse(readFileSync(`test/fixtures/synapse/adopt-${synapseVersion}.json`, 'utf8')) as Array<{ case: string, response: { status: number, body: any } }>
    const answer = (id: string) => recorded.find((exchange) => exchange.case.startsWith(`${id} `))?.response
    const homeserver = new SimulatedHomeserver({ synapseVersion, fixture: 'actions' })
    const url = await homeserver.listen()
    t.teardown(async () => { await homeserver.close() })
    const invited = aliceRoom(homeserver, '!adoptInvited:test.local')
    homeserver.state.rooms.get(invited)?.members.set(ADMIN, 'invite')
    const join = async (room: string) => {
      const response = await request(`${url}/_matrix/client/v3/rooms/${enc(room)}/join`, { method: 'POST', headers: { authorization: `Bearer ${homeserver.adminToken}`, 'content-type': 'application/json' }, body: '{}' })
      return { status: response.statusCode, body: await response.body.json() as any }
    }
    const cases: Array<[string, string, (body: any) => unknown]> = [
      ['a3', invited, () => ({ room_id: invited })],
      ['a4', invited, () => ({ room_id: invited })],
      ['a7', aliceRoom(homeserver, '!adoptNoInvite:test.local'), (body) => body],
      ['a8', aliceRoom(homeserver, '!adoptPublicJoin:test.local', true), () => ({ room_id: '!adoptPublicJoin:test.local' })],
      ['a9', '!nosuch:test.local', (body) => body]
    ]
    for (const [id, room, expected] of cases) {
      const recordedAnswer = answer(id)
      const got = await join(room)
      t.equal(got.status, recordedAnswer?.status, `${synapseVersion} ${id}: status`)
      t.same(got.body, expected(recordedAnswer?.body), `${synapseVersion} ${id}: body`)
    }
  }
})

t.test('room version 12: the creator (unlimited power, not listed) grants power level 100; the dry run knows it', async (t) => {
  const h = await startActionHarness(t)
  const alice = '@alice:test.local'
  const room = '!adoptV12:test.local'
  h.homeserver.state.rooms.set(room, buildRoom({ id: room, name: 'v12', creator: alice, isPublic: false, roomVersion: '12', members: [[alice, 'join'], ['@lou:test.local', 'join']], powerLevels: {} }, h.homeserver.state))
  const dry = await h.call('POST', adopt(room, '?dry_run=true'))
  t.match(dry.body, { would_succeed: true, checks: [{}, {}, {}, { name: 'local_member_can_grant', detail: `${alice} (power level unlimited (creator)) can grant power level 100.` }] })
  const res = await h.call('POST', adopt(room))
  t.same(res.body, { room_id: room, changed: true })
  t.equal(levelOf(h.homeserver, room, ADMIN), 100)
  t.equal(memberOf(h.homeserver, room, ADMIN).membership, 'join')
  t.equal(h.homeserver.state.rooms.get(room)?.powerLevelsSender, alice, 'sent by the creator')
  const removed = await h.call('DELETE', `/v1/rooms/${enc(room)}/members/${enc('@lou:test.local')}`)
  t.equal(removed.status, 200, removed.text)
})

t.test('the policy decides on room.adopt like any action', async (t) => {
  const policy = tempPolicy(t, [
    'rules:',
    '  - name: helpdesk-joins',
    '    roles: [matrix-admin]',
    '    actions: [room.join, room.adopt]',
    '  - name: no-adopting-the-board',
    '    effect: deny',
    '    roles: [matrix-admin]',
    '    actions: [room.adopt]',
    `    rooms: ["${ACTION_ROOMS.aliceNoAdmin}"]`,
    ''
  ].join('\n')).file
  const h = await startActionHarness(t, { env: { POLICY_FILE: policy } })
  const denied = await h.call('POST', adopt(ACTION_ROOMS.aliceNoAdmin))
  t.equal(denied.status, 403)
  t.match(denied.body, { code: 'policy_denied' })
  t.equal(h.homeserver.callsTo('make_room_admin').length, 0)
  t.match(h.recordsOf(denied.requestId), [{ event: 'result', action: 'room.adopt', outcome: 'denied', policy: { rule: 'no-adopting-the-board', effect: 'deny' } }])
  const allowed = await h.call('POST', adopt(ACTION_ROOMS.bobNoPower))
  t.equal(allowed.status, 200, allowed.text)
})

t.test('the refusals that need an adopted room name room.adopt', async (t) => {
  const h = await startActionHarness(t)
  const cannotInvite = await h.call('POST', `/v1/rooms/${enc(ACTION_ROOMS.bobNoPower)}/members`, { body: { user_id: ACTION_USERS.neverJoined } })
  t.match(cannotInvite.body, { code: 'admin_cannot_invite', detail: ADOPT_HINT })
  const cannotKick = await h.call('DELETE', `/v1/rooms/${enc(ACTION_ROOMS.bobNoPower)}/members/${enc('@max:test.local')}`)
  t.match(cannotKick.body, { code: 'admin_cannot_kick', detail: ADOPT_HINT })
  const notInRoom = await h.call('DELETE', `/v1/rooms/${enc(ACTION_ROOMS.aliceNoAdmin)}/members/${enc('@lou:test.local')}`)
  t.match(notInRoom.body, { code: 'admin_not_in_room', detail: ADOPT_HINT })
})
