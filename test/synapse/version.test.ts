/**
 * Version awareness: the gateway reads Synapse's version (server_version) at start without
 * waiting for it, shows it in /readyz, logs it once known and when it changes, and refuses an
 * action whose Synapse call needs a newer release (src/synapse/version.ts).
 */
import t from 'tap'
import { request } from 'undici'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { SimulatedHomeserver } from '../../dev/homeserver/server.js'
import { newAttempt } from '../../src/actions/attempt.js'
import { createContexts } from '../../src/actions/facade.js'
import { createAuditLog } from '../../src/audit/log.js'
import { loadConfig } from '../../src/config.js'
import { GatewayError } from '../../src/errors.js'
import { createMetrics } from '../../src/metrics.js'
import { ACCOUNT_CALLS } from '../../src/synapse/accounts.js'
import { createSynapseClient } from '../../src/synapse/client.js'
import { createRoomDirectory } from '../../src/synapse/rooms.js'
import { createVersionWatch, hasRelease, releaseOf } from '../../src/synapse/version.js'
import { startAccountHarness, userPath } from '../helpers/accounts.js'
import { startHarness } from '../helpers/harness.js'
import { collect, listening, spawnServer } from '../helpers/process.js'
import { waitFor } from '../helpers/wait.js'

const readiness = async (url: string) => await (await request(`${url}/readyz`)).body.json() as Record<string, unknown>

t.test('release numbers: the leading major.minor.patch; anything else is believed recent', async (t) => {
  t.same(releaseOf('1.163.2'), [1, 163, 2])
  t.same(releaseOf('1.98.0rc1'), [1, 98, 0])
  t.same(releaseOf('1.135.0 (b=develop, 4d1f2e)'), [1, 135, 0])
  t.same(releaseOf('v1.91'), [1, 91, 0])
  t.equal(releaseOf('develop'), undefined)
  t.ok(hasRelease('1.91.0', '1.91.0'))
  t.ok(hasRelease('1.100.0', '1.91.0'), 'compared as numbers, not text')
  t.ok(hasRelease('2.0.0', '1.91.0'))
  t.notOk(hasRelease('1.90.9', '1.91.0'))
  t.notOk(hasRelease('1.67.0', '1.121.0'))
  t.ok(hasRelease('a fork', '1.91.0'))
})

for (const version of ['1.163.2', '1.67.0'] as const) {
  t.test(`${version}: /readyz shows the version and the log says it once`, async (t) => {
    const h = await startHarness(t, { homeserver: { synapseVersion: version } })
    t.match(await readiness(h.url), { status: 'ready', synapse_version: version })
    const lines = h.logs().split('\n').filter((line) => line.includes(`"Synapse version ${version}"`))
    t.equal(lines.length, 1, 'logged once known')
    t.match(JSON.parse(lines[0] as string), { level: 30, synapse_version: version })
  })
}

t.test('a new version read by /readyz is logged as a change and decides the next action at once', async (t) => {
  const h = await startAccountHarness(t, '1.163.2')
  const jill = h.newUser('jill')
  t.equal((await h.call('PUT', userPath(jill, '/lock'))).status, 200, 'locked on 1.163.2')
  // Synapse rolled back to a release without locking (as if restarted); /readyz re-reads it after its cache.
  h.homeserver.fault = { kind: 'answer', on: 'server_version', status: 200, body: { server_version: '1.90.0' } }
  await waitFor(async () => (await readiness(h.url)).synapse_version === '1.90.0', '/readyz to show 1.90.0', { timeoutMs: 15_000 })
  t.match(h.logs(), /Synapse version changed from 1\.163\.2 to 1\.90\.0/)
  const refused = await h.call('DELETE', userPath(jill, '/lock'))
  t.equal(refused.status, 501)
  t.match(refused.body.detail, /1\.90\.0.*1\.91\.0/)
})

t.test('a version that is not a release number is logged as a warning; actions are not refused for it', async (t) => {
  const h = await startAccountHarness(t, '1.163.2')
  h.homeserver.fault = { kind: 'answer', on: 'server_version', status: 200, body: { server_version: 'develop' } }
  const jill = h.newUser('jill')
  const res = await h.call('PUT', userPath(jill, '/lock'))
  t.equal(res.status, 200, res.text)
  t.match(h.logs(), /"level":40[^\n]*Synapse reports version \\"develop\\"/)
})

t.test('the server reads the version at start; Synapse down at start does not stop it, and readiness reads it later', async (t) => {
  const h = await startHarness(t)
  const child = spawnServer(h.serverEnv())
  t.after(() => { child.kill('SIGKILL') })
  const out = collect(child)
  await listening(child, out)
  await waitFor(() => /"Synapse version 1\.163\.2"/.test(out.stdout), 'the version in the log')
  t.equal(h.homeserver.callsTo('server_version').length, 1, 'asked once, at start')

  h.homeserver.fault = { kind: 'reset', on: 'server_version' }
  const down = spawnServer(h.serverEnv())
  t.after(() => { down.kill('SIGKILL') })
  const downOut = collect(down)
  const url = await listening(down, downOut)
  await waitFor(() => /version could not be read at start/.test(downOut.stdout), 'the start read to fail')
  t.equal((await request(`${url}/healthz`)).statusCode, 200, 'serving anyway')
  h.homeserver.fault = undefined
  t.match(await readiness(url), { status: 'ready', synapse_version: '1.163.2' })
})

t.test('the façade itself refuses a call that needs a newer Synapse: no intent record, nothing sent', async (t) => {
  const homeserver = new SimulatedHomeserver({ synapseVersion: '1.67.0', adminToken: 'syt_facade' })
  const url = await homeserver.listen()
  const dir = mkdtempSync(join(tmpdir(), 'version-facade-'))
  t.after(async () => { await homeserver.close(); rmSync(dir, { recursive: true, force: true }) })
  const auditFile = join(dir, 'audit.log')
  const config = loadConfig({ SYNAPSE_URL: url, SYNAPSE_ADMIN_TOKEN: 'syt_facade', SYNAPSE_SERVER_NAME: 'test.local', JWT_SECRET: 'unused-unused-unused-unused-unused-00', AUDIT_LOG_FILE: auditFile })
  const synapse = createSynapseClient({ url, adminToken: 'syt_facade', timeoutMs: 2000, maxConcurrency: 4 })
  t.after(async () => { await synapse.close() })
  const log = pino({ level: 'silent' })
  const contextFor = createContexts({ config, synapse, rooms: createRoomDirectory(), audit: createAuditLog({ file: auditFile, log }), metrics: createMetrics(), adminUserId: async () => '@admin:test.local', versions: createVersionWatch({ onChange: () => {} }) })
  const attempt = newAttempt('user.lock')
  attempt.actor = { sub: 'bot', org: null, roles: [], claims: {} }
  const context = contextFor(attempt, 'req-1', log, {})
  // Sent without the action's check in front: the call's own `needs` still stops it.
  const refused = await context.synapse.send(ACCOUNT_CALLS.setLocked('@ana:test.local', true)).catch((error: unknown) => error)
  t.ok(refused instanceof GatewayError)
  t.equal((refused as GatewayError).problem, 'not_supported_by_synapse')
  t.notOk(attempt.intentWritten)
  t.notMatch(existsSync(auditFile) ? readFileSync(auditFile, 'utf8') : '', /"event":"intent"/)
  t.same(homeserver.calls.map((call) => call.endpoint), ['server_version'], 'only the version was asked')
})
