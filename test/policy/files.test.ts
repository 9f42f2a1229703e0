/**
 * Policy files: every example loads and decides as the README says, and every kind of bad
 * file is refused with one line naming the file, the rule and the problem.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { loadPolicyFile, parsePolicy, PolicyError, type PolicyCaller, type PolicyRequest, type RoomFacts, type ActionName } from '../../src/policy/index.js'

const caller = (roles: string[], overrides: Partial<PolicyCaller> = {}): PolicyCaller => ({ sub: 'bot', org: 'acme', roles, claims: {}, ...overrides })
const room = (facts: Partial<RoomFacts>): RoomFacts => ({ id: '!r:example.com', alias: null, canonical_alias: null, alt_aliases: [], spaces: [], ...facts })
const ask = (action: ActionName, who: PolicyCaller, where: Partial<RoomFacts> | null, user: string | null): PolicyRequest =>
  ({ caller: who, action, room: where === null ? null : room(where), user: user === null ? null : { id: user } })

t.test('example (1): helpdesk in the support space, never on admins', async (t) => {
  const policy = loadPolicyFile('examples/policies/helpdesk-support-space.yaml')
  t.same(policy.spaceRefs, ['space:#support:example.com'])
  const helpdesk = caller(['helpdesk'])
  const support = { spaces: ['space:#support:example.com'] }
  t.match(policy.decide(ask('room.join', helpdesk, support, '@alice:example.com')), { allowed: true, rule: 'helpdesk-support-space' })
  t.match(policy.decide(ask('room.remove', helpdesk, support, '@alice:example.com')), { allowed: true })
  t.match(policy.decide(ask('room.join', helpdesk, {}, '@alice:example.com')), { allowed: false, unmatched: 'room' }, 'a room outside the space')
  t.match(policy.decide(ask('room.join', helpdesk, support, '@alice:elsewhere.org')), { allowed: false, unmatched: 'user' })
  t.match(policy.decide(ask('room.remove', helpdesk, support, '@admin:example.com')), { allowed: false, rule: 'helpdesk-never-touches-admins', effect: 'deny' })
  t.match(policy.decide(ask('room.join', helpdesk, support, '@admin-backup:example.com')), { allowed: false, rule: 'helpdesk-never-touches-admins' })
  t.match(policy.decide(ask('room.promote', helpdesk, support, '@alice:example.com')), { allowed: false, unmatched: 'action' })
  t.same(policy.allowedActions(helpdesk), ['room.join', 'room.remove'])
})

t.test('example (2): the HR tool only reads', async (t) => {
  const policy = loadPolicyFile('examples/policies/hr-read-only.yaml')
  const hr = caller(['hr-tool'])
  t.match(policy.decide(ask('room.members.read', hr, {}, null)), { allowed: true, rule: 'hr-tool-reads' })
  t.match(policy.decide(ask('user.read', hr, null, '@alice:example.com')), { allowed: true })
  for (const action of ['room.join', 'room.remove', 'room.promote'] as const) {
    t.match(policy.decide(ask(action, hr, {}, '@alice:example.com')), { allowed: false, unmatched: 'action' }, action)
  }
  t.match(policy.decide(ask('user.read', caller(['hr-tool'], { org: 'other' }), null, '@alice:example.com')), { allowed: false })
  t.same(policy.allowedActions(hr), ['room.members.read', 'user.read'])
})

t.test('example (3): on-call promotes room admins in the incident space', async (t) => {
  const policy = loadPolicyFile('examples/policies/oncall-incident-admins.yaml')
  const oncall = caller(['oncall'])
  const incident = { spaces: ['space:!incidents:example.com'] }
  t.match(policy.decide(ask('room.promote', oncall, incident, '@alice:example.com')), { allowed: true, rule: 'oncall-incident-admins' })
  t.match(policy.decide(ask('room.join', oncall, incident, '@alice:example.com')), { allowed: true })
  t.match(policy.decide(ask('room.promote', oncall, {}, '@alice:example.com')), { allowed: false, unmatched: 'room' })
  t.match(policy.decide(ask('room.promote', caller(['helpdesk']), incident, '@alice:example.com')), { allowed: false, unmatched: 'action' })
})

t.test('example (4): a rule keyed on an IdP claim', async (t) => {
  const errors: string[] = []
  const policy = loadPolicyFile('examples/policies/it-department-claim.yaml', { onEvaluationError: (rule) => errors.push(rule) })
  t.equal(policy.needsRoomAliases, true)
  const it = caller([], { claims: { department: 'it' } })
  const hr = caller([], { claims: { department: 'hr' } })
  const none = caller([])
  t.match(policy.decide(ask('room.join', it, { alias: '#it-laptops:example.com' }, '@alice:example.com')), { allowed: true, rule: 'it-department' })
  t.match(policy.decide(ask('room.join', it, { canonical_alias: '#it-ops:example.com' }, '@alice:example.com')), { allowed: true })
  t.match(policy.decide(ask('room.join', it, { alias: '#sales:example.com' }, '@alice:example.com')), { allowed: false, unmatched: 'room' })
  t.match(policy.decide(ask('room.join', hr, { alias: '#it-laptops:example.com' }, '@alice:example.com')), { allowed: false, unmatched: 'condition' })
  t.match(policy.decide(ask('room.join', none, { alias: '#it-laptops:example.com' }, '@alice:example.com')), { allowed: false, unmatched: 'condition' })
  t.match(policy.decide(ask('user.read', it, null, '@alice:example.com')), { allowed: true, rule: 'it-department-lookups' })
  t.same(errors, [], 'has() keeps a token without the claim from failing')
  t.same(policy.allowedActions(none), ['room.join', 'user.read'], '/v1/me ignores `when`')
})

t.test('examples/policy.yaml: the demo policy on test.local', async (t) => {
  const policy = loadPolicyFile('examples/policy.yaml')
  const demo = (roles: string[], claims: Record<string, unknown> = {}) => caller(roles, { org: 'example', claims })
  const publicTest = { id: '!public:test.local', alias: '#public-test:test.local', canonical_alias: '#public-test:test.local' }
  t.match(policy.decide(ask('room.join', demo(['matrix-admin']), publicTest, '@alice:test.local')), { allowed: true, rule: 'operators' }, 'the demo token joins as in version 1')
  t.match(policy.decide(ask('room.join', demo(['matrix-viewer']), publicTest, '@alice:test.local')), { allowed: false, unmatched: 'action' }, 'the demo viewer may not join')
  t.match(policy.decide(ask('user.read', demo(['matrix-viewer']), null, '@alice:test.local')), { allowed: true, rule: 'viewers-read' })
  t.match(policy.decide(ask('room.remove', demo(['helpdesk']), publicTest, '@bob:test.local')), { allowed: true, rule: 'helpdesk-public-rooms' })
  t.match(policy.decide(ask('room.members.read', demo(['helpdesk']), publicTest, null)), { allowed: true, rule: 'helpdesk-public-reads' }, 'the helpdesk sees who is in the public rooms')
  t.match(policy.decide(ask('room.join', demo(['helpdesk']), { id: '!p:test.local', alias: '#private-admin:test.local' }, '@bob:test.local')), { allowed: false, unmatched: 'room' })
  t.match(policy.decide(ask('room.remove', demo(['matrix-admin']), publicTest, '@tina:test.local')), { allowed: false, rule: 'protect-server-admins' })
  const privateAdmin = { id: '!p:test.local', canonical_alias: '#private-admin:test.local' }
  t.match(policy.decide(ask('room.promote', demo(['oncall'], { department: 'it' }), privateAdmin, '@bob:test.local')), { allowed: true, rule: 'it-oncall-promote' })
  t.match(policy.decide(ask('room.promote', demo(['oncall']), privateAdmin, '@bob:test.local')), { allowed: false, unmatched: 'condition' })
  t.same(policy.allowedActions(demo(['matrix-admin'])), ['room.join', 'room.remove', 'room.members.read', 'room.promote', 'user.read', 'room.adopt', 'user.lock', 'user.unlock', 'user.suspend', 'user.unsuspend', 'user.logout', 'user.password.reset', 'user.deactivate'])
})

t.test('bad files: one line naming the file, the rule and the problem', async (t) => {
  const rule = (body: string): string => `rules:\n  - name: ok\n    actions: [room.join]\n  - name: helpdesk\n${body}`
  const cases: Array<[string, string, RegExp]> = [
    ['bad YAML', 'rules:\n  - name: a\n    actions: [room.join\n', /^p\.yaml: line 4, column 1: not valid YAML: /],
    ['duplicate key', 'rules:\n  - name: a\n    name: b\n    actions: [x]\n', /^p\.yaml: line 3, column 5: not valid YAML: Map keys must be unique/],
    ['empty file', '', /^p\.yaml: the file must be a map with a "rules:" list$/],
    ['a list at the top', '- name: a\n', /^p\.yaml: the file must be a map with a "rules:" list$/],
    ['rules not a list', 'rules: {name: a}\n', /^p\.yaml: "rules" must be a list$/],
    ['no rules', 'rules: []\n', /^p\.yaml: "rules" must not be an empty list$/],
    ['unknown top-level field', 'rules: []\nversion: 2\n', /^p\.yaml: "version" is not a known field \(known: rules\)$/],
    ['a rule that is not a map', 'rules:\n  - room.join\n', /^p\.yaml: rules\[0\]: must be a map$/],
    ['unknown field', rule('    actions: [room.join]\n    room: ["!a:b"]\n'), /^p\.yaml: rule "helpdesk" \(rules\[1\]\): "room" is not a known field \(known: name, effect, roles, orgs, actions, rooms, users, when, approval\)$/],
    ['missing name', 'rules:\n  - actions: [room.join]\n', /^p\.yaml: rules\[0\]: name is missing$/],
    ['empty name', 'rules:\n  - name: ""\n    actions: [room.join]\n', /^p\.yaml: rules\[0\]: name must not be empty$/],
    ['name not a string', 'rules:\n  - name: 7\n    actions: [room.join]\n', /^p\.yaml: rules\[0\]: name must be a string$/],
    ['duplicate name', rule('    actions: [room.join]\n  - name: helpdesk\n    actions: [user.read]\n'), /^p\.yaml: rule "helpdesk" \(rules\[2\]\): name is already used by rules\[1\]$/],
    ['bad effect', rule('    effect: permit\n    actions: [room.join]\n'), /^p\.yaml: rule "helpdesk" \(rules\[1\]\): effect must be "allow" or "deny"$/],
    ['no actions', rule('    roles: [a]\n'), /^p\.yaml: rule "helpdesk" \(rules\[1\]\): actions is missing$/],
    ['actions not a list', rule('    actions: room.join\n'), /^p\.yaml: rule "helpdesk" \(rules\[1\]\): actions must be a list$/],
    ['unknown action', rule('    actions: [room.join, room.kick]\n'), /^p\.yaml: rule "helpdesk" \(rules\[1\]\): actions\[1\] "room\.kick" is not an action \(known: room\.join, room\.remove, room\.members\.read, room\.promote, user\.read, room\.adopt, user\.lock, user\.unlock, user\.suspend, user\.unsuspend, user\.logout, user\.password\.reset, user\.deactivate, "\*", or a prefix such as "room\.\*"\)$/],
    ['prefix matching nothing', rule('    actions: ["space.*"]\n'), /actions\[0\] "space\.\*" is not an action/],
    ['empty roles', rule('    roles: []\n    actions: [room.join]\n'), /^p\.yaml: rule "helpdesk" \(rules\[1\]\): roles must not be an empty list$/],
    ['empty role', rule('    orgs: [""]\n    actions: [room.join]\n'), /^p\.yaml: rule "helpdesk" \(rules\[1\]\): orgs\[0\] must not be empty$/],
    ['role not a string', rule('    roles: [[a]]\n    actions: [room.join]\n'), /roles\[0\] must be a string$/],
    ['alias without server', rule('    actions: [room.join]\n    rooms: ["#support-*"]\n'), /^p\.yaml: rule "helpdesk" \(rules\[1\]\): rooms\[0\] "#support-\*" is not an alias pattern/],
    ['room ID with a wildcard', rule('    actions: [room.join]\n    rooms: ["!*:example.com"]\n'), /rooms\[0\] "!\*:example\.com" is not a room ID \(room IDs are matched exactly, without wildcards\)$/],
    ['not a room pattern', rule('    actions: [room.join]\n    rooms: ["support"]\n'), /rooms\[0\] "support" is not a room pattern/],
    ['bad space', rule('    actions: [room.join]\n    rooms: ["space:support"]\n'), /rooms\[0\] "space:support" is not a space reference/],
    ['space with a wildcard', rule('    actions: [room.join]\n    rooms: ["space:#s*:example.com"]\n'), /is not a space reference/],
    ['bad user pattern', rule('    actions: [room.join]\n    users: ["alice"]\n'), /^p\.yaml: rule "helpdesk" \(rules\[1\]\): users\[0\] "alice" is not a user pattern/],
    ['user pattern without server', rule('    actions: [room.join]\n    users: ["@*"]\n'), /users\[0\] "@\*" is not a user pattern/],
    ['CEL syntax error', rule('    actions: [room.join]\n    when: caller.sub ==\n'), /^p\.yaml: rule "helpdesk" \(rules\[1\]\): when does not parse at character \d+: /],
    ['CEL unknown variable', rule('    actions: [room.join]\n    when: claims.department == "it"\n'), /^p\.yaml: rule "helpdesk" \(rules\[1\]\): when is not valid at character 1: Unknown variable: claims$/],
    ['CEL typo in caller', rule('    actions: [room.join]\n    when: caller.rols == []\n'), /when is not valid at character 8: No such key: rols$/],
    ['CEL not a bool', rule('    actions: [room.join]\n    when: caller.sub\n'), /when gives string, not a bool$/],
    ['CEL regex', rule('    actions: [room.join]\n    when: caller.sub.matches("^a")\n'), /when uses matches\(\), which policy conditions do not offer/],
    ['CEL nested comprehension', rule('    actions: [room.join]\n    when: caller.roles.all(a, caller.roles.exists(b, a == b))\n'), /when nests exists\(\) inside another comprehension/],
    ['approval on a deny rule', rule('    effect: deny\n    actions: [room.join]\n    approval: {roles: [lead], count: 1}\n'), /^p\.yaml: rule "helpdesk" \(rules\[1\]\): approval is only for allow rules \(a deny rule always refuses; nobody can approve it away\)$/],
    ['approval not a map', rule('    actions: [room.join]\n    approval: lead\n'), /^p\.yaml: rule "helpdesk" \(rules\[1\]\): approval must be a map$/],
    ['approval without roles', rule('    actions: [room.join]\n    approval: {count: 1}\n'), /^p\.yaml: rule "helpdesk" \(rules\[1\]\): approval\.roles is missing$/],
    ['approval with no roles', rule('    actions: [room.join]\n    approval: {roles: [], count: 1}\n'), /^p\.yaml: rule "helpdesk" \(rules\[1\]\): approval\.roles must not be an empty list$/],
    ['approval without count', rule('    actions: [room.join]\n    approval: {roles: [lead]}\n'), /^p\.yaml: rule "helpdesk" \(rules\[1\]\): approval\.count is missing$/],
    ['approval count 0', rule('    actions: [room.join]\n    approval: {roles: [lead], count: 0}\n'), /^p\.yaml: rule "helpdesk" \(rules\[1\]\): approval\.count must be at least 1$/],
    ['approval count not whole', rule('    actions: [room.join]\n    approval: {roles: [lead], count: 1.5}\n'), /^p\.yaml: rule "helpdesk" \(rules\[1\]\): approval\.count must be a whole number$/],
    ['approval count a string', rule('    actions: [room.join]\n    approval: {roles: [lead], count: "1"}\n'), /^p\.yaml: rule "helpdesk" \(rules\[1\]\): approval\.count must be a whole number$/],
    ['approval unknown field', rule('    actions: [room.join]\n    approval: {roles: [lead], count: 1, timeout: 5}\n'), /^p\.yaml: rule "helpdesk" \(rules\[1\]\): approval\."timeout" is not a known field \(known: roles, count\)$/],
    ['CEL too large', rule(`    actions: [room.join]\n    when: ${Array.from({ length: 300 }, () => 'true').join(' && ')}\n`), /when does not parse.*maxAstNodes/]
  ]
  for (const [what, text, message] of cases) {
    const error = t.throws(() => parsePolicy(text, 'p.yaml'), PolicyError, what) as Error
    t.match(error.message, message, what)
    t.notMatch(error.message, /\n/, `${what}: one line`)
  }
})

t.test('loadPolicyFile names the file it could not read', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'policy-'))
  t.throws(() => loadPolicyFile(join(dir, 'missing.yaml')), { name: 'PolicyError', message: `${join(dir, 'missing.yaml')}: cannot be read (ENOENT)` })
  const file = join(dir, 'bad.yaml')
  writeFileSync(file, 'rules:\n  - name: a\n    actions: [nope]\n')
  t.throws(() => loadPolicyFile(file), { message: `${file}: rule "a" (rules[0]): actions[0] "nope" is not an action (known: room.join, room.remove, room.members.read, room.promote, user.read, room.adopt, user.lock, user.unlock, user.suspend, user.unsuspend, user.logout, user.password.reset, user.deactivate, "*", or a prefix such as "room.*")` })
})
