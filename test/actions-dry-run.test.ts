/**
 * Dry runs (`?dry_run=true`) of room.join, room.remove and room.promote, proven against what the
 * real call then does. Each row of CASES is one situation the recordings show (case ids from
 * test/fixtures/synapse/actions-contract.json and join-contract.json) or the contract names; for
 * each, on a fresh simulated homeserver: the dry run first (nothing may change in Synapse, its
 * audit record is `dry_run` with no intent), then the real call, and the prediction must match:
 * `would_succeed` is true exactly when the real call answers 200, and `code` is the real code.
 *
 * Refusals the pipeline makes before any action runs (an alias that does not resolve, a bad
 * body, the policy) are answered the same way with or without dry_run; those rows say `refusedBeforeDryRun`.
 */
import t from 'tap'
import { ACTION_ROOMS, ACTION_USERS, SPEC_ROOMS } from '../dev/homeserver/state.js'
import type { SimulatedHomeserver } from '../dev/homeserver/server.js'
import { CHANGING_CALLS, enc, startActionHarness, stateOf, type ActionResponse } from './helpers/actions.js'

interface Case {
  name: string
  action: 'join' | 'remove' | 'promote'
  room: string
  user: string
  /** The real call's answer: 200 or the problem's code. */
  expect: 'ok' | string
  setup?: (homeserver: SimulatedHomeserver) => void
  refusedBeforeDryRun?: true
}

const R = ACTION_ROOMS
const U = ACTION_USERS

const CASES: Case[] = [
  // room.join (the admin join API; join-contract.json's cases on the actions fixture's rooms)
  { action: 'join', name: 'public room', room: R.kickPublic, user: U.neverJoined, expect: 'ok' },
  { action: 'join', name: 'public room, already joined', room: R.kickPublic, user: '@ana:test.local', expect: 'ok' },
  { action: 'join', name: 'invite-only room, admin PL 100', room: R.privateAdmin, user: U.neverJoined, expect: 'ok' },
  { action: 'join', name: 'invite-only room, already joined (Synapse: 403 "already in the room")', room: R.privateAdmin, user: '@wes:test.local', expect: 'ok' },
  { action: 'join', name: 'a space the admin is in', room: SPEC_ROOMS.supportSpace, user: U.neverJoined, expect: 'ok' },
  { action: 'join', name: 'by alias', room: '#fresh-public:test.local', user: U.neverJoined, expect: 'ok' },
  { action: 'join', name: 'admin not in the invite-only room', room: R.aliceNoAdmin, user: U.neverJoined, expect: 'admin_not_in_room' },
  { action: 'join', name: 'admin not in the room, user already joined', room: R.aliceNoAdmin, user: U.sue, expect: 'admin_not_in_room' },
  { action: 'join', name: 'admin without invite power', room: R.bobNoPower, user: U.neverJoined, expect: 'admin_cannot_invite' },
  { action: 'join', name: 'admin without invite power, user already joined', room: R.bobNoPower, user: '@max:test.local', expect: 'ok' },
  { action: 'join', name: 'banned, public room', room: R.kickPublic, user: U.banned, expect: 'user_banned' },
  { action: 'join', name: 'banned, invite-only room', room: R.privateAdmin, user: U.banned, expect: 'user_banned' },
  { action: 'join', name: 'blocked room', room: R.blocked, user: U.neverJoined, expect: 'room_blocked' },
  { action: 'join', name: 'unknown room ID', room: '!doesnotexist:test.local', user: U.neverJoined, expect: 'room_not_found' },
  { action: 'join', name: 'unknown alias', room: '#nope:test.local', user: U.neverJoined, expect: 'room_not_found', refusedBeforeDryRun: true },
  { action: 'join', name: 'deactivated user', room: R.kickPublic, user: U.deactivated, expect: 'user_deactivated' },
  { action: 'join', name: 'unknown user', room: R.kickPublic, user: U.unknown, expect: 'user_not_found' },

  // room.remove (kick, k*)
  { action: 'remove', name: 'joined (k1)', room: R.kickPublic, user: '@ben:test.local', expect: 'ok' },
  { action: 'remove', name: 'left by herself (k7)', room: R.kickPublic, user: U.leftByHerself, expect: 'ok' },
  { action: 'remove', name: 'never joined (k6)', room: R.kickPublic, user: U.neverJoined, expect: 'ok' },
  { action: 'remove', name: 'invited (k8)', room: R.kickPublic, user: '@gus:test.local', expect: 'ok' },
  { action: 'remove', name: 'banned (k9)', room: R.kickPublic, user: U.banned, expect: 'ok' },
  { action: 'remove', name: 'deactivated, never joined', room: R.kickPublic, user: U.deactivated, expect: 'ok' },
  { action: 'remove', name: 'deactivated, still joined', room: R.kickPublic, user: U.deactivated, expect: 'ok', setup: (hs) => { hs.state.rooms.get(R.kickPublic)?.members.set(U.deactivated, 'join') } },
  { action: 'remove', name: 'by alias (k19)', room: '#fresh-public:test.local', user: '@ned:test.local', expect: 'ok' },
  { action: 'remove', name: 'blocked room (k20)', room: R.blocked, user: '@oli:test.local', expect: 'ok' },
  { action: 'remove', name: 'invite-only room, admin PL 100 (k22)', room: R.privateAdmin, user: '@rex:test.local', expect: 'ok' },
  { action: 'remove', name: 'admin PL 50 = kick level, target PL 0 (k11c)', room: R.halPowers, user: '@jan:test.local', expect: 'ok' },
  { action: 'remove', name: 'target PL 100 above the admin\'s 50 (k11)', room: R.halPowers, user: '@hal:test.local', expect: 'admin_cannot_kick' },
  { action: 'remove', name: 'target PL 50 equal to the admin\'s (k11b)', room: R.halPowers, user: '@ivo:test.local', expect: 'admin_cannot_kick' },
  { action: 'remove', name: 'admin PL 0 below the kick level (k17)', room: R.bobNoPower, user: '@max:test.local', expect: 'admin_cannot_kick' },
  { action: 'remove', name: 'admin PL 0, target the creator (k17b)', room: R.bobNoPower, user: '@bob:test.local', expect: 'admin_cannot_kick' },
  { action: 'remove', name: 'admin not in the room (k16)', room: R.aliceNoAdmin, user: '@lou:test.local', expect: 'admin_not_in_room' },
  { action: 'remove', name: 'admin not in the room, target the creator (k16b)', room: R.aliceNoAdmin, user: '@alice:test.local', expect: 'admin_not_in_room' },
  { action: 'remove', name: 'admin not in the room, target invited', room: R.aliceNoAdmin, user: U.invited, expect: 'admin_not_in_room' },
  { action: 'remove', name: 'admin not in the room, target never there (target checked first)', room: R.aliceNoAdmin, user: U.neverJoined, expect: 'ok' },
  { action: 'remove', name: 'unknown room (k18)', room: '!doesnotexist:test.local', user: '@ben:test.local', expect: 'room_not_found' },
  { action: 'remove', name: 'remote room ID (k18b)', room: '!abc:other.example', user: '@ben:test.local', expect: 'room_not_found' },
  { action: 'remove', name: 'unknown alias', room: '#nope:test.local', user: '@ben:test.local', expect: 'room_not_found', refusedBeforeDryRun: true },
  { action: 'remove', name: 'unknown user (k12)', room: R.kickPublic, user: U.unknown, expect: 'user_not_found' },
  { action: 'remove', name: 'different-case user ID (k12b)', room: R.kickPublic, user: '@Kay:test.local', expect: 'user_not_found' },
  { action: 'remove', name: 'the gateway\'s own admin account', room: R.kickPublic, user: U.admin, expect: 'protected_target' },

  // room.promote (make_room_admin, m*)
  { action: 'promote', name: 'joined, public room (m1)', room: R.kickPublic, user: '@vic:test.local', expect: 'ok' },
  { action: 'promote', name: 'not joined, public room (m2)', room: R.kickPublic, user: '@yan:test.local', expect: 'ok' },
  { action: 'promote', name: 'not joined, invite-only room: invited (m2b)', room: R.privateAdmin, user: '@zed:test.local', expect: 'ok' },
  { action: 'promote', name: 'joined, invite-only room (m2c)', room: R.privateAdmin, user: '@wes:test.local', expect: 'ok' },
  { action: 'promote', name: 'banned, invite-only room (m2d)', room: R.privateAdmin, user: U.banned, expect: 'user_banned' },
  { action: 'promote', name: 'banned, public room: no invite needed', room: R.kickPublic, user: U.banned, expect: 'ok' },
  { action: 'promote', name: 'admin PL 0: sent by the creator (m3)', room: R.bobNoPower, user: '@max:test.local', expect: 'ok' },
  { action: 'promote', name: 'admin not in the room: sent by the creator (m3b)', room: R.aliceNoAdmin, user: '@lou:test.local', expect: 'ok' },
  { action: 'promote', name: 'by alias (m6)', room: '#fresh-public:test.local', user: '@xena:test.local', expect: 'ok' },
  { action: 'promote', name: 'blocked room (m9)', room: R.blocked, user: '@oli:test.local', expect: 'ok' },
  { action: 'promote', name: 'no joined local member in users{} (m4)', room: R.noAdminJoined, user: '@dan:test.local', expect: 'synapse_forbidden' },
  { action: 'promote', name: 'best joined member has PL 10 (m4b)', room: R.weakAdmin, user: '@dan:test.local', expect: 'synapse_forbidden' },
  {
    action: 'promote',
    name: 'target (left) already above the best joined member',
    room: R.kickPublic,
    user: '@quin:test.local',
    expect: 'synapse_forbidden',
    setup: (hs) => {
      const room = hs.state.rooms.get(R.kickPublic)
      room?.powerLevels.set('@quin:test.local', 150)
      room?.members.set('@quin:test.local', 'leave')
    }
  },
  { action: 'promote', name: 'unknown room ID (m5)', room: '!doesnotexist:test.local', user: U.neverJoined, expect: 'room_not_found' },
  { action: 'promote', name: 'unknown alias (m5b)', room: '#nope:test.local', user: U.neverJoined, expect: 'room_not_found', refusedBeforeDryRun: true },
  { action: 'promote', name: 'deactivated user (m7)', room: R.privateAdmin, user: U.deactivated, expect: 'user_deactivated' },
  { action: 'promote', name: 'unknown user (m8b)', room: R.privateAdmin, user: U.unknown, expect: 'user_not_found' }
]

function request (action: Case['action'], room: string, user: string, dryRun: boolean): { method: 'POST' | 'DELETE', path: string, body: unknown } {
  const query = dryRun ? '?dry_run=true' : ''
  const reason = 'dry-run table'
  if (action === 'remove') return { method: 'DELETE', path: `/v1/rooms/${enc(room)}/members/${enc(user)}${query}`, body: { reason } }
  return { method: 'POST', path: `/v1/rooms/${enc(room)}/${action === 'join' ? 'members' : 'admins'}${query}`, body: { user_id: user, reason } }
}

const ACTION_NAMES = { join: 'room.join', remove: 'room.remove', promote: 'room.promote' } as const

for (const row of CASES) {
  t.test(`${row.action}: ${row.name} → ${row.expect}`, async (t) => {
    const h = await startActionHarness(t)
    row.setup?.(h.homeserver)
    const send = async (dryRun: boolean): Promise<ActionResponse> => {
      const { method, path, body } = request(row.action, row.room, row.user, dryRun)
      return await h.call(method, path, { body })
    }

    const before = stateOf(h.homeserver)
    const dry = await send(true)
    const changing = h.homeserver.calls.filter((call) => CHANGING_CALLS.includes(call.endpoint))
    t.same(changing, [], 'the dry run makes no changing call')
    t.equal(stateOf(h.homeserver), before, 'the dry run changes nothing in Synapse')
    const dryRecords = h.recordsOf(dry.requestId)
    t.same(dryRecords.map((record) => record.event), ['result'], 'no intent record for a dry run')

    const real = await send(false)
    const realCode: string | undefined = real.status === 200 ? undefined : real.body?.code
    t.equal(real.status === 200 ? 'ok' : realCode, row.expect, 'the real call answers as the recordings say')

    if (row.refusedBeforeDryRun === true) {
      t.equal(dry.status, real.status, 'refused before the dry run: the same status as the real call')
      t.equal(dry.body?.code, realCode, 'and the same code')
      t.match(dryRecords[0], { action: ACTION_NAMES[row.action], outcome: real.body?.code === undefined ? 'success' : 'failed' })
      return
    }
    t.equal(dry.status, 200, dry.text)
    t.equal(dry.body.dry_run, true)
    t.equal(dry.body.would_succeed, real.status === 200, `would_succeed is ${String(real.status === 200)}: the real call answered ${real.status}`)
    t.equal(dry.body.code, realCode, 'the predicted code is the real one')
    t.ok(Array.isArray(dry.body.checks) && dry.body.checks.length > 0, 'the checks are listed')
    for (const check of dry.body.checks) t.match(check, { name: String, ok: Boolean, detail: String })
    t.equal(dry.body.checks.every((check: { ok: boolean }) => check.ok), dry.body.would_succeed, 'a failed check exactly when it would not succeed')
    t.match(dryRecords[0], { event: 'result', action: ACTION_NAMES[row.action], outcome: 'dry_run', status: 200, dry_run: true, reason: 'dry-run table', policy: { rule: 'all', effect: 'allow' } })
    t.notOk('code' in dryRecords[0]!, 'a dry run\'s audit record has no error code')
  })
}

t.test('dry_run=false is the real call; other values are invalid and reach nothing', async (t) => {
  const h = await startActionHarness(t)
  const real = await h.call('POST', `/v1/rooms/${enc(R.kickPublic)}/members?dry_run=false`, { body: { user_id: U.neverJoined } })
  t.equal(real.status, 200)
  t.same(real.body, { room_id: R.kickPublic, user_id: U.neverJoined })
  const calls = h.homeserver.calls.length
  for (const value of ['1', 'yes', 'TRUE']) {
    const res = await h.call('POST', `/v1/rooms/${enc(R.kickPublic)}/members?dry_run=${value}`, { body: { user_id: U.neverJoined } })
    t.equal(res.status, 400, value)
  }
  t.equal(h.homeserver.calls.length, calls)
})

t.test('a dry run is policy-checked like the real call, and the reads take no dry_run', async (t) => {
  const h = await startActionHarness(t, { policy: false })
  const res = await h.call('DELETE', `/v1/rooms/${enc(R.kickPublic)}/members/${enc('@ben:test.local')}?dry_run=true`)
  t.equal(res.status, 403)
  t.equal(res.body.code, 'insufficient_role')
  t.same(h.homeserver.calls, [])
  const dry = await h.call('POST', `/v1/rooms/${enc(R.kickPublic)}/members?dry_run=true`, { body: { user_id: U.neverJoined } })
  t.equal(dry.status, 200)
  t.match(dry.body, { dry_run: true, would_succeed: true })
  t.match(h.recordsOf(dry.requestId), [{ event: 'result', outcome: 'dry_run', policy: { effect: 'allow' } }])
})
