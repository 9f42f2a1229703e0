/**
 * The audit log: one JSON line per attempt whatever the input holds, written before the
 * answer; when it cannot be written, actions are refused until it can.
 */
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { RECORDED_ROOMS } from '../../dev/homeserver/state.js'
import { startHarness } from '../helpers/harness.js'

const room = encodeURIComponent(RECORDED_ROOMS.publicTest)

t.test('hostile text in any field still gives exactly one JSON line per entry', async (t) => {
  const h = await startHarness(t)
  const nasty = 'a\nb\r\nc\u2028d\u2029e\u001b[31mred\u001b[0m"}{"outcome":"success'
  await h.join(encodeURIComponent(`#${nasty}:test.local`), { user_id: '@alice:test.local' })
  await h.join(room, { user_id: `@${nasty}:test.local` })
  await h.join(room, { user_id: '@alice:test.local' }, { headers: { 'user-agent': 'ua"}{"outcome":"x' } })
  await h.join(room, { user_id: '@alice:test.local' }, { token: h.token({ sub: `sub${nasty}`, org: nasty, roles: [nasty, 'matrix-admin'] }) })
  const text = h.auditText()
  const lines = text.split('\n').filter((line) => line !== '')
  t.equal(lines.length, 1 + 4 + 2, 'a start record, four results, and an intent before each of the two joins')
  // eslint-disable-next-line no-control-regex
  t.notMatch(text, /[\u2028\u2029\u001b\r]/, 'no raw line separators or escapes')
  for (const line of lines) t.doesNotThrow(() => JSON.parse(line))
  const entries = h.audit()
  t.equal(entries[0]?.target.room, `#${nasty}:test.local`, 'values survive intact after parsing')
  t.equal(entries[1]?.target.user_id, `@${nasty}:test.local`)
  t.equal(entries[3]?.actor.sub, `sub${nasty}`)
  t.same(entries.map((entry) => entry.outcome), ['invalid', 'invalid', 'success', 'success'])
})

t.test('audit entries go to standard output when AUDIT_LOG_FILE is unset', async (t) => {
  const { spawnServer, collect, listening } = await import('../helpers/process.js')
  const h = await startHarness(t)
  const child = spawnServer(h.serverEnv())
  const out = collect(child)
  t.after(() => { child.kill('SIGKILL') })
  const url = await listening(child, out)
  const res = await fetch(`${url}/v1/rooms/${room}/members`, {
    method: 'POST',
    headers: { authorization: `Bearer ${h.token()}`, 'content-type': 'application/json' },
    body: JSON.stringify({ user_id: '@alice:test.local' })
  })
  t.equal(res.status, 200)
  const auditLines = out.stdout.split('\n').filter((line) => line.includes('"log":"audit"')).map((line) => JSON.parse(line))
  t.same(auditLines.map((record) => record.event), ['start', 'intent', 'result'])
  t.match(auditLines[2], { action: 'room.join', outcome: 'success' })
})

t.test('an unwritable audit destination (/dev/full) is known at start: nothing reaches Synapse, /readyz says why', async (t) => {
  const h = await startHarness(t, { env: { AUDIT_LOG_FILE: '/dev/full' } })
  t.match(h.logs(), /cannot write the audit log/, 'the start record failed, and the operator is told')
  for (const user of ['@alice:test.local', '@bob:test.local']) {
    const refused = await h.join(room, { user_id: user })
    t.equal(refused.status, 503)
    t.equal(refused.body.code, 'audit_unavailable')
  }
  t.equal(h.homeserver.calls.length, 0, 'no action performed, not even the first')
  const ready = await request(`${h.url}/readyz`)
  t.equal(ready.statusCode, 503)
  t.match(await ready.body.json(), { code: 'audit_unavailable' })
  t.equal(h.logs().match(/cannot write the audit log/g)?.length, 1, 'logged once, not per request')
})

t.test('a destination that cannot be opened refuses actions from the start, and recovers', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gateway-audit-'))
  const missingDir = join(dir, 'not-yet')
  const h = await startHarness(t, { env: { AUDIT_LOG_FILE: join(missingDir, 'audit.log') } })
  const refused = await h.join(room, { user_id: '@alice:test.local' })
  t.equal(refused.status, 503)
  t.equal(refused.body.code, 'audit_unavailable')
  t.equal(h.homeserver.callsTo('join').length, 0, 'no action performed')
  mkdirSync(missingDir)
  const recovered = await h.join(room, { user_id: '@alice:test.local' })
  t.equal(recovered.status, 200, 'works again as soon as the file can be opened')
  const records = readFileSync(join(missingDir, 'audit.log'), 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line))
  t.same(records.map((record) => record.event), ['start', 'intent', 'result'], 'the start record comes first once the file can be written, then the join')
  t.match(h.logs(), /"audit":\{[^\n]*"code":"audit_unavailable"/, 'the refusal that could not be written is kept in the service log')
})
