/**
 * `approval:` on allow rules, as the engine reports it: decide() tells a request allowed
 * outright from one allowed only after an approval (and which), actionAccess() tells /v1/me the
 * same per action, explain() shows it. A policy without `approval` decides as before.
 */
import t from 'tap'
import { parsePolicy, type ActionName, type PolicyCaller, type PolicyRequest } from '../../src/policy/index.js'

const caller = (roles: string[], claims: Record<string, unknown> = {}): PolicyCaller => ({ sub: 'agent', org: 'acme', roles, claims })
const request = (action: ActionName, who: PolicyCaller, roomAlias = '#support-1:example.com', user = '@alice:example.com'): PolicyRequest => ({
  caller: who,
  action,
  room: action === 'user.read' ? null : { id: '!r:example.com', alias: roomAlias, canonical_alias: null, alt_aliases: [], spaces: [] },
  user: action === 'room.members.read' ? null : { id: user }
})

const POLICY = `
rules:
  - name: leads
    roles: [security-lead]
    actions: [room.promote, room.remove]
  - name: promote-after-one
    roles: [helpdesk]
    actions: [room.promote]
    rooms: ["#support-*:example.com"]
    approval: {roles: [security-lead], count: 1}
  - name: promote-anywhere-after-two
    roles: [helpdesk]
    actions: [room.promote]
    approval: {roles: [security-lead, cso], count: 2}
  - name: remove-in-sandbox
    roles: [helpdesk]
    actions: [room.remove]
    rooms: ["#sandbox-*:example.com"]
  - name: remove-after-approval
    roles: [helpdesk]
    actions: [room.remove]
    approval: {roles: [security-lead], count: 1}
  - name: never-the-ceo
    effect: deny
    actions: ["*"]
    users: ["@ceo:example.com"]
`

t.test('decide: outright, only after an approval (the first matching approval rule), or denied', async (t) => {
  const policy = parsePolicy(POLICY, 'p.yaml')
  const helpdesk = caller(['helpdesk'])

  const held = policy.decide(request('room.promote', helpdesk))
  t.same(held, {
    allowed: false,
    rule: 'promote-after-one',
    effect: 'allow',
    approval: { rule: 'promote-after-one', roles: ['security-lead'], count: 1 },
    detail: 'the policy allows room.promote here only after an approval'
  }, 'the first matching approval rule in file order decides')
  t.notMatch(held.detail, /security-lead|promote-after-one/, 'the detail names neither the approvers\' roles nor the rule')

  t.match(policy.decide(request('room.promote', helpdesk, '#sales:example.com')), { allowed: false, rule: 'promote-anywhere-after-two', approval: { roles: ['security-lead', 'cso'], count: 2 } },
    'where the first does not match, the next approval rule does')
  t.match(policy.decide(request('room.remove', helpdesk, '#sandbox-1:example.com')), { allowed: true, rule: 'remove-in-sandbox', approval: undefined },
    'an outright rule wins over an approval rule listed before it')
  t.match(policy.decide(request('room.remove', helpdesk)), { allowed: false, rule: 'remove-after-approval', approval: { count: 1 } })
  t.match(policy.decide(request('room.promote', caller(['helpdesk', 'security-lead']))), { allowed: true, rule: 'leads', approval: undefined }, 'a caller with an outright rule needs no approval')
  t.match(policy.decide(request('room.promote', helpdesk, '#support-1:example.com', '@ceo:example.com')), { allowed: false, rule: 'never-the-ceo', effect: 'deny', approval: undefined }, 'a matching deny wins over an approval rule')
  t.match(policy.decide(request('room.join', helpdesk)), { allowed: false, rule: null, unmatched: 'action', approval: undefined })
  t.equal(policy.permitsAction(helpdesk, 'room.promote'), true, 'permitsAction counts approval rules: the action is possible')
})

t.test('actionAccess: per action, outright and the approval an approval rule asks for (rooms and users ignored)', async (t) => {
  const policy = parsePolicy(POLICY, 'p.yaml')
  t.same(policy.actionAccess(caller(['helpdesk'])), [
    { action: 'room.remove', outright: true, approval: { rule: 'remove-after-approval', roles: ['security-lead'], count: 1 } },
    { action: 'room.promote', outright: false, approval: { rule: 'promote-after-one', roles: ['security-lead'], count: 1 } }
  ])
  t.same(policy.actionAccess(caller(['security-lead'])), [
    { action: 'room.remove', outright: true, approval: null },
    { action: 'room.promote', outright: true, approval: null }
  ])
  t.same(policy.actionAccess(caller(['viewer'])), [])
  t.same(policy.allowedActions(caller(['helpdesk'])), ['room.remove', 'room.promote'], 'allowedActions lists the same actions as before')
})

t.test('a policy without approval rules decides and lists exactly as before', async (t) => {
  const policy = parsePolicy('rules:\n  - name: joins\n    roles: [helpdesk]\n    actions: [room.join]\n', 'p.yaml')
  t.same(policy.decide(request('room.join', caller(['helpdesk']))), { allowed: true, rule: 'joins', effect: 'allow', detail: 'the policy allows room.join' })
  t.same(policy.actionAccess(caller(['helpdesk'])), [{ action: 'room.join', outright: true, approval: null }])
})

t.test('explain: the approval in the decision and in each rule\'s trace', async (t) => {
  const policy = parsePolicy(POLICY, 'p.yaml')
  const { decision, rules } = policy.explain(request('room.promote', caller(['helpdesk'])))
  t.match(decision, { allowed: false, approval: { rule: 'promote-after-one' } })
  t.match(rules.find((trace) => trace.rule === 'promote-after-one'), { matched: true, approval: { roles: ['security-lead'], count: 1 } })
  t.match(rules.find((trace) => trace.rule === 'promote-anywhere-after-two'), { matched: true, approval: { count: 2 } })
  t.match(rules.find((trace) => trace.rule === 'leads'), { matched: false, approval: null })
})
