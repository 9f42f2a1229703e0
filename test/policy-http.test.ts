/**
 * The policy over HTTP (issue 9's "done when"): the gateway with a POLICY_FILE in front of the
 * simulated homeserver (join fixture: #public-test and #private-admin are children of the space
 * #support, #helpdesk publishes the alt aliases #helpdesk-old and #servicedesk). Rooms are
 * matched after resolution, deny wins, bypasses through IDs, aliases, case and encodings fail,
 * and every decision is visible in the answer, the audit, the metrics and /v1/me.
 */
import t, { type Test } from 'tap'
import { RECORDED_ROOMS, SPEC_ROOMS } from '../dev/homeserver/state.js'
import { startHarness, type Harness } from './helpers/harness.js'
import { send, tempPolicy, type Answer } from './helpers/policy-http.js'

const enc = encodeURIComponent
const ROOMS = RECORDED_ROOMS

const RESOLUTION_POLICY = `
rules:
  - name: helpdesk-public-rooms
    roles: [helpdesk]
    actions: [room.join]
    rooms: ["#public-*:test.local"]
    users: ["@alice:test.local", "@bob:test.local"]
  - name: helpdesk-public-reads
    roles: [helpdesk]
    actions: [room.members.read]
    rooms: ["#public-*:test.local"]
  - name: helpdesk-servicedesk
    roles: [helpdesk]
    actions: [room.members.read]
    rooms: ["#servicedesk:test.local"]
  - name: helpdesk-alice-room
    roles: [helpdesk]
    actions: [room.members.read]
    rooms: ["${ROOMS.alicePrivate}"]
  - name: space-agents
    roles: [space-agent]
    actions: [room.join, room.members.read]
    rooms: ["space:#support:test.local"]
  - name: operators
    roles: [operator]
    actions: ["*"]
  - name: deny-private-admin-by-id
    effect: deny
    actions: ["*"]
    rooms: ["${ROOMS.privateAdmin}"]
  - name: deny-joins-by-old-alias
    effect: deny
    actions: [room.join]
    rooms: ["#helpdesk-old:test.local"]
`
/** Every rule name and pattern of RESOLUTION_POLICY: none may appear in a denial the caller did not name it in. */
const SECRETS = [
  'helpdesk-public-rooms', 'helpdesk-public-reads', 'helpdesk-servicedesk', 'helpdesk-alice-room', 'space-agents', 'operators', 'deny-private-admin-by-id', 'deny-joins-by-old-alias',
  '#public-*', '#servicedesk', '#helpdesk-old', 'space:', '#support', ROOMS.alicePrivate, ROOMS.privateAdmin
]

/** A 403 policy_denied whose detail names `names` and reveals no rule or pattern the caller did not name itself. */
function assertDenied (t: Test, answer: Answer, names: RegExp, asked: string, message: string): void {
  t.equal(answer.status, 403, `${message}: status`)
  t.match(answer.headers['content-type'], /^application\/problem\+json/, `${message}: problem+json`)
  t.equal(answer.body?.code, 'policy_denied', `${message}: code`)
  t.match(answer.body?.detail, names, `${message}: the detail names what did not match`)
  const revealed = SECRETS.filter((secret) => !asked.includes(secret) && String(answer.body?.detail).includes(secret))
  t.same(revealed, [], `${message}: the detail reveals no rule name or pattern`)
}

async function gateway (t: Test, yaml: string, env: Record<string, string> = {}): Promise<Harness & { as: (roles: string[], claims?: Record<string, unknown>) => string }> {
  const policy = tempPolicy(t, yaml)
  const h = await startHarness(t, { env: { POLICY_FILE: policy.file, ...env } })
  return Object.assign(h, { as: (roles: string[], claims: Record<string, unknown> = {}) => h.token({ sub: `${roles.join('+') || 'nobody'}-bot`, roles, ...claims }) })
}

const members = async (h: Harness, room: string, token: string) => await send(h.url, 'GET', `/v1/rooms/${room}/members`, token)
const join = async (h: Harness, room: string, token: string, userId = '@alice:test.local') => await send(h.url, 'POST', `/v1/rooms/${room}/members`, token, { user_id: userId })

t.test('alias rules match the alias the caller named, the room ID, and the published alt aliases', async (t) => {
  const h = await gateway(t, RESOLUTION_POLICY)
  const helpdesk = h.as(['helpdesk'])

  const byAlias = await join(h, enc('#public-test:test.local'), helpdesk)
  t.equal(byAlias.status, 200, 'the alias the caller named')
  t.equal(h.homeserver.state.rooms.get(ROOMS.publicTest)?.members.get('@alice:test.local'), 'join')
  const byId = await join(h, enc(ROOMS.publicTest), helpdesk, '@bob:test.local')
  t.equal(byId.status, 200, 'the room ID, matched through its canonical alias')
  t.equal((await members(h, enc(ROOMS.publicTest), helpdesk)).status, 200)

  t.equal((await members(h, enc('#servicedesk:test.local'), helpdesk)).status, 200, 'a published alt alias, named')
  t.equal((await members(h, enc(SPEC_ROOMS.helpdesk), helpdesk)).status, 200, 'the room ID of a room that publishes the alias as an alt alias')
  t.equal((await members(h, enc('#helpdesk:test.local'), helpdesk)).status, 200, 'its canonical alias')

  t.match(h.audit().map((entry) => entry.policy), [
    { rule: 'helpdesk-public-rooms', effect: 'allow' },
    { rule: 'helpdesk-public-rooms', effect: 'allow' },
    { rule: 'helpdesk-public-reads', effect: 'allow' },
    { rule: 'helpdesk-servicedesk', effect: 'allow' },
    { rule: 'helpdesk-servicedesk', effect: 'allow' },
    { rule: 'helpdesk-servicedesk', effect: 'allow' }
  ])
})

t.test('a directory alias the room does not publish does not count: anyone can point one anywhere', async (t) => {
  const h = await gateway(t, RESOLUTION_POLICY)
  const helpdesk = h.as(['helpdesk'])
  // #public-lobby resolves to #private-bob's room, which neither has it as canonical nor as alt alias.
  h.homeserver.state.rooms.get(ROOMS.bobPrivate)?.aliases.push('#public-lobby:test.local')
  const sneaky = await members(h, enc('#public-lobby:test.local'), helpdesk)
  assertDenied(t, sneaky, /room\.members\.read in room/, '#public-lobby:test.local', 'an unpublished alias matching #public-*')
  const sneakyJoin = await join(h, enc('#public-lobby:test.local'), helpdesk)
  assertDenied(t, sneakyJoin, /room\.join in room/, '#public-lobby:test.local', 'the same for a join')
  t.equal(h.homeserver.state.rooms.get(ROOMS.bobPrivate)?.members.get('@alice:test.local'), undefined, 'alice was not joined')
  t.equal(h.homeserver.callsTo('join').length, 0, 'no join reached Synapse')
  t.match(h.audit().at(-1), { outcome: 'denied', code: 'policy_denied', target: { room: '#public-lobby:test.local', room_id: ROOMS.bobPrivate }, policy: { rule: null, effect: 'deny' } })

  // The same alias, once the room publishes it as an alt alias, counts.
  h.homeserver.state.rooms.get(ROOMS.bobPrivate)?.altAliases.push('#public-lobby:test.local')
  const h2 = await gateway(t, RESOLUTION_POLICY)
  h2.homeserver.state.rooms.get(ROOMS.bobPrivate)?.aliases.push('#public-lobby:test.local')
  h2.homeserver.state.rooms.get(ROOMS.bobPrivate)?.altAliases.push('#public-lobby:test.local')
  t.equal((await members(h2, enc('#public-lobby:test.local'), h2.as(['helpdesk']))).status, 200, 'a published alt alias')
})

t.test('an ID rule is not bypassed by an alias, nor an alias rule by the ID', async (t) => {
  const h = await gateway(t, RESOLUTION_POLICY)
  const operator = h.as(['operator'])
  t.equal((await members(h, enc(ROOMS.publicTest), operator)).status, 200, 'operators may do anything elsewhere')

  assertDenied(t, await join(h, enc(ROOMS.privateAdmin), operator), /room\.join in room !tZlyMQQmmQzsJqFLeL:test\.local/, ROOMS.privateAdmin, 'the denied room ID')
  assertDenied(t, await join(h, enc('#private-admin:test.local'), operator), /room\.join in room #private-admin:test\.local/, '#private-admin', 'its canonical alias')
  h.homeserver.state.rooms.get(ROOMS.privateAdmin)?.aliases.push('#innocent:test.local')
  assertDenied(t, await join(h, enc('#innocent:test.local'), operator), /room\.join in room/, '#innocent', 'an unpublished directory alias pointing at it')
  t.equal(h.homeserver.state.rooms.get(ROOMS.privateAdmin)?.members.get('@alice:test.local'), undefined, 'alice was not joined')

  assertDenied(t, await join(h, enc('#helpdesk-old:test.local'), operator), /room\.join in room #helpdesk-old:test\.local/, '#helpdesk-old', 'the denied alias')
  assertDenied(t, await join(h, enc(SPEC_ROOMS.helpdesk), operator), /room\.join in room !simHelpdeskRoom:test\.local/, '', 'the room ID of the room publishing the denied alias')
  assertDenied(t, await join(h, enc('#helpdesk:test.local'), operator), /room\.join in room #helpdesk:test\.local/, '', 'its canonical alias')
  assertDenied(t, await join(h, enc('#servicedesk:test.local'), operator), /room\.join in room #servicedesk:test\.local/, '#servicedesk', 'its other alt alias')
  t.equal(h.homeserver.state.rooms.get(SPEC_ROOMS.helpdesk)?.members.get('@alice:test.local'), undefined, 'alice was not joined')
  t.equal((await members(h, enc(SPEC_ROOMS.helpdesk), operator)).status, 200, 'the deny names room.join only')
  t.match(h.audit().filter((entry) => entry.code === 'policy_denied').map((entry) => entry.policy),
    Array(7).fill({ rule: /^deny-/, effect: 'deny' }), 'the deny rule that decided is audited')
})

t.test('space: patterns match the space\'s children and nothing else; deny wins over allow', async (t) => {
  const h = await gateway(t, RESOLUTION_POLICY)
  const agent = h.as(['space-agent'])
  const child = await join(h, enc('#public-test:test.local'), agent)
  t.equal(child.status, 200, 'a child of #support')
  t.equal((await members(h, enc(ROOMS.publicTest), agent)).status, 200, 'the same child by ID')
  t.equal((await members(h, enc(ROOMS.blocked), agent)).status, 200, 'another child, without any alias')
  assertDenied(t, await members(h, enc('#support:test.local'), agent), /in room #support:test\.local/, '#support', 'the space itself')
  assertDenied(t, await members(h, enc(SPEC_ROOMS.supportSpace), agent), /in room !simSupportSpace/, '', 'the space by ID')
  assertDenied(t, await members(h, enc('#public-bob:test.local'), agent), /in room #public-bob:test\.local/, '', 'a room outside the space')
  assertDenied(t, await members(h, enc('#helpdesk:test.local'), agent), /in room #helpdesk:test\.local/, '', 'another room outside the space')
  const denied = await members(h, enc(ROOMS.privateAdmin), agent)
  assertDenied(t, denied, /in room !tZlyMQQmmQzsJqFLeL/, ROOMS.privateAdmin, 'a child of the space that a deny rule names: deny wins')
  t.match(h.audit().at(-1)?.policy, { rule: 'deny-private-admin-by-id', effect: 'deny' })

  // A child added to the space in Synapse is a child for the policy (once the cached children expire; see the cache test).
  const space = h.homeserver.state.rooms.get(SPEC_ROOMS.supportSpace)
  t.ok(space?.spaceChildren.includes(ROOMS.publicTest), 'the fixture as documented')
})

t.test('no rule matches: 403 policy_denied naming the action, the room or the user, nothing else', async (t) => {
  const h = await gateway(t, RESOLUTION_POLICY)
  const helpdesk = h.as(['helpdesk'])
  const action = await send(h.url, 'DELETE', `/v1/rooms/${enc('#public-test:test.local')}/members/${enc('@alice:test.local')}`, helpdesk)
  assertDenied(t, action, /room\.remove/, '#public-test', 'an action no rule gives the caller')
  t.match(h.audit().at(-1), { action: 'room.remove', code: 'policy_denied' })
  const room = await join(h, enc('#private-bob:test.local'), helpdesk)
  assertDenied(t, room, /room\.join in room #private-bob:test\.local/, '', 'a room no rule gives the caller')
  t.notMatch(room.body.detail, /user/, 'the room, not the user, did not match')
  const user = await join(h, enc('#public-test:test.local'), helpdesk, '@erin:test.local')
  assertDenied(t, user, /room\.join on user @erin:test\.local/, '#public-test', 'a user no rule gives the caller')
  const nobody = await members(h, enc('#public-test:test.local'), h.as(['intern']))
  assertDenied(t, nobody, /room\.members\.read/, '#public-test', 'a caller no rule names at all')
  t.equal(h.homeserver.callsTo('join').length, 0, 'nothing reached Synapse\'s join')
})
