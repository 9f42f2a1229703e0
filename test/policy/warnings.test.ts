/**
 * What `policy check` warns about (Policy.warnings): a condition reading a claim without checking
 * first that the token has it, and an action named in a rule that constrains a target the action
 * lacks. A file with warnings still loads and decides.
 */
import t from 'tap'
import { parsePolicy } from '../../src/policy/index.js'

const withWhen = (effect: 'allow' | 'deny', when: string): string =>
  `rules:\n  - name: everyone\n    actions: [room.join]\n  - name: checked\n    effect: ${effect}\n    actions: [room.join]\n    when: ${JSON.stringify(when)}\n`

/** The claims the warnings name for this condition, one list per warning line. */
function unguarded (when: string): string[][] {
  return parsePolicy(withWhen('deny', when), 'p.yaml').warnings.map((warning) => (/when reads (.+?) without checking/.exec(warning)?.[1] ?? '').split(', '))
}

t.test('a claim read without has() is named; guarded reads are not', async (t) => {
  const cases: Array<[string, string[]]> = [
    ['caller.claims.clearance < 3', ['caller.claims.clearance']],
    ['caller.claims["clearance"] < 3', ['caller.claims.clearance']],
    ['caller.claims["https://example.com/level"] > 1', ['caller.claims["https://example.com/level"]']],
    ['caller.claims.a == 1 && caller.claims.b == 2 && caller.claims.a == 3', ['caller.claims.a', 'caller.claims.b']],
    ['has(caller.claims.clearance) && caller.claims.clearance < 3', []],
    ['caller.claims.clearance < 3 && has(caller.claims.clearance)', []],
    ['!has(caller.claims.clearance) || caller.claims.clearance < 3', []],
    ['"clearance" in caller.claims && caller.claims.clearance < 3', []],
    ['has(caller.claims.clearance) ? caller.claims.clearance < 3 : true', []],
    ['!has(caller.claims.clearance) ? true : caller.claims.clearance < 3', []],
    ['has(caller.claims.clearance) ? true : caller.claims.clearance < 3', ['caller.claims.clearance']],
    ['has(caller.claims.a) && has(caller.claims.b) && caller.claims.a == caller.claims.b', []],
    ['(has(caller.claims.a) && caller.claims.a == 1) || caller.claims.a == 2', ['caller.claims.a']],
    ['has(caller.claims.a) || caller.claims.a == 1', ['caller.claims.a']],
    ['has(caller.claims.b) && caller.claims.a == 1', ['caller.claims.a']],
    ['has(caller.claims.dept.name)', ['caller.claims.dept']],
    ['has(caller.claims.dept) && has(caller.claims.dept.name)', []],
    ['caller.claims.groups.exists(g, g == "ops")', ['caller.claims.groups']],
    ['caller.claims.size() > 0', []],
    ['"admin" in caller.roles && caller.sub == "bot"', []]
  ]
  for (const [when, claims] of cases) t.same(unguarded(when), claims.length === 0 ? [] : [claims], when)
})

t.test('the warning: one line naming the file, the rule, the claims, the guard and what follows', async (t) => {
  const deny = parsePolicy(withWhen('deny', 'caller.claims.clearance < 3'), 'p.yaml')
  t.same(deny.warnings, ['p.yaml: rule "checked" (rules[1]): when reads caller.claims.clearance without checking has(caller.claims.clearance) first: ' +
    'a token without it makes the condition fail to evaluate, and this deny rule then matches (deny rules fail closed)'])
  const allow = parsePolicy(withWhen('allow', 'caller.claims.a == caller.claims["b-c"]'), 'p.yaml')
  t.same(allow.warnings, ['p.yaml: rule "checked" (rules[1]): when reads caller.claims.a, caller.claims["b-c"] without checking has(caller.claims.a), "b-c" in caller.claims first: ' +
    'a token without one of them makes the condition fail to evaluate, and this allow rule then does not match'])
  t.same(parsePolicy('rules:\n  - name: r\n    actions: [room.join]\n', 'p.yaml').warnings, [])
})

t.test('an action named in a rule that constrains a target it lacks never matches: warned', async (t) => {
  const policy = parsePolicy(`
rules:
  - name: helpdesk-public-rooms
    actions: [room.join, room.members.read]
    rooms: ["#public-*:test.local"]
    users: ["@*:test.local"]
  - name: lookups-in-rooms
    effect: deny
    actions: [user.read]
    rooms: ["!r:test.local"]
  - name: patterns-are-not-warned
    actions: ["*", "room.*"]
    rooms: ["!r:test.local"]
    users: ["@*:test.local"]
`, 'p.yaml')
  t.same(policy.warnings, [
    'p.yaml: rule "helpdesk-public-rooms" (rules[0]): users never match room.members.read, which has no target user: this rule never applies to it (name room.members.read in a rule without users:)',
    'p.yaml: rule "lookups-in-rooms" (rules[1]): rooms never match user.read, which has no room: this rule never applies to it (name user.read in a rule without rooms:)'
  ])
})
