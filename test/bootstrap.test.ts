/**
 * The compose stack's bootstrap (src/bootstrap-admin.ts) against the simulated homeserver's
 * shared-secret registration: creates the admin account and its token, keeps a working token,
 * logs in again when the token was lost. The token it writes works with the gateway.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { SimulatedHomeserver } from '../dev/homeserver/server.js'
import { bootstrapAdmin, sharedSecretFrom } from '../src/bootstrap-admin.js'

t.test('registers, keeps, and recovers the gateway admin token', async (t) => {
  const homeserver = new SimulatedHomeserver({ registrationSharedSecret: 'shh-registration' })
  const synapseUrl = await homeserver.listen()
  const dir = mkdtempSync(join(tmpdir(), 'gateway-bootstrap-'))
  t.after(async () => { await homeserver.close(); rmSync(dir, { recursive: true, force: true }) })
  const options = { synapseUrl, sharedSecret: 'shh-registration', username: 'gateway-admin', tokenFile: join(dir, 'token'), passwordFile: join(dir, 'password') }

  writeFileSync(options.tokenFile, '', { mode: 0o644 }) // the README has it created empty first
  t.equal(await bootstrapAdmin(options), 'registered')
  const token = readFileSync(options.tokenFile, 'utf8').trim()
  t.equal(statSync(options.tokenFile).mode & 0o777, 0o600, 'the token file is private')
  t.equal(homeserver.state.tokens.get(token), '@gateway-admin:test.local')
  t.equal(homeserver.state.users.get('@gateway-admin:test.local')?.admin, true, 'a server admin')

  t.equal(await bootstrapAdmin(options), 'kept', 'a working token is kept')
  t.equal(readFileSync(options.tokenFile, 'utf8').trim(), token)

  writeFileSync(options.tokenFile, 'syt_revoked\n')
  t.equal(await bootstrapAdmin(options), 'logged-in', 'a lost token is replaced by logging in with the saved password')
  t.not(readFileSync(options.tokenFile, 'utf8').trim(), 'syt_revoked')

  await t.rejects(bootstrapAdmin({ ...options, sharedSecret: 'wrong', tokenFile: join(dir, 'other'), username: 'someone' }), /registration failed: HTTP 403/)
  rmSync(options.passwordFile)
  rmSync(options.tokenFile)
  await t.rejects(bootstrapAdmin(options), /logging in failed/)
})

t.test('reads registration_shared_secret from homeserver.yaml', async (t) => {
  t.equal(sharedSecretFrom('server_name: "x"\nregistration_shared_secret: "a;b=c~d"\nreport_stats: false\n'), 'a;b=c~d')
  t.equal(sharedSecretFrom("registration_shared_secret: 'plain'\n"), 'plain')
  t.throws(() => sharedSecretFrom('server_name: x\n'), /no registration_shared_secret/)
})
