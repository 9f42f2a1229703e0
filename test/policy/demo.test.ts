/**
 * `npm run demo` runs with examples/policy.yaml: the helpdesk commands it prints, pasted as they
 * are, join in a public room (200) and are refused elsewhere (403 policy_denied), and the
 * decisions reach the audit entries it writes.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { collect, exited, spawnScript } from '../helpers/process.js'
import { waitFor } from '../helpers/policy-http.js'

/** The parts of a printed curl command that matter: URL, Authorization and --json body. */
async function paste (command: string) {
  const url = /'(http:\/\/[^']+)'/.exec(command)?.[1] as string
  const authorization = /-H 'Authorization: ([^']+)'/.exec(command)?.[1] as string
  const json = /--json '([^']+)'/.exec(command)?.[1] as string
  const response = await request(url, { method: 'POST', headers: { authorization, 'content-type': 'application/json' }, body: json })
  return { status: response.statusCode, body: await response.body.json() as Record<string, any> }
}

t.test('the demo runs with the example policy and prints commands that show it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'demo-policy-'))
  t.after(() => { rmSync(dir, { recursive: true, force: true }) })
  const auditFile = join(dir, 'audit.log')
  // Through sh to drop tap's NODE_OPTIONS (see helpers/process.ts).
  const child = spawnScript('dev/demo.ts', [], { PORT: '0', AUDIT_LOG_FILE: auditFile })
  t.after(() => { child.kill('SIGKILL') })
  const out = collect(child)
  await waitFor('the demo to print its instructions', async () => out.stdout.includes('Ctrl-C') || child.exitCode !== null, (done) => done, 60_000)
  t.match(out.stdout, /policy: +examples\/policy\.yaml/, 'names the policy in force')

  const policyCommands = out.stdout.split('\n').filter((line) => line.startsWith('  curl '))
  t.equal(policyCommands.length, 2, out.stdout)
  const allowed = await paste(policyCommands[0] as string)
  t.equal(allowed.status, 200, 'the helpdesk joins @bob to #public-test')
  t.match(allowed.body, { user_id: '@bob:test.local' })
  const refused = await paste(policyCommands[1] as string)
  t.equal(refused.status, 403, 'and not to #private-admin')
  t.equal(refused.body.code, 'policy_denied')
  t.match(refused.body.detail, /room\.join in room #private-admin:test\.local/)

  const viewer = out.stdout.split('\n').filter((line) => line.startsWith('curl '))[1] as string
  t.equal((await paste(viewer)).body.code, 'policy_denied', 'the viewer may not join')

  const results = readFileSync(auditFile, 'utf8').split('\n').filter((line) => line.includes('"event":"result"')).map((line) => JSON.parse(line))
  t.same(results.map((entry) => entry.policy), [
    { rule: 'helpdesk-public-rooms', effect: 'allow' },
    { rule: null, effect: 'deny' },
    { rule: null, effect: 'deny' }
  ], 'each decision is in the demo\'s audit')
  child.kill('SIGTERM')
  t.same(await exited(child), { code: 0, signal: null }, 'stops cleanly')
})
