/**
 * The bootstrap (src/bootstrap-admin.ts) against the simulated homeserver's shared-secret
 * registration: creates the admin account and its token, keeps a working token, logs in again
 * when the token was lost. As a command: --help needs no file, options come from flags or the
 * environment, and every failure is one line on stderr without a stack trace or the secret.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { SimulatedHomeserver } from '../../dev/homeserver/server.js'
import { bootstrapAdmin, bootstrapOptionsFrom, sharedSecretFrom } from '../../src/bootstrap-admin.js'
import { runScript } from '../helpers/process.js'

const runBootstrap = async (args: string[], env: Record<string, string> = {}) => await runScript('src/bootstrap-admin.ts', args, env)

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

  // The Kubernetes Job's form: a Secret manifest with both files, for kubectl apply.
  const manifestFile = join(dir, 'secret.json')
  t.equal(await bootstrapAdmin({ ...options, secretManifest: { file: manifestFile, name: 'gw-admin' } }), 'kept')
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as { kind: string, metadata: { name: string }, data: Record<string, string> }
  t.match(manifest, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'gw-admin' }, type: 'Opaque' })
  t.equal(Buffer.from(manifest.data.synapse_admin_token as string, 'base64').toString(), token)
  t.equal(Buffer.from(manifest.data.gateway_admin_password as string, 'base64').toString(), readFileSync(options.passwordFile, 'utf8').trim())
  t.equal(statSync(manifestFile).mode & 0o777, 0o600, 'private like the token')

  writeFileSync(options.tokenFile, 'syt_revoked\n')
  t.equal(await bootstrapAdmin(options), 'logged-in', 'a lost token is replaced by logging in with the saved password')
  t.not(readFileSync(options.tokenFile, 'utf8').trim(), 'syt_revoked')

  await t.rejects(bootstrapAdmin({ ...options, sharedSecret: 'wrong', tokenFile: join(dir, 'other'), username: 'someone' }), /registration failed: HTTP 403/)
  rmSync(options.tokenFile)
  writeFileSync(options.passwordFile, 'not-its-password\n')
  await t.rejects(bootstrapAdmin(options), /exists but logging in failed \(HTTP 403\)/)
  rmSync(options.passwordFile)
  await t.rejects(bootstrapAdmin(options), /exists but .* \(its password\) does not/, 'no saved password: said so, not a failed login')
})

t.test('reads registration_shared_secret from homeserver.yaml', async (t) => {
  t.equal(sharedSecretFrom('server_name: "x"\nregistration_shared_secret: "a;b=c~d"\nreport_stats: false\n'), 'a;b=c~d')
  t.equal(sharedSecretFrom("registration_shared_secret: 'plain'\n"), 'plain')
  t.throws(() => sharedSecretFrom('server_name: x\n'), /no registration_shared_secret/)
})

t.test('the command: --help without any file, flags or environment, one-line errors', async (t) => {
  const homeserver = new SimulatedHomeserver({ registrationSharedSecret: 'canary-shared-secret-0451' })
  const synapseUrl = await homeserver.listen()
  const dir = mkdtempSync(join(tmpdir(), 'gateway-bootstrap-cli-'))
  t.after(async () => { await homeserver.close(); rmSync(dir, { recursive: true, force: true }) })
  const secretFile = join(dir, 'shared_secret')
  writeFileSync(secretFile, 'canary-shared-secret-0451\n')

  const help = await runBootstrap(['--help'])
  t.equal(help.code, 0, help.stderr)
  t.match(help.stdout, /--synapse-url URL[\s\S]*--shared-secret-file FILE[\s\S]*--token-file FILE[\s\S]*--username NAME/)
  t.equal(help.stderr, '')

  const tokenFile = join(dir, 'synapse_admin_token')
  const first = await runBootstrap(['--synapse-url', synapseUrl, '--shared-secret-file', secretFile, '--token-file', tokenFile])
  t.equal(first.code, 0, first.stderr)
  t.equal(first.stdout, `gateway admin account gateway-admin: registered; token in ${tokenFile}\n`)
  const token = readFileSync(tokenFile, 'utf8').trim()
  t.equal(homeserver.state.tokens.get(token), '@gateway-admin:test.local')
  t.equal(statSync(join(dir, 'gateway_admin_password')).mode & 0o777, 0o600, 'the password is saved next to the token, private')

  const again = await runBootstrap([], { SYNAPSE_URL: synapseUrl, REGISTRATION_SHARED_SECRET_FILE: secretFile, TOKEN_FILE: tokenFile })
  t.equal(again.code, 0, again.stderr)
  t.match(again.stdout, /: kept; /, 'the environment works as well as flags; a working token is kept')
  t.equal(readFileSync(tokenFile, 'utf8').trim(), token)

  const failures: Array<[string[], RegExp]> = [
    [['--token-file', tokenFile], /^bootstrap: give exactly one of --shared-secret-file or --synapse-config/],
    [['--shared-secret-file', secretFile], /^bootstrap: --token-file \(or TOKEN_FILE\) is required/],
    [['--nonsense'], /^bootstrap: Unknown option '--nonsense'.* \(see --help\)\n$/],
    [['--synapse-config', join(dir, 'missing.yaml'), '--token-file', tokenFile], /^bootstrap: cannot read .*missing\.yaml \(ENOENT\)\n$/],
    [['--synapse-url', 'http://127.0.0.1:1', '--shared-secret-file', secretFile, '--token-file', join(dir, 'other')], /^bootstrap: cannot reach Synapse at http:\/\/127\.0\.0\.1:1 \(ECONNREFUSED\)/],
    [['--synapse-url', synapseUrl, '--shared-secret-file', secretFile, '--token-file', join(dir, 'lost'), '--password-file', join(dir, 'no-password')], /^bootstrap: the account gateway-admin exists but .*no-password \(its password\) does not/],
    [['--synapse-url', synapseUrl, '--shared-secret-file', secretFile, '--token-file', tokenFile, '--owner', 'node:node'], /^bootstrap: --owner must look like 1000:1000/]
  ]
  for (const [args, expected] of failures) {
    const run = await runBootstrap(args)
    t.equal(run.code, 1, args.join(' '))
    t.match(run.stderr, expected)
    t.equal(run.stderr.split('\n').length, 2, 'one line')
    t.notMatch(run.stderr, /\n\s+at |canary-shared-secret/, 'no stack trace, never the secret')
  }
  writeFileSync(join(dir, 'wrong_secret'), 'not-the-secret\n')
  const wrong = await runBootstrap(['--synapse-url', synapseUrl, '--shared-secret-file', join(dir, 'wrong_secret'), '--token-file', join(dir, 'someone'), '--username', 'someone'])
  t.match(wrong.stderr, /^bootstrap: registration failed: HTTP 403 M_FORBIDDEN: the shared secret is not this Synapse's registration_shared_secret\n$/)
  t.notMatch(wrong.stderr, /not-the-secret/)
})

t.test('options: defaults, owner, the password file next to the token', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gateway-bootstrap-options-'))
  t.after(() => { rmSync(dir, { recursive: true, force: true }) })
  writeFileSync(join(dir, 'homeserver.yaml'), 'registration_shared_secret: "from-yaml"\n')
  t.same(bootstrapOptionsFrom(['--synapse-config', join(dir, 'homeserver.yaml'), '--token-file', '/etc/gw/token', '--owner', '1000:1000'], {}), {
    synapseUrl: 'http://127.0.0.1:8008',
    sharedSecret: 'from-yaml',
    username: 'gateway-admin',
    tokenFile: '/etc/gw/token',
    passwordFile: '/etc/gw/gateway_admin_password',
    owner: { uid: 1000, gid: 1000 }
  })
  t.equal(bootstrapOptionsFrom(['-h'], {}), 'help')
  t.match(bootstrapOptionsFrom(['--synapse-config', join(dir, 'homeserver.yaml'), '--token-file', '/t', '--secret-manifest', '/work/secret.json'], {}), {
    secretManifest: { file: '/work/secret.json', name: 'synapse-admin-gateway-admin' }
  })
  const fromEnv = bootstrapOptionsFrom([], { SYNAPSE_CONFIG_FILE: join(dir, 'homeserver.yaml'), TOKEN_FILE: '/t', FILE_OWNER: '', ADMIN_USERNAME: 'gw' })
  t.match(fromEnv, { username: 'gw', owner: undefined }, 'an empty FILE_OWNER leaves the owner alone')
})
