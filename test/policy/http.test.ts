/**
 * The policy over HTTP (issue 9's "done when"): the gateway with a POLICY_FILE in front of the
 * simulated homeserver (join fixture: #public-test and #private-admin are children of the space
 * #support, #helpdesk publishes the alt aliases #helpdesk-old and #servicedesk). Rooms are
 * matched after resolution, deny wins, bypasses through IDs, aliases, case and encodings fail,
 * and every decision is visible in the answer, the audit, the metrics and /v1/me.
 */
import t, { type Test } from 'tap'
import { RECORDED_ROOMS, SPEC_ROOMS } from '../../dev/homeserver/state.js'
import { startHarness, type Harness } from '../helpers/harness.js'
import { send, tempPolicy, type Answer } from '../helpers/policy-http.js'

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

const BYPASS_POLICY = `
rules:
  - name: operators
    roles: [operator]
    actions: ["*"]
  - name: helpdesk-public
    roles: [helpdesk]
    actions: [room.join, room.members.read]
    rooms: ["#public-*:test.local"]
  - name: keep-out-of-private-admin
    effect: deny
    actions: ["*"]
    rooms: ["#private-admin:test.local"]
  - name: keep-out-of-alice-room
    effect: deny
    actions: ["*"]
    rooms: ["${ROOMS.alicePrivate}"]
  - name: never-touch-admins
    effect: deny
    actions: ["*"]
    users: ["@admin*:test.local"]
`

/** Not let through: refused before the policy (400/404), or by it (403); never a 2xx, never a 500. */
function refused (t: Test, answer: Answer, code: string, message: string): void {
  t.equal(answer.body?.code, code, `${message}: ${code} (${answer.status} ${String(answer.body?.detail)})`)
  t.ok(answer.status >= 400 && answer.status < 500, `${message}: a 4xx`)
}

t.test('bypass attempts on rooms: case, encodings, trailing characters, look-alikes, wildcards', async (t) => {
  const h = await gateway(t, BYPASS_POLICY)
  const operator = h.as(['operator'])
  const helpdesk = h.as(['helpdesk'])
  const privateAdmin = () => h.homeserver.state.rooms.get(ROOMS.privateAdmin)?.members.get('@alice:test.local')
  t.equal((await join(h, enc('#public-test:test.local'), operator)).status, 200, 'the operator joins elsewhere')

  refused(t, await join(h, enc('#PRIVATE-ADMIN:test.local'), operator), 'room_not_found', 'another case is another alias (Synapse: none)')
  refused(t, await join(h, enc('#private-admin:TEST.LOCAL'), operator), 'room_not_local', 'the server name in another case')
  // Were the directory to answer for another case, the decision still follows the room's own aliases.
  h.homeserver.state.rooms.get(ROOMS.privateAdmin)?.aliases.push('#PRIVATE-ADMIN:test.local')
  refused(t, await join(h, enc('#PRIVATE-ADMIN:test.local'), operator), 'policy_denied', 'a case variant resolving to the denied room')
  refused(t, await join(h, enc('#Public-Test:test.local'), helpdesk), 'policy_denied', 'helpdesk: an alias in another case (unknown, and outside the rule: not told it is unknown)')

  refused(t, await join(h, '%2523private-admin:test.local', operator), 'invalid_room', 'double-encoded #')
  refused(t, await join(h, '%23private-admin%253Atest.local', operator), 'invalid_room', 'double-encoded :')
  refused(t, await join(h, '%23private-admin%3Atest.local', operator), 'policy_denied', 'encoded : is the same alias')
  refused(t, await join(h, '%23private%2Dadmin%3atest%2elocal', operator), 'policy_denied', 'every character encoded, lower-case hex')
  refused(t, await join(h, '#private-admin:test.local', operator), 'not_found', 'an unencoded # (a URL fragment: the path is cut)')

  refused(t, await join(h, enc('#private-admin:test.local.'), operator), 'room_not_local', 'a trailing dot on the server name')
  refused(t, await join(h, enc('#private-admin:test.local '), operator), 'invalid_room', 'a trailing space')
  refused(t, await join(h, enc(' #private-admin:test.local'), operator), 'invalid_room', 'a leading space')
  refused(t, await join(h, enc('#private-admin :test.local'), operator), 'invalid_room', 'a space before the colon')
  refused(t, await join(h, enc(`${ROOMS.alicePrivate} `), operator), 'invalid_room', 'a room ID with a trailing space')
  const dotted = await join(h, enc(`${ROOMS.alicePrivate}.`), operator)
  t.not(dotted.status, 200, `a room ID with a trailing dot is another (unknown) room: ${dotted.status} ${String(dotted.body?.code)}`)
  t.equal(h.homeserver.state.rooms.get(ROOMS.alicePrivate)?.members.get('@alice:test.local'), 'join', 'alice\'s room as before')
  refused(t, await join(h, enc(ROOMS.alicePrivate), operator), 'policy_denied', 'the denied room ID itself')

  for (const [char, name] of [['\u200B', 'zero-width space'], ['\u2060', 'word joiner'], ['\uFEFF', 'BOM'], ['\u202E', 'right-to-left override'], ['\u00AD', 'soft hyphen'], ['\u200D', 'zero-width joiner']]) {
    refused(t, await join(h, enc(`#private-admin${char}:test.local`), operator), 'invalid_room', `U+${(char as string).codePointAt(0)?.toString(16).toUpperCase()} (${name as string}) in the alias`)
    refused(t, await join(h, enc(`#public-test${char}:test.local`), helpdesk), 'invalid_room', `${name as string} in an allowed alias`)
  }
  refused(t, await join(h, enc('#priv\u0430te-admin:test.local'), operator), 'room_not_found', 'a Cyrillic a: another alias')
  refused(t, await join(h, enc('\uFF03private-admin:test.local'), operator), 'invalid_room', 'a fullwidth #')
  refused(t, await join(h, enc('#private-admin\uFF1Atest.local'), operator), 'invalid_room', 'a fullwidth colon')

  refused(t, await members(h, enc('#*:test.local'), helpdesk), 'policy_denied', 'a wildcard in the caller\'s alias is a literal * (unknown, and outside the rule)')
  refused(t, await members(h, enc('#public-*:test.local'), helpdesk), 'room_not_found', 'the rule\'s own pattern as the alias')
  h.homeserver.state.rooms.get(ROOMS.bobPrivate)?.aliases.push('#public-*:test.local')
  refused(t, await members(h, enc('#public-*:test.local'), helpdesk), 'policy_denied', 'the pattern as an unpublished directory alias')
  refused(t, await members(h, enc('!*:test.local'), helpdesk), 'policy_denied', 'a wildcard room ID is just an unknown ID')
  t.equal(privateAdmin(), undefined, 'alice never reached #private-admin')
  t.notOk(h.audit().some((entry) => entry.status >= 500), 'no 5xx')
})

t.test('bypass attempts on users: a deny on @admin*:test.local', async (t) => {
  const h = await gateway(t, BYPASS_POLICY)
  const operator = h.as(['operator'])
  const remove = async (user: string) => await send(h.url, 'DELETE', `/v1/rooms/${enc('#public-test:test.local')}/members/${user}`, operator)
  const adminJoined = () => h.homeserver.state.rooms.get(ROOMS.publicTest)?.members.get('@admin:test.local')

  refused(t, await remove(enc('@admin:test.local')), 'policy_denied', 'the admin')
  t.match(h.audit().at(-1), { action: 'room.remove', target: { user_id: '@admin:test.local' }, policy: { rule: 'never-touch-admins', effect: 'deny' } })
  refused(t, await remove('@admin:test.local'), 'policy_denied', 'unencoded @ and :')
  refused(t, await remove('%40admin%3Atest.local'), 'policy_denied', 'encoded @ and :')
  refused(t, await remove('%40%61dmin%3atest.local'), 'policy_denied', 'an encoded letter, lower-case hex')
  refused(t, await remove(enc('@admin-backup:test.local')), 'policy_denied', 'another account the wildcard names')
  refused(t, await remove('%2540admin%253Atest.local'), 'invalid_user_id', 'double encoding')
  refused(t, await remove(enc('@admin:test.local.')), 'user_not_local', 'a trailing dot on the server name')
  refused(t, await remove(enc('@admin:test.local ')), 'invalid_user_id', 'a trailing space')
  refused(t, await remove(enc('@\u0430dmin:test.local')), 'invalid_user_id', 'a Cyrillic a')
  refused(t, await remove(enc('@admin\u200B:test.local')), 'invalid_user_id', 'a zero-width space')
  // User IDs are case-sensitive: @ADMIN is another (unknown) account, and removing it touches no one.
  const upper = await remove(enc('@ADMIN:test.local'))
  t.ok(upper.status < 500, `@ADMIN: ${upper.status} ${String(upper.body?.code)}`)
  t.equal(adminJoined(), 'join', 'the admin is still in the room')
  t.equal(h.homeserver.callsTo('kick').filter((call) => call.body.includes('@admin:test.local')).length, 0, 'no kick of @admin reached Synapse')

  const joinAdmin = await send(h.url, 'POST', `/v1/rooms/${enc('#public-test:test.local')}/members`, operator, { user_id: '@admin:test.local' })
  refused(t, joinAdmin, 'policy_denied', 'a join of the admin')
  const escaped = await h.join(enc('#public-test:test.local'), undefined, { token: operator, rawBody: '{"user_id": "\\u0040admin\\u003atest.local"}' })
  refused(t, escaped as Answer, 'policy_denied', 'JSON escapes in the body')
  const promote = await send(h.url, 'POST', `/v1/rooms/${enc('#public-test:test.local')}/admins`, operator, { user_id: '@admin:test.local' })
  refused(t, promote, 'policy_denied', 'a promotion of the admin')
  const read = await send(h.url, 'GET', `/v1/users/${enc('@admin:test.local')}`, operator)
  refused(t, read, 'policy_denied', 'a lookup of the admin')
  t.equal((await send(h.url, 'GET', `/v1/users/${enc('@alice:test.local')}`, operator)).status, 200, 'other users are fine')
})

const CONDITION_POLICY = `
rules:
  - name: it-department-joins
    actions: [room.join]
    when: 'caller.claims.department == "it"'
  - name: senior-reads
    actions: [room.members.read]
    when: 'caller.claims.level > 3'
`

t.test('when: a condition on a claim allows or denies; one that fails to evaluate does not match and is logged once', async (t) => {
  const h = await gateway(t, CONDITION_POLICY)
  t.equal((await join(h, enc('#public-test:test.local'), h.as([], { department: 'it' }))).status, 200, 'department it')
  t.match(h.audit().at(-1)?.policy, { rule: 'it-department-joins', effect: 'allow' })
  const hr = await join(h, enc('#public-test:test.local'), h.as([], { department: 'hr' }), '@bob:test.local')
  t.equal(hr.body?.code, 'policy_denied', 'department hr')
  t.match(hr.body?.detail, /a condition on your token's claims is not met/)
  t.notMatch(hr.body?.detail, /department|it-department/, 'the condition itself is not revealed')

  t.equal((await members(h, enc(ROOMS.publicTest), h.as([], { level: 5 }))).status, 200, 'level 5 > 3')
  t.equal((await members(h, enc(ROOMS.publicTest), h.as([], { level: 2 }))).body?.code, 'policy_denied', 'level 2')
  for (const claims of [{}, { level: 'high' }, {}]) {
    const failing = await members(h, enc(ROOMS.publicTest), h.as([], claims))
    t.equal(failing.body?.code, 'policy_denied', `a condition that fails to evaluate (${JSON.stringify(claims)}) does not match`)
  }
  t.equal((await join(h, enc('#public-test:test.local'), h.as([]), '@bob:test.local')).body?.code, 'policy_denied', 'no department claim: no match')
  const warnings = h.logs().split('\n').filter((line) => line.includes('a policy condition failed to evaluate'))
  t.equal(warnings.filter((line) => line.includes('"rule":"senior-reads"')).length, 1, 'logged once for the rule, however often it fails')
  t.equal(warnings.filter((line) => line.includes('"rule":"it-department-joins"')).length, 1, 'and once for the other rule')
  t.match(warnings[0], /"level":40/, 'at warn')
})

t.test('a deny condition that cannot be evaluated denies: a missing claim or a string where a number is compared', async (t) => {
  const h = await gateway(t, `
rules:
  - name: everyone-joins
    actions: [room.join]
  - name: low-clearance
    effect: deny
    actions: [room.join]
    when: 'caller.claims.clearance < 3'
`)
  const attempt = async (claims: Record<string, unknown>) => await join(h, enc('#public-test:test.local'), h.as([], claims))
  t.equal((await attempt({ clearance: 5 })).status, 200, 'clearance 5')
  for (const claims of [{ clearance: 1 }, { clearance: '1' }, {}, { clearance: [1] }]) {
    const denied = await attempt(claims)
    t.equal(denied.status, 403, `${JSON.stringify(claims)} is denied`)
    t.equal(denied.body?.code, 'policy_denied')
    t.match(h.audit().at(-1)?.policy, { rule: 'low-clearance', effect: 'deny' }, `${JSON.stringify(claims)}: the deny rule decided`)
  }
  const warnings = h.logs().split('\n').filter((line) => line.includes('a policy condition failed to evaluate'))
  t.equal(warnings.filter((line) => line.includes('"rule":"low-clearance"')).length, 1, 'the failure is logged once for the rule')
})

t.test('decisions are visible: audit result and intent, the metric, and /v1/me', async (t) => {
  const h = await gateway(t, BYPASS_POLICY)
  const operator = h.as(['operator'])
  const helpdesk = h.as(['helpdesk'])
  await join(h, enc('#public-test:test.local'), operator)
  await join(h, enc('#public-test:test.local'), helpdesk, '@bob:test.local')
  await join(h, enc('#private-admin:test.local'), operator)
  await join(h, enc('#private-bob:test.local'), helpdesk)
  await send(h.url, 'DELETE', `/v1/rooms/${enc('#public-test:test.local')}/members/${enc('@bob:test.local')}`, helpdesk)

  const results = h.audit()
  t.same(results.map((entry) => [entry.action, entry.status, entry.policy]), [
    ['room.join', 200, { rule: 'operators', effect: 'allow' }],
    ['room.join', 200, { rule: 'helpdesk-public', effect: 'allow' }],
    ['room.join', 403, { rule: 'keep-out-of-private-admin', effect: 'deny' }],
    ['room.join', 403, { rule: null, effect: 'deny' }],
    ['room.remove', 403, { rule: null, effect: 'deny' }]
  ], 'every result names the deciding rule and effect')
  const intents = h.auditRecords().filter((record) => record.event === 'intent')
  t.same(intents.map((record) => record.policy), [{ rule: 'operators', effect: 'allow' }, { rule: 'helpdesk-public', effect: 'allow' }], 'so does every intent')

  const metrics = await (await send(h.url, 'GET', '/metrics', null)).text
  t.match(metrics, /gateway_policy_decisions_total\{rule="operators",effect="allow"\} 1\n/)
  t.match(metrics, /gateway_policy_decisions_total\{rule="helpdesk-public",effect="allow"\} 1\n/)
  t.match(metrics, /gateway_policy_decisions_total\{rule="keep-out-of-private-admin",effect="deny"\} 1\n/)
  t.match(metrics, /gateway_policy_decisions_total\{rule="none",effect="deny"\} 2\n/, 'denials without a rule, including the action refused before the room is resolved')

  const me = async (token: string) => (await send(h.url, 'GET', '/v1/me', token)).body
  t.match(await me(operator), { sub: 'operator-bot', roles: ['operator'], actions: ['room.join', 'room.remove', 'room.members.read', 'room.promote', 'user.read', 'room.adopt'] })
  t.match(await me(helpdesk), { actions: ['room.join', 'room.members.read'] })
  t.match(await me(h.as(['intern'])), { actions: [] })
  t.match(await me(h.as(['helpdesk', 'operator'])), { actions: ['room.join', 'room.remove', 'room.members.read', 'room.promote', 'user.read', 'room.adopt'] })
})

t.test('/v1/me leaves out what an unconditional deny takes away, and keys on orgs', async (t) => {
  const h = await gateway(t, `
rules:
  - name: acme-staff
    orgs: [acme]
    actions: ["*"]
  - name: nobody-promotes
    effect: deny
    actions: [room.promote]
  - name: no-removals-for-contractors
    effect: deny
    roles: [contractor]
    actions: [room.remove]
`)
  const me = async (claims: Record<string, unknown>) => (await send(h.url, 'GET', '/v1/me', h.token(claims))).body?.actions
  const accountActions = ['user.lock', 'user.unlock', 'user.suspend', 'user.unsuspend', 'user.logout', 'user.password.reset', 'user.deactivate']
  t.same(await me({ org: 'acme', roles: [] }), ['room.join', 'room.remove', 'room.members.read', 'user.read', 'room.adopt', ...accountActions])
  t.same(await me({ org: 'acme', roles: ['contractor'] }), ['room.join', 'room.members.read', 'user.read', 'room.adopt', ...accountActions])
  t.same(await me({ org: 'example', roles: ['matrix-admin'] }), [])
  const promote = await send(h.url, 'POST', `/v1/rooms/${enc(ROOMS.publicTest)}/admins`, h.token({ org: 'acme' }), { user_id: '@alice:test.local' })
  t.equal(promote.body?.code, 'policy_denied')
  t.match(promote.body?.detail, /room\.promote/)
  t.notMatch(promote.body?.detail, /nobody-promotes/)
})

t.test('without POLICY_FILE: version 1 exactly (JOIN_ROLES joins, everything else insufficient_role)', async (t) => {
  const h = await startHarness(t)
  const admin = h.token()
  const viewer = h.token({ roles: ['matrix-viewer'] })
  const noRole = await join(h, enc(ROOMS.publicTest), viewer)
  t.equal(noRole.status, 403)
  t.equal(noRole.body?.code, 'insufficient_role')
  t.equal(noRole.body?.detail, 'This action needs one of the roles: matrix-admin.')
  t.equal(noRole.headers['www-authenticate'], 'Bearer error="insufficient_scope"')
  t.equal((await join(h, enc(ROOMS.publicTest), admin)).status, 200, 'JOIN_ROLES joins anywhere')
  t.equal((await join(h, enc('#private-admin:test.local'), admin)).status, 200)
  for (const [method, path, body] of [
    ['DELETE', `/v1/rooms/${enc(ROOMS.publicTest)}/members/${enc('@alice:test.local')}`, undefined],
    ['GET', `/v1/rooms/${enc(ROOMS.publicTest)}/members`, undefined],
    ['POST', `/v1/rooms/${enc(ROOMS.publicTest)}/admins`, { user_id: '@alice:test.local' }],
    ['GET', `/v1/users/${enc('@alice:test.local')}`, undefined]
  ] as const) {
    const answer = await send(h.url, method, path, admin, body)
    t.equal(answer.status, 403, `${method} ${path}`)
    t.equal(answer.body?.code, 'insufficient_role', `${method} ${path}: insufficient_role, not policy_denied`)
    t.equal(answer.headers['www-authenticate'], 'Bearer error="insufficient_scope"')
  }
  t.equal(h.homeserver.state.rooms.get(ROOMS.publicTest)?.members.get('@alice:test.local'), 'join', 'nothing was removed')
  t.match((await send(h.url, 'GET', '/v1/me', admin)).body, { actions: ['room.join'] })
  t.match((await send(h.url, 'GET', '/v1/me', viewer)).body, { actions: [] })
  t.match(h.audit().filter((entry) => entry.status === 200).map((entry) => entry.policy), [{ rule: 'join-roles', effect: 'allow' }, { rule: 'join-roles', effect: 'allow' }])

  const custom = await startHarness(t, { env: { JOIN_ROLES: 'helpdesk, ops' } })
  t.equal((await join(custom, enc(ROOMS.publicTest), custom.token({ roles: ['ops'] }))).status, 200, 'another JOIN_ROLES')
  const old = await join(custom, enc(ROOMS.publicTest), custom.token(), '@bob:test.local')
  t.equal(old.body?.code, 'insufficient_role')
  t.equal(old.body?.detail, 'This action needs one of the roles: helpdesk, ops.')
})
