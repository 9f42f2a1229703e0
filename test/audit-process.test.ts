/**
 * The audit of the real gateway process (src/server.ts) checked by the real verifier CLI
 * (`npm run audit:verify`): an unwritable destination refuses every action, a missing directory
 * recovers without a restart, the chain continues across restarts and logrotate's rename +
 * SIGHUP, and AUDIT_CHAIN_KEY_FILE makes it an HMAC chain only the key verifies.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { RECORDED_ROOMS } from '../dev/homeserver/state.js'
import { verifyAuditFiles } from '../src/audit/verify.js'
import { startHarness, type Harness } from './helpers/harness.js'
import { act, joinPath, recordsOf, startGateway, until, verifyCli, type Gateway } from './helpers/audit.js'

const room = RECORDED_ROOMS.publicTest
const alice = '@alice:test.local'

function workDir (t: { after: (fn: () => unknown) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'gateway-audit-e2e-'))
  t.after(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

function allowEverything (dir: string): string {
  const file = join(dir, 'policy.yaml')
  writeFileSync(file, 'rules:\n  - name: admins-do-everything\n    roles: [matrix-admin]\n    actions: ["*"]\n')
  return file
}

async function readiness (url: string): Promise<{ status: number, code: string | undefined }> {
  const res = await request(`${url}/readyz`)
  const body = await res.body.json() as { code?: string }
  return { status: res.statusCode, code: body.code }
}

/** Some of everything: joins, a refusal, a read. */
async function traffic (g: Gateway, h: Harness, tag: string): Promise<void> {
  for (let i = 0; i < 3; i++) {
    const res = await act(g.url, 'POST', joinPath(room), { token: h.token(), requestId: `${tag}-join-${i}`, body: { user_id: alice } })
    if (res.status !== 200) throw new Error(`${tag}: join answered ${res.status}`)
  }
  await act(g.url, 'POST', joinPath(room), { token: h.token(), requestId: `${tag}-refused`, body: { user_id: '@alice:elsewhere.example' } })
  await act(g.url, 'GET', `/v1/users/${encodeURIComponent(alice)}`, { token: h.token(), requestId: `${tag}-read` })
}

async function stop (g: Gateway): Promise<number | null> {
  g.child.kill('SIGTERM')
  return (await g.exited).code
}

t.test('AUDIT_LOG_FILE=/dev/full: the start record fails, every action is 503 audit_unavailable, the homeserver receives nothing, /readyz 503', async (t) => {
  const h = await startHarness(t)
  const dir = workDir(t)
  const g = await startGateway(t, h, { AUDIT_LOG_FILE: '/dev/full', POLICY_FILE: allowEverything(dir) })
  await until(() => /audit start record not written/.test(g.out.stdout), 'the gateway to log that the start record failed')
  const token = h.token()
  const encodedAlice = encodeURIComponent(alice)
  const attempts: Array<[string, 'GET' | 'POST' | 'DELETE', string, unknown]> = [
    ['room.join', 'POST', joinPath(room), { user_id: alice }],
    ['room.join dry run', 'POST', `${joinPath(room)}?dry_run=true`, { user_id: alice }],
    ['room.remove', 'DELETE', `${joinPath(room)}/${encodedAlice}`, undefined],
    ['room.promote', 'POST', `/v1/rooms/${encodeURIComponent(room)}/admins`, { user_id: alice }],
    ['room.members.read', 'GET', joinPath(room), undefined],
    ['user.read', 'GET', `/v1/users/${encodedAlice}`, undefined]
  ]
  for (const [name, method, path, body] of attempts) {
    const res = await act(g.url, method, path, { token, body })
    t.equal(res.status, 503, name)
    t.equal(res.body.code, 'audit_unavailable', name)
  }
  const batch = await act(g.url, 'POST', '/v1/batch', { token, body: { items: [{ action: 'room.join', room, user_id: alice }] } })
  t.ok(batch.status === 503 || batch.body.results?.[0]?.status === 503, `batch: refused (${batch.status} ${JSON.stringify(batch.body).slice(0, 200)})`)
  // The version read at start is the only call: no action reached the homeserver.
  t.same(h.homeserver.calls.map((call) => call.endpoint).filter((endpoint) => endpoint !== 'server_version'), [], 'the homeserver received nothing but the version read')
  t.same(await readiness(g.url), { status: 503, code: 'audit_unavailable' })
  t.equal(await stop(g), 0)
})

t.test('AUDIT_LOG_FILE in a directory that appears later: refused, then ready and acting again without a restart', async (t) => {
  const h = await startHarness(t)
  const dir = join(workDir(t), 'later')
  const file = join(dir, 'audit.log')
  const g = await startGateway(t, h, { AUDIT_LOG_FILE: file })
  t.same(await readiness(g.url), { status: 503, code: 'audit_unavailable' })
  const refused = await act(g.url, 'POST', joinPath(room), { token: h.token(), body: { user_id: alice } })
  t.equal(refused.body.code, 'audit_unavailable')
  t.equal(h.homeserver.callsTo('join').length, 0)
  mkdirSync(dir)
  // No action in between: readiness alone retries the destination.
  await until(async () => (await readiness(g.url)).status === 200, '/readyz to turn 200 once the directory exists')
  t.same(recordsOf(file).map((record) => record.event), ['start'], 'the missed start record is written first')
  const joined = await act(g.url, 'POST', joinPath(room), { token: h.token(), requestId: 'after-recovery', body: { user_id: alice } })
  t.equal(joined.status, 200)
  t.equal(await stop(g), 0)
  t.same(recordsOf(file).map((record) => record.event), ['start', 'intent', 'result', 'stop'])
  const verified = await verifyCli([file])
  t.equal(verified.code, 0, verified.stdout)
})

t.test('the chain of real gateway output: intact, continued across a restart and a logrotate rename + SIGHUP', async (t) => {
  const h = await startHarness(t)
  const dir = workDir(t)
  const file = join(dir, 'audit.log')
  const rotated = join(dir, 'audit.log.1')

  const first = await startGateway(t, h, { AUDIT_LOG_FILE: file, POLICY_FILE: allowEverything(dir) })
  await traffic(first, h, 'run1')
  const midRun = await verifyCli([file])
  t.equal(midRun.code, 0, 'intact while the gateway runs')
  t.match(midRun.lines.at(-1), /^intact: 9 records in 1 file, seq 1–9$/, 'start + 3 × (intent, result) + refusal + read')
  t.equal(await stop(first), 0)
  const firstRun = recordsOf(file)
  t.same([firstRun[0]?.event, firstRun.at(-1)?.event], ['start', 'stop'])

  const second = await startGateway(t, h, { AUDIT_LOG_FILE: file, POLICY_FILE: allowEverything(dir) })
  await traffic(second, h, 'run2')
  const afterRestart = recordsOf(file)
  const restart = afterRestart[firstRun.length]
  t.match(restart, { event: 'start', seq: (firstRun.at(-1)?.seq as number) + 1, prev: firstRun.at(-1)?.hash }, 'the new start links to the stop record before it')
  const restarted = await verifyCli([file])
  t.equal(restarted.code, 0, restarted.stdout)
  t.notMatch(restarted.stdout, /new chain/, 'one chain, not two')

  // What logrotate does (create mode): rename, then SIGHUP; the gateway reopens the same path.
  renameSync(file, rotated)
  const beforeReopen = recordsOf(rotated).at(-1) as Record<string, any>
  second.child.kill('SIGHUP')
  await until(() => existsSync(file), 'the gateway to reopen AUDIT_LOG_FILE after SIGHUP')
  await traffic(second, h, 'run3')
  t.equal(await stop(second), 0)
  const fresh = recordsOf(file)
  t.match(fresh[0], { event: 'intent', request_id: 'run3-join-0', seq: beforeReopen.seq + 1, prev: beforeReopen.hash }, 'the new file continues the chain of the renamed one')
  t.equal(fresh.at(-1)?.event, 'stop')

  const both = await verifyCli([rotated, file])
  t.equal(both.code, 0, both.stdout)
  t.match(both.lines.at(-1), new RegExp(`^intact: ${recordsOf(rotated).length + fresh.length} records in 2 files, seq 1–${fresh.at(-1)?.seq as number}$`))
  t.notMatch(both.stdout, /open intent/, 'every intent has its result')
  const newOnly = await verifyCli([file])
  t.equal(newOnly.code, 0, 'the newest file alone is intact too')
  t.match(newOnly.stdout, new RegExp(`starts at seq ${beforeReopen.seq + 1} \\(earlier files not given\\)`))
  const wrongOrder = await verifyCli([file, rotated])
  t.equal(wrongOrder.code, 1, 'files given newest first do not verify')
  t.match(wrongOrder.stdout, /reordered: seq \d+ links to .*audit\.log\.1:\d+ .*give the files oldest first/)
  // The same through the module, in this process.
  const texts = [file, rotated].map((name) => ({ name, text: readFileSync(name, 'utf8') }))
  const report = verifyAuditFiles(texts)
  t.equal(report.intact, false)
  t.same(report.problems.map((problem) => [problem.file, problem.line, problem.kind]), [[file, 1, 'reordered']])
  t.equal(report.startsAfterUnknown, null, 'not mistaken for a file that starts mid-chain')
  t.equal(verifyAuditFiles(texts.reverse()).intact, true)
})

t.test('AUDIT_CHAIN_KEY_FILE on the gateway: --key-file (or the variable) verifies, no key or another key does not', async (t) => {
  const h = await startHarness(t)
  const dir = workDir(t)
  const file = join(dir, 'audit.log')
  const keyFile = join(dir, 'chain.key')
  const otherKey = join(dir, 'other.key')
  writeFileSync(keyFile, 'a-chain-key-of-32-random-bytes!!', { mode: 0o600 })
  writeFileSync(otherKey, 'not-the-key-the-gateway-had-0000')
  const g = await startGateway(t, h, { AUDIT_LOG_FILE: file, AUDIT_CHAIN_KEY_FILE: keyFile, POLICY_FILE: allowEverything(dir) })
  await traffic(g, h, 'keyed')
  t.equal(await stop(g), 0)

  const withKey = await verifyCli(['--key-file', keyFile, file])
  t.equal(withKey.code, 0, withKey.stdout)
  t.match(withKey.lines.at(-1), /^intact: 10 records/)
  const fromEnvironment = await verifyCli([file], { AUDIT_CHAIN_KEY_FILE: keyFile })
  t.equal(fromEnvironment.code, 0, fromEnvironment.stdout)
  const withoutKey = await verifyCli([file])
  t.equal(withoutKey.code, 1)
  t.match(withoutKey.stdout, /give it with --key-file/)
  const wrongKey = await verifyCli(['--key-file', otherKey, file])
  t.equal(wrongKey.code, 1)
  t.match(wrongKey.stdout, /no record matches this key/)
})
