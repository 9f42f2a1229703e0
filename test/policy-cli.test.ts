/**
 * `npm run policy -- check|explain …` (src/policy/cli.ts) as a real child process (compiled, see
 * helpers/compiled.ts; NODE_OPTIONS dropped so tap's coverage hooks stay out of the child).
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { compiled } from './helpers/compiled.js'
import { policyCommand } from './helpers/policy-command.js'

const root = fileURLToPath(new URL('..', import.meta.url))

async function policy (...args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return await new Promise((resolve) => {
    execFile('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec "$0" "$@"', process.execPath, compiled('src/policy/cli.ts'), ...args],
      { cwd: root, env: { PATH: process.env.PATH ?? '' }, timeout: 30_000 },
      (error, stdout, stderr) => resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, stdout, stderr }))
  })
}

// About ten children of a second or two each on a busy two-core machine.
t.setTimeout(240_000)

const dir = mkdtempSync(join(tmpdir(), 'policy-cli-'))

t.test('check: every example is ok; a bad file gives its one line and exit 1', async (t) => {
  for (const [file, rules] of [['examples/policy.yaml', 6], ['examples/policies/helpdesk-support-space.yaml', 2], ['examples/policies/hr-read-only.yaml', 1]] as const) {
    const ok = await policy('check', file)
    t.equal(ok.code, 0, file)
    t.equal(ok.stdout, `${file}: ${rules} ${rules === 1 ? 'rule' : 'rules'}, ok\n`)
  }
  const bad = join(dir, 'bad.yaml')
  writeFileSync(bad, 'rules:\n  - name: helpdesk\n    actions: [room.kick]\n')
  const refused = await policy('check', bad)
  t.equal(refused.code, 1)
  t.equal(refused.stdout, '')
  t.match(refused.stderr, new RegExp(`^${bad.replaceAll('.', '\\.')}: rule "helpdesk" \\(rules\\[0\\]\\): actions\\[0\\] "room\\.kick" is not an action \\(known: [^\\n]+\\)\\n$`))
  const missing = await policy('check', join(dir, 'missing.yaml'))
  t.equal(missing.code, 1)
  t.match(missing.stderr, /missing\.yaml: cannot be read \(ENOENT\)\n$/)
})

t.test('explain: an allowed request exits 0 and shows the deciding rule and the trace', async (t) => {
  const out = await policy('explain', 'examples/policies/helpdesk-support-space.yaml', '--action', 'room.join', '--roles', 'helpdesk',
    '--room-id', '!abc:example.com', '--in-space', 'space:#support:example.com', '--user', '@alice:example.com')
  t.equal(out.code, 0, out.stderr)
  t.match(out.stdout, /^examples\/policies\/helpdesk-support-space\.yaml: room\.join by cli \(roles: helpdesk; org: none\) in !abc:example\.com on @alice:example\.com\n/)
  t.match(out.stdout, /\nALLOWED by rule "helpdesk-support-space"\n/)
  t.match(out.stdout, /\nrule +effect +roles +orgs +action +room +user +when +result\n/)
  t.match(out.stdout, /\nhelpdesk-support-space +allow +yes +any +yes +yes +yes +any +MATCH\n/)
  t.match(out.stdout, /\nhelpdesk-never-touches-admins +deny +yes +any +yes +any +no +any +-\n/)
})

t.test('explain: a denied request exits 3 and says what the caller would be told', async (t) => {
  const denied = await policy('explain', 'examples/policies/helpdesk-support-space.yaml', '--action', 'room.remove', '--roles', 'helpdesk',
    '--room-id', '!abc:example.com', '--alias', '#help:example.com', '--in-space', 'space:#support:example.com', '--user', '@admin:example.com')
  t.equal(denied.code, 3)
  t.match(denied.stdout, /\nDENIED by deny rule "helpdesk-never-touches-admins"\n/)
  t.match(denied.stdout, /\nthe caller gets 403 policy_denied: the policy does not allow room\.remove on user @admin:example\.com in room #help:example\.com\n/)
  const nothing = await policy('explain', 'examples/policies/hr-read-only.yaml', '--action', 'user.read', '--claims', '{"sub":"hr-app","org":"acme","roles":"hr-tool"}', '--user', '@alice:example.com')
  t.equal(nothing.code, 0, 'sub, org and roles come from the claims when not given')
  t.match(nothing.stdout, /user\.read by hr-app \(roles: hr-tool; org: acme\)/)
  const wrongOrg = await policy('explain', 'examples/policies/hr-read-only.yaml', '--action', 'user.read', '--roles', 'hr-tool', '--org', 'other', '--user', '@alice:example.com')
  t.equal(wrongOrg.code, 3)
  t.match(wrongOrg.stdout, /DENIED: no rule allows it \(what did not match: action\)/)
})

t.test('explain: claims from a file drive `when`, and a failing condition is shown', async (t) => {
  const claims = join(dir, 'claims.json')
  writeFileSync(claims, JSON.stringify({ sub: 'alice-it', department: 'it' }))
  const it = await policy('explain', 'examples/policies/it-department-claim.yaml', '--action', 'room.join', '--claims', `@${claims}`,
    '--room-id', '!x:example.com', '--canonical-alias', '#it-laptops:example.com', '--alt-alias', '#laptops:example.com', '--user', '@bob:example.com')
  t.equal(it.code, 0, it.stdout + it.stderr)
  t.match(it.stdout, /ALLOWED by rule "it-department"/)
  const policyFile = join(dir, 'when.yaml')
  writeFileSync(policyFile, 'rules:\n  - name: dept\n    actions: [user.read]\n    when: caller.claims.department == "it"\n')
  const failing = await policy('explain', policyFile, '--action', 'user.read', '--user', '@bob:example.com')
  t.equal(failing.code, 3)
  t.match(failing.stdout, /\ndept +allow +any +any +yes +any +any +error +-\n/)
  t.match(failing.stdout, /rule "dept": when failed to evaluate \(counted as not met\): No such key: department/)
})

t.test('check warns on stderr and stays ok; explain shows a deny failing closed and an approval (exit 4)', async (t) => {
  const file = join(dir, 'v3.yaml')
  writeFileSync(file, `rules:
  - name: everyone
    actions: [room.join]
  - name: low-clearance
    effect: deny
    actions: [room.join]
    when: caller.claims.clearance < 3
  - name: lookups-after-approval
    actions: [user.read]
    approval: {roles: [security-lead], count: 1}
`)
  const check = await policy('check', file)
  const [denied, held] = await Promise.all([
    policy('explain', file, '--action', 'room.join', '--room-id', '!r:example.com', '--user', '@bob:example.com', '--claims', '{"clearance":"1"}'),
    policy('explain', file, '--action', 'user.read', '--user', '@bob:example.com')
  ])
  t.equal(check.code, 0, 'a warning is no error')
  t.equal(check.stdout, `${file}: 3 rules, ok (1 warning)\n`)
  t.equal(check.stderr, `warning: ${file}: rule "low-clearance" (rules[1]): when reads caller.claims.clearance without checking has(caller.claims.clearance) first: ` +
    'a token without it makes the condition fail to evaluate, and this deny rule then matches (deny rules fail closed)\n')
  t.equal(denied.code, 3)
  t.match(denied.stdout, /\nDENIED by deny rule "low-clearance" \(its condition failed to evaluate, so it matches: no such overload: dyn<string> < int\)\n/)
  t.match(denied.stdout, /\nlow-clearance +deny +any +any +yes +any +any +error +MATCH\n/)
  t.equal(held.code, 4, held.stderr)
  t.match(held.stdout, /\nALLOWED after 1 approval by security-lead \(rule "lookups-after-approval"\)\nit runs only once approved; approvers are distinct callers other than the requester\n/)
  t.match(held.stdout, /\n {2}rule "lookups-after-approval": allows only after 1 approval by security-lead\n/)
})

t.test('usage errors exit 2 with the usage, never a stack trace', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [[], /^usage: policy check FILE/],
    [['lint', 'examples/policy.yaml'], /^usage: /],
    [['check', 'a.yaml', 'b.yaml'], /^policy: check takes one FILE, not b\.yaml\n/],
    [['explain', 'examples/policy.yaml'], /^policy: explain needs --action\n/],
    [['explain', 'examples/policy.yaml', '--action', 'room.kick'], /^policy: --action "room\.kick" is not an action\n/],
    [['explain', 'examples/policy.yaml', '--action', 'room.join', '--bogus'], /^policy: Unknown option '--bogus'/],
    [['explain', 'examples/policy.yaml', '--action', 'room.join', '--user', '@a:test.local'], /^policy: room\.join acts on a room: give --room-id/],
    [['explain', 'examples/policy.yaml', '--action', 'room.join', '--room-id', '!r:test.local'], /^policy: room\.join acts on a user: give --user\n/],
    [['explain', 'examples/policy.yaml', '--action', 'room.members.read', '--room-id', '!r:test.local', '--user', '@a:test.local'], /^policy: room\.members\.read has no target user; leave out --user\n/],
    [['explain', 'examples/policy.yaml', '--action', 'user.read', '--room-id', '!r:test.local', '--user', '@a:test.local'], /^policy: user\.read has no room; leave out --room-id\n/],
    [['explain', 'examples/policy.yaml', '--action', 'user.read', '--user', 'alice'], /^policy: --user "alice" is not a user ID\n/],
    [['explain', 'examples/policy.yaml', '--action', 'room.join', '--room-id', 'r', '--user', '@a:test.local'], /^policy: --room-id "r" is not a room ID\n/],
    [['explain', 'examples/policy.yaml', '--action', 'user.read', '--user', '@a:test.local', '--claims', '[1]'], /^policy: --claims must be a JSON object/],
    [['explain', 'examples/policy.yaml', '--action', 'user.read', '--user', '@a:test.local', '--claims', '@/nonexistent.json'], /^policy: --claims @\/nonexistent\.json: cannot be read \(ENOENT\)\n/]
  ]
  // The first two as real processes (the exit code and no stack trace); the rest through the
  // command's module, which is what the process runs (a child costs seconds on two busy cores).
  const results = await Promise.all(cases.slice(0, 2).map(async ([args]) => await policy(...args)))
  for (const [args] of cases.slice(2)) results.push(policyCommand(args))
  for (const [i, [args, stderr]] of cases.entries()) {
    const out = results[i] as Awaited<ReturnType<typeof policy>>
    t.equal(out.code, 2, args.join(' '))
    t.match(out.stderr, stderr, args.join(' '))
    t.match(out.stderr, /usage: policy check FILE/)
    t.notMatch(out.stderr, /\n\s+at /, 'no stack trace')
    t.equal(out.stdout, '')
  }
})
