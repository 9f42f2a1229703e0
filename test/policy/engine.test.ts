/**
 * The policy engine as the request pipeline uses it: decide(), permitsAction(),
 * allowedActions() and the explain trace, called directly (a pure module).
 */
import t from 'tap'
import { implicitPolicy, parsePolicy, type PolicyCaller, type PolicyRequest, type RoomFacts, type ActionName } from '../../src/policy/index.js'

const caller = (overrides: Partial<PolicyCaller> = {}): PolicyCaller => ({ sub: 'bot', org: 'acme', roles: ['helpdesk'], claims: {}, ...overrides })
const room = (overrides: Partial<RoomFacts> = {}): RoomFacts => ({ id: '!room:example.com', alias: null, canonical_alias: null, alt_aliases: [], spaces: [], ...overrides })
const request = (action: ActionName, overrides: Partial<PolicyRequest> = {}): PolicyRequest => ({
  caller: caller(),
  action,
  room: action === 'user.read' ? null : room(),
  user: action === 'room.members.read' ? null : { id: '@alice:example.com' },
  ...overrides
})

t.test('a matching deny wins over an allow listed before it', async (t) => {
  const policy = parsePolicy(`
rules:
  - name: helpdesk-anything
    roles: [helpdesk]
    actions: ["*"]
  - name: no-admins
    effect: deny
    actions: [room.join, room.remove]
    users: ["@admin*:example.com"]
`, 'p.yaml')
  t.match(policy.decide(request('room.join')), { allowed: true, rule: 'helpdesk-anything', effect: 'allow' })
  const denied = policy.decide(request('room.join', { user: { id: '@admin2:example.com' } }))
  t.match(denied, { allowed: false, rule: 'no-admins', effect: 'deny' })
  t.match(denied.detail, /user @admin2:example\.com/)
  t.notMatch(denied.detail, /no-admins|helpdesk-anything/, 'the detail never names rules')
  t.match(policy.decide(request('room.promote', { user: { id: '@admin:example.com' } })), { allowed: true }, 'the deny names only join and remove')
})

t.test('the first matching allow decides; nothing matching is a deny with no rule', async (t) => {
  const policy = parsePolicy(`
rules:
  - name: first
    roles: [helpdesk]
    actions: [room.join]
  - name: second
    actions: [room.join]
`, 'p.yaml')
  t.match(policy.decide(request('room.join')), { allowed: true, rule: 'first' })
  t.match(policy.decide(request('room.join', { caller: caller({ roles: [] }) })), { allowed: true, rule: 'second' })
  t.match(policy.decide(request('room.remove')), { allowed: false, rule: null, effect: 'deny', unmatched: 'action' })
})

t.test('when nothing allows, the decision names what did not match for this caller', async (t) => {
  const policy = parsePolicy(`
rules:
  - name: support-rooms
    roles: [helpdesk]
    orgs: [acme]
    actions: [room.join, room.members.read]
    rooms: ["#support-*:example.com"]
  - name: support-users
    roles: [helpdesk]
    actions: [room.remove]
    rooms: ["#support-*:example.com"]
    users: ["@*:example.com"]
  - name: it-only
    roles: [helpdesk]
    actions: [room.promote]
    when: 'caller.claims.department == "it"'
  - name: others-may-read-users
    roles: [hr]
    actions: [user.read]
`, 'p.yaml')
  const support = room({ alias: '#support-1:example.com' })
  const action = policy.decide(request('user.read'))
  t.match(action, { allowed: false, unmatched: 'action' }, 'the hr rule does not apply to a helpdesk caller')
  t.equal(action.detail, 'the policy does not allow you to perform user.read')
  const wrongRoom = policy.decide(request('room.join'))
  t.match(wrongRoom, { unmatched: 'room', detail: 'the policy does not allow room.join in room !room:example.com' })
  t.match(policy.decide(request('room.join', { room: support })), { allowed: true, rule: 'support-rooms' })
  t.match(policy.decide(request('room.join', { room: support, caller: caller({ org: 'other' }) })), { unmatched: 'action' }, 'a rule for another org does not apply')
  t.match(policy.decide(request('room.join', { room: support, caller: caller({ org: null }) })), { unmatched: 'action' }, 'no org claim never matches orgs')
  t.match(policy.decide(request('room.remove', { room: support, user: { id: '@eve:evil.org' } })), { unmatched: 'user', detail: /user @eve:evil\.org in room #support-1:example\.com/ })
  const condition = policy.decide(request('room.promote', { caller: caller({ claims: { department: 'hr' } }) }))
  t.match(condition, { unmatched: 'condition', detail: /condition on your token's claims/ })
  t.match(policy.decide(request('room.promote', { caller: caller({ claims: { department: 'it' } }) })), { allowed: true, rule: 'it-only' })
})

t.test('a constraint on a dimension the action lacks never matches, for allow and deny alike', async (t) => {
  const policy = parsePolicy(`
rules:
  - name: rooms-for-everything
    actions: ["*"]
    rooms: ["!room:example.com"]
  - name: users-for-everything
    actions: ["*"]
    users: ["@*:example.com"]
  - name: deny-users-everywhere
    effect: deny
    actions: ["*"]
    users: ["@*:example.com"]
    roles: [blocked]
`, 'p.yaml')
  t.match(policy.decide(request('user.read')), { allowed: true, rule: 'users-for-everything' }, 'the rooms rule does not match user.read')
  t.match(policy.decide(request('room.members.read')), { allowed: true, rule: 'rooms-for-everything' })
  const blocked = caller({ roles: ['blocked'] })
  t.match(policy.decide(request('room.members.read', { caller: blocked })), { allowed: true }, 'the deny with users does not match an action without a user')
  t.match(policy.decide(request('user.read', { caller: blocked })), { allowed: false, rule: 'deny-users-everywhere' })
  const onlyRooms = parsePolicy('rules:\n  - name: r\n    actions: ["*"]\n    rooms: ["!room:example.com"]\n', 'p.yaml')
  t.match(onlyRooms.decide(request('user.read')), { allowed: false, unmatched: 'room', detail: /in room \(none\)/ })
  const onlyUsers = parsePolicy('rules:\n  - name: u\n    actions: ["*"]\n    users: ["@*:example.com"]\n', 'p.yaml')
  t.match(onlyUsers.decide(request('room.members.read')), { allowed: false, unmatched: 'user' })
})

t.test('patterns are literal, case-sensitive, and * never crosses ":"', async (t) => {
  const policy = parsePolicy(`
rules:
  - name: support
    actions: [room.join]
    rooms: ["#support-*:example.com", "#a.b(c)+[d]$:example.com"]
    users: ["@*:example.com"]
`, 'p.yaml')
  const joins = (alias: string, user = '@alice:example.com'): boolean =>
    policy.decide(request('room.join', { room: room({ alias }), user: { id: user } })).allowed
  t.ok(joins('#support-x:example.com'))
  t.ok(joins('#support-:example.com'), '* matches the empty string')
  t.notOk(joins('#support-x:example.com.evil'), 'the server is matched to its end')
  t.notOk(joins('#support-a:b:example.com'), '* does not match ":"')
  t.notOk(joins('#Support-x:example.com'), 'case-sensitive')
  t.notOk(joins('#support-x:EXAMPLE.COM'), 'case-sensitive server')
  t.notOk(joins('#xsupport-x:example.com'), 'anchored at the start')
  t.ok(joins('#a.b(c)+[d]$:example.com'), 'metacharacters are literal')
  t.notOk(joins('#aXb(c)+[d]$:example.com'), '. is not a wildcard')
  t.notOk(joins('#a.bccc[d]$:example.com'), '( ) + are not a group')
  t.notOk(joins('#support-x:example.com', '@alice:evil.org'), 'users outside the server')
  t.notOk(joins('#support-x:example.com', '@alice:example.com:evil.org'), 'a user * never crosses ":"')
  const exact = parsePolicy('rules:\n  - name: r\n    actions: [room.join]\n    rooms: ["!AbC:example.com"]\n', 'p.yaml')
  t.ok(exact.decide(request('room.join', { room: room({ id: '!AbC:example.com' }) })).allowed)
  t.notOk(exact.decide(request('room.join', { room: room({ id: '!abc:example.com' }) })).allowed, 'room IDs are case-sensitive')
})

t.test('room facts: aliases, canonical and alt aliases, space membership cannot be sidestepped', async (t) => {
  const policy = parsePolicy(`
rules:
  - name: everything
    actions: ["*"]
  - name: secret-room
    effect: deny
    actions: ["*"]
    rooms: ["!secret:example.com", "#admins:example.com", "space:#restricted:example.com"]
`, 'p.yaml')
  const decide = (facts: Partial<RoomFacts>) => policy.decide(request('room.join', { room: room(facts) }))
  t.match(decide({ id: '!secret:example.com', alias: '#innocent:example.com' }), { allowed: false, rule: 'secret-room', detail: /room #innocent:example\.com/ }, 'an alias that resolves to a denied room ID')
  t.match(decide({ canonical_alias: '#admins:example.com' }), { allowed: false }, 'a room ID whose canonical alias is denied')
  t.match(decide({ alt_aliases: ['#other:example.com', '#admins:example.com'] }), { allowed: false }, 'an alt alias')
  t.match(decide({ alias: '#admins:example.com' }), { allowed: false }, 'the alias the caller named')
  t.match(decide({ spaces: ['space:#restricted:example.com'] }), { allowed: false }, 'a child of a denied space')
  t.match(decide({ spaces: ['space:#other:example.com'], alias: '#fine:example.com', canonical_alias: '#fine:example.com' }), { allowed: true })
  t.same(policy.spaceRefs, ['space:#restricted:example.com'])
  t.equal(policy.needsRoomAliases, true)
})

t.test('needsRoomAliases and spaceRefs tell the pipeline which room facts to fetch', async (t) => {
  const plain = parsePolicy('rules:\n  - name: r\n    actions: ["*"]\n    rooms: ["!a:example.com", "space:!s:example.com", "space:!s:example.com"]\n  - name: s\n    actions: ["*"]\n    rooms: ["space:#t:example.com"]\n', 'p.yaml')
  t.equal(plain.needsRoomAliases, false)
  t.same(plain.spaceRefs, ['space:!s:example.com', 'space:#t:example.com'], 'distinct, as written')
  const withWhen = parsePolicy('rules:\n  - name: r\n    actions: ["*"]\n    when: room != null\n', 'p.yaml')
  t.equal(withWhen.needsRoomAliases, true, 'a condition may read the canonical alias')
  t.equal(withWhen.ruleCount, 1)
  t.equal(withWhen.implicit, false)
  t.equal(withWhen.source, 'p.yaml')
})

t.test('when: evaluated over caller, action, room and user; failures do not match and are reported once per rule', async (t) => {
  const reported: Array<[string, string]> = []
  const policy = parsePolicy(`
rules:
  - name: claims
    actions: [room.join]
    when: 'caller.claims.department == "it" && "oncall" in caller.roles'
  - name: room-and-user
    actions: [room.remove]
    when: 'action == "room.remove" && room.canonical_alias == "#ops:example.com" && user.id.endsWith(":example.com") && caller.sub == "bot" && caller.org == "acme"'
  - name: not-bool
    actions: [room.promote]
    when: 'caller.claims.level'
  - name: null-room
    actions: [user.read]
    when: 'room == null && user.id == "@alice:example.com"'
`, 'p.yaml', { onEvaluationError: (rule, error) => reported.push([rule, error.message]) })
  const it = caller({ roles: ['oncall'], claims: { department: 'it' } })
  t.ok(policy.decide(request('room.join', { caller: it })).allowed)
  t.notOk(policy.decide(request('room.join', { caller: caller({ roles: ['oncall'], claims: { department: 'hr' } }) })).allowed)
  t.same(reported, [], 'a false condition is no error')
  t.notOk(policy.decide(request('room.join', { caller: caller({ roles: ['oncall'] }) })).allowed, 'a missing claim does not match')
  t.notOk(policy.decide(request('room.join', { caller: caller({ roles: ['oncall'], claims: { other: 1 } }) })).allowed)
  t.equal(reported.length, 1, 'reported once per rule')
  t.match(reported[0], ['claims', /department/])
  t.ok(policy.decide(request('room.remove', { room: room({ canonical_alias: '#ops:example.com' }) })).allowed)
  t.notOk(policy.decide(request('room.remove', { room: room({ canonical_alias: null }) })).allowed)
  t.match(policy.decide(request('room.promote', { caller: caller({ claims: { level: 3 } }) })), { allowed: false, unmatched: 'condition' })
  t.match(reported.at(-1), ['not-bool', 'gave a double, not a bool'])
  t.ok(policy.decide(request('user.read')).allowed, 'room is null for an action without one')
  const silent = parsePolicy('rules:\n  - name: r\n    actions: ["*"]\n    when: caller.claims.x == 1\n', 'p.yaml')
  t.notOk(silent.decide(request('room.join')).allowed, 'without a reporter, a failure still does not match')
})

t.test('when: a deep or large token is evaluated without trouble', async (t) => {
  const policy = parsePolicy(`
rules:
  - name: groups
    actions: [room.join]
    when: 'caller.claims.groups.exists(g, g == "ops")'
`, 'p.yaml')
  let deep: Record<string, unknown> = {}
  for (let i = 0; i < 1000; i++) deep = { deep }
  const groups = Array.from({ length: 4000 }, (_, i) => `g${i}`)
  t.notOk(policy.decide(request('room.join', { caller: caller({ claims: { groups, deep } }) })).allowed)
  t.ok(policy.decide(request('room.join', { caller: caller({ claims: { groups: [...groups, 'ops'] } }) })).allowed)
})

t.test('permitsAction: could any allow rule let this caller do this action somewhere', async (t) => {
  const policy = parsePolicy(`
rules:
  - name: helpdesk-rooms
    roles: [helpdesk]
    orgs: [acme]
    actions: ["room.*"]
    rooms: ["#support-*:example.com"]
    when: 'caller.claims.department == "it"'
  - name: deny-everything
    effect: deny
    actions: ["*"]
`, 'p.yaml')
  t.equal(policy.permitsAction(caller(), 'room.join'), true, 'rooms and when are not considered')
  t.equal(policy.permitsAction(caller(), 'room.members.read'), true, 'room.* covers room.members.read')
  t.equal(policy.permitsAction(caller(), 'user.read'), false)
  t.equal(policy.permitsAction(caller({ org: 'other' }), 'room.join'), false)
  t.equal(policy.permitsAction(caller({ roles: ['viewer'] }), 'room.join'), false)
})

t.test('allowedActions: what /v1/me lists', async (t) => {
  const policy = parsePolicy(`
rules:
  - name: helpdesk
    roles: [helpdesk]
    actions: [room.join, room.remove, user.read]
    rooms: ["!only:example.com"]
  - name: reads
    actions: [room.members.read, user.read]
    when: caller.claims.reads == true
  - name: no-remove-for-trainees
    effect: deny
    roles: [trainee]
    actions: [room.remove]
  - name: conditional-deny
    effect: deny
    actions: [room.join]
    users: ["@admin:example.com"]
`, 'p.yaml')
  t.same(policy.allowedActions(caller()), ['room.join', 'room.remove', 'room.members.read', 'user.read'], 'room, user and when constraints ignored')
  t.same(policy.allowedActions(caller({ roles: ['helpdesk', 'trainee'] })), ['room.join', 'room.members.read', 'user.read'], 'an unconditional deny takes its action away')
  t.same(policy.allowedActions(caller({ roles: [] })), ['room.members.read', 'user.read'])
})

t.test('the implicit policy is version 1: JOIN_ROLES may join anywhere, nothing else', async (t) => {
  const policy = implicitPolicy(['matrix-admin', 'joiner'])
  t.equal(policy.implicit, true)
  t.equal(policy.source, 'implicit (JOIN_ROLES)')
  t.equal(policy.ruleCount, 1)
  t.equal(policy.needsRoomAliases, false)
  t.same(policy.spaceRefs, [])
  const admin = caller({ roles: ['joiner'], org: null })
  t.equal(policy.permitsAction(admin, 'room.join'), true)
  t.equal(policy.permitsAction(caller(), 'room.join'), false, 'a caller without a JOIN_ROLES role')
  for (const action of ['room.remove', 'room.members.read', 'room.promote', 'user.read'] as const) {
    t.equal(policy.permitsAction(admin, action), false, action)
  }
  t.match(policy.decide(request('room.join', { caller: admin })), { allowed: true, rule: 'join-roles', effect: 'allow' })
  t.match(policy.decide(request('room.remove', { caller: admin })), { allowed: false, rule: null, unmatched: 'action' })
  t.same(policy.allowedActions(admin), ['room.join'])
  t.same(policy.allowedActions(caller()), [])
})

t.test('an action the engine does not know is denied, never an exception', async (t) => {
  const policy = parsePolicy('rules:\n  - name: r\n    actions: ["*"]\n', 'p.yaml')
  const unknown = 'room.kick' as ActionName
  t.match(policy.decide(request(unknown)), { allowed: false, unmatched: 'action' })
  t.equal(policy.permitsAction(caller(), unknown), false)
})

t.test('explain traces every dimension of every rule', async (t) => {
  const policy = parsePolicy(`
rules:
  - name: support
    roles: [helpdesk]
    orgs: [acme]
    actions: [room.join]
    rooms: ["#support-*:example.com"]
    users: ["@*:example.com"]
    when: 'caller.claims.department == "it"'
  - name: reads
    actions: [user.read]
    rooms: ["!a:example.com"]
`, 'p.yaml')
  const allowed = policy.explain(request('room.join', { room: room({ alias: '#support-1:example.com' }), caller: caller({ claims: { department: 'it' } }) }))
  t.match(allowed.decision, { allowed: true, rule: 'support' })
  t.match(allowed.rules[0], { rule: 'support', effect: 'allow', roles: 'yes', orgs: 'yes', action: 'yes', room: 'yes', user: 'yes', when: 'yes', matched: true })
  t.match(allowed.rules[1], { rule: 'reads', roles: 'any', orgs: 'any', action: 'no', room: 'no', user: 'any', when: 'any', matched: false })
  const denied = policy.explain(request('user.read', { caller: caller({ org: null, roles: [] }) }))
  t.match(denied.rules[0], { roles: 'no', orgs: 'no', action: 'no', room: 'absent', user: 'yes', when: 'error', matched: false })
  t.match(denied.rules[0]?.whenError, /department/)
  t.match(denied.rules[1], { action: 'yes', room: 'absent', matched: false })
  t.match(denied.decision, { allowed: false, unmatched: 'room' })
})

t.test('deny conditions fail closed: a deny whose `when` cannot be evaluated matches; an allow\'s does not', async (t) => {
  const reported: Array<[string, string]> = []
  const policy = parsePolicy(`
rules:
  - name: everyone-joins
    actions: [room.join, room.members.read]
  - name: low-clearance
    effect: deny
    actions: [room.join]
    when: 'caller.claims.clearance < 3'
  - name: readers-need-clearance
    effect: deny
    actions: [room.members.read]
    when: 'caller.claims.reader'
`, 'p.yaml', { onEvaluationError: (rule, _error, effect) => reported.push([rule, effect]) })
  const join = (claims: Record<string, unknown>) => policy.decide(request('room.join', { caller: caller({ claims }) }))
  t.match(join({ clearance: 1 }), { allowed: false, rule: 'low-clearance', effect: 'deny' }, 'a number below 3')
  t.match(join({ clearance: 5 }), { allowed: true, rule: 'everyone-joins' }, 'a number above')
  t.match(join({ clearance: '1' }), { allowed: false, rule: 'low-clearance', effect: 'deny' }, 'a string where a number is compared')
  t.match(join({}), { allowed: false, rule: 'low-clearance', effect: 'deny', detail: /a condition on your token's claims is not met/ }, 'the claim missing')
  t.match(join({ clearance: null }), { allowed: false, rule: 'low-clearance' }, 'null')
  t.match(policy.decide(request('room.members.read', { caller: caller({ claims: { reader: 'yes' } }) })), { allowed: false, rule: 'readers-need-clearance' }, 'a condition that gives no bool')
  t.match(policy.decide(request('room.members.read', { caller: caller({ claims: { reader: false } }) })), { allowed: true })
  t.same(reported, [['low-clearance', 'deny'], ['readers-need-clearance', 'deny']], 'reported once per rule, however often it fails, with the rule\'s effect')

  const traced = policy.explain(request('room.join', { caller: caller({ claims: { clearance: '1' } }) }))
  t.match(traced.rules[1], { rule: 'low-clearance', effect: 'deny', when: 'error', whenError: /no such overload/, matched: true }, 'explain shows the failed deny condition as matching, with the reason')
  t.match(traced.decision, { allowed: false, rule: 'low-clearance' })

  const allow = parsePolicy('rules:\n  - name: cleared\n    actions: [room.join]\n    when: caller.claims.clearance >= 3\n', 'p.yaml')
  t.match(allow.decide(request('room.join', { caller: caller({ claims: { clearance: '5' } }) })), { allowed: false, rule: null, unmatched: 'condition' }, 'an allow rule that fails to evaluate still does not match')
  t.match(allow.explain(request('room.join')).rules[0], { when: 'error', matched: false })
})
