/**
 * Every example policy does what its comments promise: each promise is a `policy explain` run
 * through the command's own module (the text and exit code `npm run policy` gives), and every
 * file under examples/ must have its cases here, so a new example cannot go untested.
 */
import { readdirSync } from 'node:fs'
import t from 'tap'
import { policyCommand as command } from '../helpers/policy-command.js'

interface Request {
  roles?: string
  org?: string
  claims?: Record<string, unknown>
  room?: string
  alias?: string
  canonical?: string
  space?: string
  user?: string
}

interface Case {
  /** The promise, in the words of the file's comment. */
  promise: string
  action: string
  request: Request
  /** The verdict line, exactly. */
  verdict: string
  /** A line the output must also hold, e.g. the refusal the caller would get. */
  also?: RegExp
}

const EXIT = { ALLOWED: 0, DENIED: 3, APPROVAL: 4 } as const

function exitFor (verdict: string): number {
  if (verdict.startsWith('ALLOWED after ')) return EXIT.APPROVAL
  return verdict.startsWith('ALLOWED') ? EXIT.ALLOWED : EXIT.DENIED
}

function argsOf (action: string, request: Request): string[] {
  const options: Array<[string, string | undefined]> = [
    ['--roles', request.roles], ['--org', request.org], ['--claims', request.claims === undefined ? undefined : JSON.stringify(request.claims)],
    ['--room-id', request.room], ['--alias', request.alias], ['--canonical-alias', request.canonical], ['--in-space', request.space], ['--user', request.user]
  ]
  return ['--action', action, ...options.flatMap(([option, value]) => value === undefined ? [] : [option, value])]
}

// examples/policy.yaml: the demo and compose policy on test.local.
const DEMO = { org: 'example' }
const publicTest = { room: '!public:test.local', alias: '#public-test:test.local' }
const privateAdmin = { room: '!private:test.local', alias: '#private-admin:test.local' }

// examples/policies/: example.com.
const support = { room: '!help:example.com', alias: '#help:example.com', space: 'space:#support:example.com' }
const incident = { room: '!inc-42:example.com', space: 'space:!incidents:example.com' }
const supportRoom = { room: '!s:example.com', alias: '#support-1:example.com' }

const CASES: Record<string, Case[]> = {
  'examples/policy.yaml': [
    {
      promise: 'the "Try it" command at the top of the file',
      action: 'room.join',
      request: { roles: 'helpdesk', org: 'example', room: '!x:test.local', alias: '#public-test:test.local', user: '@alice:test.local' },
      verdict: 'ALLOWED by rule "helpdesk-public-rooms"'
    },
    { promise: 'operators may do everything', action: 'room.join', request: { ...DEMO, roles: 'matrix-admin', ...privateAdmin, user: '@bob:test.local' }, verdict: 'ALLOWED by rule "operators"' },
    { promise: 'operators: everything includes promoting', action: 'room.promote', request: { ...DEMO, roles: 'matrix-admin', ...publicTest, user: '@bob:test.local' }, verdict: 'ALLOWED by rule "operators"' },
    { promise: 'operators: and looking users up', action: 'user.read', request: { ...DEMO, roles: 'matrix-admin', user: '@bob:test.local' }, verdict: 'ALLOWED by rule "operators"' },
    { promise: 'operators: of the demo\'s org only', action: 'user.read', request: { org: 'other', roles: 'matrix-admin', user: '@bob:test.local' }, verdict: 'DENIED: no rule allows it (what did not match: action)' },
    { promise: 'the helpdesk joins local users in the public rooms', action: 'room.join', request: { ...DEMO, roles: 'helpdesk', ...publicTest, user: '@bob:test.local' }, verdict: 'ALLOWED by rule "helpdesk-public-rooms"' },
    { promise: 'the helpdesk removes local users in the public rooms', action: 'room.remove', request: { ...DEMO, roles: 'helpdesk', ...publicTest, user: '@bob:test.local' }, verdict: 'ALLOWED by rule "helpdesk-public-rooms"' },
    {
      promise: 'the helpdesk sees who is in the public rooms',
      action: 'room.members.read',
      request: { ...DEMO, roles: 'helpdesk', ...publicTest },
      verdict: 'ALLOWED by rule "helpdesk-public-reads"'
    },
    {
      promise: 'the helpdesk: only in the public rooms',
      action: 'room.join',
      request: { ...DEMO, roles: 'helpdesk', ...privateAdmin, user: '@bob:test.local' },
      verdict: 'DENIED: no rule allows it (what did not match: room)',
      also: /the caller gets 403 policy_denied: the policy does not allow room\.join in room #private-admin:test\.local/
    },
    { promise: 'the helpdesk: only sees who is in the public rooms', action: 'room.members.read', request: { ...DEMO, roles: 'helpdesk', ...privateAdmin }, verdict: 'DENIED: no rule allows it (what did not match: room)' },
    { promise: 'the helpdesk: only local users', action: 'room.join', request: { ...DEMO, roles: 'helpdesk', ...publicTest, user: '@eve:elsewhere.org' }, verdict: 'DENIED: no rule allows it (what did not match: user)' },
    { promise: 'the helpdesk: joins and removes, nothing more', action: 'room.promote', request: { ...DEMO, roles: 'helpdesk', ...publicTest, user: '@bob:test.local' }, verdict: 'DENIED: no rule allows it (what did not match: action)' },
    { promise: 'viewers look users up', action: 'user.read', request: { ...DEMO, roles: 'matrix-viewer', user: '@bob:test.local' }, verdict: 'ALLOWED by rule "viewers-read"' },
    { promise: 'viewers look members up', action: 'room.members.read', request: { ...DEMO, roles: 'matrix-viewer', ...privateAdmin }, verdict: 'ALLOWED by rule "viewers-read"' },
    { promise: 'viewers only look things up', action: 'room.join', request: { ...DEMO, roles: 'matrix-viewer', ...publicTest, user: '@bob:test.local' }, verdict: 'DENIED: no rule allows it (what did not match: action)' },
    {
      promise: 'IT on-call make room admins in the admins\' private room',
      action: 'room.promote',
      request: { ...DEMO, roles: 'oncall', claims: { department: 'it' }, ...privateAdmin, user: '@bob:test.local' },
      verdict: 'ALLOWED by rule "it-oncall-promote"'
    },
    {
      promise: 'on-call outside IT may not',
      action: 'room.promote',
      request: { ...DEMO, roles: 'oncall', claims: { department: 'hr' }, ...privateAdmin, user: '@bob:test.local' },
      verdict: 'DENIED: no rule allows it (what did not match: condition)'
    },
    {
      promise: 'on-call without a department claim may not (and has() keeps it from failing)',
      action: 'room.promote',
      request: { ...DEMO, roles: 'oncall', ...privateAdmin, user: '@bob:test.local' },
      verdict: 'DENIED: no rule allows it (what did not match: condition)'
    },
    { promise: 'IT on-call: only in the admins\' room', action: 'room.promote', request: { ...DEMO, roles: 'oncall', claims: { department: 'it' }, ...publicTest, user: '@bob:test.local' }, verdict: 'DENIED: no rule allows it (what did not match: room)' },
    { promise: 'nobody removes the server\'s administrators', action: 'room.remove', request: { ...DEMO, roles: 'matrix-admin', ...publicTest, user: '@admin:test.local' }, verdict: 'DENIED by deny rule "protect-server-admins"' },
    { promise: 'nobody promotes them either', action: 'room.promote', request: { ...DEMO, roles: 'oncall', claims: { department: 'it' }, ...privateAdmin, user: '@tina:test.local' }, verdict: 'DENIED by deny rule "protect-server-admins"' },
    { promise: 'not even the helpdesk in a public room', action: 'room.remove', request: { ...DEMO, roles: 'helpdesk', ...publicTest, user: '@tina:test.local' }, verdict: 'DENIED by deny rule "protect-server-admins"' }
  ],
  'examples/policies/helpdesk-support-space.yaml': [
    { promise: 'the helpdesk joins users in the rooms of the support space', action: 'room.join', request: { roles: 'helpdesk', ...support, user: '@alice:example.com' }, verdict: 'ALLOWED by rule "helpdesk-support-space"' },
    { promise: 'and removes them', action: 'room.remove', request: { roles: 'helpdesk', ...support, user: '@alice:example.com' }, verdict: 'ALLOWED by rule "helpdesk-support-space"' },
    { promise: 'only in the rooms of the support space', action: 'room.join', request: { roles: 'helpdesk', room: '!other:example.com', user: '@alice:example.com' }, verdict: 'DENIED: no rule allows it (what did not match: room)' },
    { promise: 'never touches the server\'s administrators', action: 'room.remove', request: { roles: 'helpdesk', ...support, user: '@admin:example.com' }, verdict: 'DENIED by deny rule "helpdesk-never-touches-admins"' },
    { promise: 'a matching deny always wins', action: 'room.join', request: { roles: 'helpdesk', ...support, user: '@admin-backup:example.com' }, verdict: 'DENIED by deny rule "helpdesk-never-touches-admins"' },
    { promise: 'join and remove only', action: 'room.promote', request: { roles: 'helpdesk', ...support, user: '@alice:example.com' }, verdict: 'DENIED: no rule allows it (what did not match: action)' }
  ],
  'examples/policies/helpdesk-accounts.yaml': [
    { promise: 'the helpdesk locks accounts', action: 'user.lock', request: { roles: 'helpdesk', user: '@alice:example.com' }, verdict: 'ALLOWED by rule "helpdesk-accounts"' },
    { promise: 'and unlocks them', action: 'user.unlock', request: { roles: 'helpdesk', user: '@alice:example.com' }, verdict: 'ALLOWED by rule "helpdesk-accounts"' },
    { promise: 'logs users out everywhere', action: 'user.logout', request: { roles: 'helpdesk', user: '@alice:example.com' }, verdict: 'ALLOWED by rule "helpdesk-accounts"' },
    { promise: 'resets passwords', action: 'user.password.reset', request: { roles: 'helpdesk', user: '@alice:example.com' }, verdict: 'ALLOWED by rule "helpdesk-accounts"' },
    { promise: 'for the users of example.com only', action: 'user.password.reset', request: { roles: 'helpdesk', user: '@alice:other.example' }, verdict: 'DENIED: no rule allows it (what did not match: user)' },
    { promise: 'never for the operators\' admin accounts', action: 'user.password.reset', request: { roles: 'helpdesk', user: '@admin-ops:example.com' }, verdict: 'DENIED by deny rule "never-admin-accounts"' },
    { promise: 'never locks them either', action: 'user.lock', request: { roles: 'helpdesk', user: '@admin-ops:example.com' }, verdict: 'DENIED by deny rule "never-admin-accounts"' },
    { promise: 'suspending is the security team\'s', action: 'user.suspend', request: { roles: 'helpdesk', user: '@alice:example.com' }, verdict: 'DENIED: no rule allows it (what did not match: action)' },
    { promise: 'and so is deactivating', action: 'user.deactivate', request: { roles: 'helpdesk', user: '@alice:example.com' }, verdict: 'DENIED: no rule allows it (what did not match: action)' }
  ],
  'examples/policies/security-team-accounts.yaml': [
    { promise: 'the security team suspends accounts', action: 'user.suspend', request: { roles: 'security-team', user: '@alice:example.com' }, verdict: 'ALLOWED by rule "security-team-accounts"' },
    { promise: 'and unsuspends them', action: 'user.unsuspend', request: { roles: 'security-team', user: '@alice:example.com' }, verdict: 'ALLOWED by rule "security-team-accounts"' },
    { promise: 'deactivates them for good', action: 'user.deactivate', request: { roles: 'security-team', user: '@alice:example.com' }, verdict: 'ALLOWED by rule "security-team-accounts"' },
    { promise: 'locks and logs out a compromised account', action: 'user.logout', request: { roles: 'security-team', user: '@alice:example.com' }, verdict: 'ALLOWED by rule "security-team-accounts"' },
    { promise: 'for the users of example.com', action: 'user.deactivate', request: { roles: 'security-team', user: '@alice:other.example' }, verdict: 'DENIED: no rule allows it (what did not match: user)' },
    { promise: 'the helpdesk cannot deactivate', action: 'user.deactivate', request: { roles: 'helpdesk', user: '@alice:example.com' }, verdict: 'DENIED: no rule allows it (what did not match: action)' }
  ],
  'examples/policies/hr-read-only.yaml': [
    { promise: 'the HR tool reads who is where', action: 'room.members.read', request: { roles: 'hr-tool', org: 'acme', room: '!r:example.com' }, verdict: 'ALLOWED by rule "hr-tool-reads"' },
    { promise: 'and looks users up', action: 'user.read', request: { roles: 'hr-tool', org: 'acme', user: '@alice:example.com' }, verdict: 'ALLOWED by rule "hr-tool-reads"' },
    { promise: 'it cannot join', action: 'room.join', request: { roles: 'hr-tool', org: 'acme', room: '!r:example.com', user: '@alice:example.com' }, verdict: 'DENIED: no rule allows it (what did not match: action)' },
    { promise: 'remove', action: 'room.remove', request: { roles: 'hr-tool', org: 'acme', room: '!r:example.com', user: '@alice:example.com' }, verdict: 'DENIED: no rule allows it (what did not match: action)' },
    { promise: 'or promote', action: 'room.promote', request: { roles: 'hr-tool', org: 'acme', room: '!r:example.com', user: '@alice:example.com' }, verdict: 'DENIED: no rule allows it (what did not match: action)' },
    { promise: 'the acme HR tool only', action: 'user.read', request: { roles: 'hr-tool', org: 'other', user: '@alice:example.com' }, verdict: 'DENIED: no rule allows it (what did not match: action)' }
  ],
  'examples/policies/it-department-claim.yaml': [
    { promise: 'department "it" joins users to the IT rooms, no role needed', action: 'room.join', request: { claims: { department: 'it' }, room: '!x:example.com', alias: '#it-laptops:example.com', user: '@bob:example.com' }, verdict: 'ALLOWED by rule "it-department"' },
    { promise: 'an IT room by its canonical alias', action: 'room.join', request: { claims: { department: 'it' }, room: '!x:example.com', canonical: '#it-ops:example.com', user: '@bob:example.com' }, verdict: 'ALLOWED by rule "it-department"' },
    { promise: 'and looks users up', action: 'user.read', request: { claims: { department: 'it' }, user: '@bob:example.com' }, verdict: 'ALLOWED by rule "it-department-lookups"' },
    { promise: 'IT rooms only', action: 'room.join', request: { claims: { department: 'it' }, room: '!x:example.com', alias: '#sales:example.com', user: '@bob:example.com' }, verdict: 'DENIED: no rule allows it (what did not match: room)' },
    { promise: 'another department does not match', action: 'room.join', request: { claims: { department: 'hr' }, room: '!x:example.com', alias: '#it-laptops:example.com', user: '@bob:example.com' }, verdict: 'DENIED: no rule allows it (what did not match: condition)' },
    { promise: 'a token without the claim simply does not match', action: 'user.read', request: { user: '@bob:example.com' }, verdict: 'DENIED: no rule allows it (what did not match: condition)' }
  ],
  'examples/policies/oncall-incident-admins.yaml': [
    { promise: 'on-call makes people room admins in the rooms of the incident space', action: 'room.promote', request: { roles: 'oncall', ...incident, user: '@alice:example.com' }, verdict: 'ALLOWED by rule "oncall-incident-admins"' },
    { promise: 'and joins them first', action: 'room.join', request: { roles: 'oncall', ...incident, user: '@alice:example.com' }, verdict: 'ALLOWED by rule "oncall-incident-admins"' },
    { promise: 'in the incident space only', action: 'room.promote', request: { roles: 'oncall', room: '!other:example.com', user: '@alice:example.com' }, verdict: 'DENIED: no rule allows it (what did not match: room)' },
    { promise: 'on-call engineers only', action: 'room.promote', request: { roles: 'helpdesk', ...incident, user: '@alice:example.com' }, verdict: 'DENIED: no rule allows it (what did not match: action)' }
  ],
  'examples/policies/clearance-deny.yaml': [
    { promise: 'the org joins users to the lobby rooms', action: 'room.join', request: { org: 'acme', claims: { clearance: 3 }, room: '!l:example.com', alias: '#lobby-1:example.com', user: '@bob:example.com' }, verdict: 'ALLOWED by rule "lobby-joins"' },
    { promise: 'except with a clearance below 3', action: 'room.join', request: { org: 'acme', claims: { clearance: 2 }, room: '!l:example.com', alias: '#lobby-1:example.com', user: '@bob:example.com' }, verdict: 'DENIED by deny rule "low-clearance"' },
    { promise: 'or with no clearance at all', action: 'room.join', request: { org: 'acme', room: '!l:example.com', alias: '#lobby-1:example.com', user: '@bob:example.com' }, verdict: 'DENIED by deny rule "low-clearance"' },
    {
      promise: 'a clearance the condition cannot compare denies too (fail closed)',
      action: 'room.join',
      request: { org: 'acme', claims: { clearance: '5' }, room: '!l:example.com', alias: '#lobby-1:example.com', user: '@bob:example.com' },
      verdict: 'DENIED by deny rule "low-clearance" (its condition failed to evaluate, so it matches: no such overload: dyn<string> < int)',
      also: /rule "low-clearance": when failed to evaluate \(a deny rule fails closed: counted as met\)/
    },
    { promise: 'the lobby rooms only', action: 'room.join', request: { org: 'acme', claims: { clearance: 5 }, room: '!l:example.com', alias: '#sales:example.com', user: '@bob:example.com' }, verdict: 'DENIED: no rule allows it (what did not match: room)' }
  ],
  'examples/policies/security-lead-approvals.yaml': [
    { promise: 'the helpdesk makes room admins after one approval by a security-lead', action: 'room.promote', request: { roles: 'helpdesk', ...supportRoom, user: '@alice:example.com' }, verdict: 'ALLOWED after 1 approval by security-lead (rule "helpdesk-promotes-with-approval")', also: /\nit runs only once approved/ },
    { promise: 'and removes users after two', action: 'room.remove', request: { roles: 'helpdesk', ...supportRoom, user: '@alice:example.com' }, verdict: 'ALLOWED after 2 approvals by security-lead or support-manager (rule "helpdesk-removes-with-approval")' },
    { promise: 'in the support rooms only', action: 'room.promote', request: { roles: 'helpdesk', room: '!other:example.com', alias: '#sales:example.com', user: '@alice:example.com' }, verdict: 'DENIED: no rule allows it (what did not match: room)' },
    { promise: 'security leads act without approval', action: 'room.promote', request: { roles: 'security-lead', ...supportRoom, user: '@alice:example.com' }, verdict: 'ALLOWED by rule "security-leads"' },
    { promise: 'a matching rule without approval lets the request run at once', action: 'room.remove', request: { roles: 'helpdesk,security-lead', ...supportRoom, user: '@alice:example.com' }, verdict: 'ALLOWED by rule "security-leads"' },
    { promise: 'deactivation (and erase) runs only after one security-lead approval', action: 'user.deactivate', request: { roles: 'helpdesk', user: '@alice:example.com' }, verdict: 'ALLOWED after 1 approval by security-lead (rule "deactivation-with-approval")' },
    { promise: 'even when a security lead asks', action: 'user.deactivate', request: { roles: 'security-lead', user: '@alice:example.com' }, verdict: 'ALLOWED after 1 approval by security-lead (rule "deactivation-with-approval")' }
  ]
}

t.test('every example file has its cases here', async (t) => {
  const files = [
    ...readdirSync('examples').filter((name) => name.endsWith('.yaml')).map((name) => `examples/${name}`),
    ...readdirSync('examples/policies').filter((name) => name.endsWith('.yaml')).map((name) => `examples/policies/${name}`)
  ].sort()
  t.same(Object.keys(CASES).sort(), files)
})

for (const [file, cases] of Object.entries(CASES)) {
  t.test(file, async (t) => {
    const check = command(['check', file])
    t.equal(check.code, 0, 'policy check: ok')
    t.equal(check.stderr, '', 'with no warning')
    for (const { promise, action, request, verdict, also } of cases) {
      const out = command(['explain', file, ...argsOf(action, request)])
      t.equal(out.stdout.split('\n')[1], verdict, promise)
      t.equal(out.code, exitFor(verdict), `${promise}: exit code`)
      t.equal(out.stderr, '', `${promise}: nothing on stderr`)
      if (also !== undefined) t.match(out.stdout, also, `${promise}: ${String(also)}`)
    }
  })
}
