/**
 * Version awareness: the gateway reads Synapse's version (server_version) at start without
 * waiting for it, shows it in /readyz, logs it once known and when it changes, and refuses an
 * action whose Synapse call needs a newer release (src/synapse/version.ts).
 */
import t from 'tap'
import { request } from 'undici'
import { hasRelease, releaseOf } from '../src/synapse/version.js'
import { startAccountHarness, userPath } from './helpers/accounts.js'
import { startHarness } from './helpers/harness.js'
import { collect, listening, spawnServer } from './helpers/process.js'
import { waitFor } from './helpers/wait.js'

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
