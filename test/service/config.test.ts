/**
 * Configuration: one schema checked at start; a bad value stops the process with one line
 * that names the variable and never repeats a secret.
 */
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { ConfigError, loadConfig } from '../../src/config.js'
import { startupSummary } from '../../src/startup-summary.js'
import { runServer } from '../helpers/process.js'

const dir = mkdtempSync(join(tmpdir(), 'gateway-config-'))
const file = (name: string, content: string) => {
  const path = join(dir, name)
  writeFileSync(path, content)
  return path
}
const SECRET = 'CANARY-config-secret-value-0123456789'
const base = {
  SYNAPSE_URL: 'http://127.0.0.1:8008',
  SYNAPSE_ADMIN_TOKEN: 'syt_CANARY_token',
  SYNAPSE_SERVER_NAME: 'example.com',
  JWT_SECRET: SECRET
}

function rejects (t: Test, env: Record<string, string | undefined>, variable: string, what: string) {
  try {
    loadConfig(env)
    t.fail(`${what}: accepted`)
  } catch (error) {
    t.ok(error instanceof ConfigError, what)
    t.equal((error as ConfigError).variable, variable, `${what}: names ${variable}`)
    t.match((error as Error).message, new RegExp(`^Invalid configuration: ${variable} `), what)
    t.notMatch((error as Error).message, /CANARY|\n/, `${what}: one line, no secret`)
  }
}

t.test('defaults follow the contract', async (t) => {
  const config = loadConfig(base)
  t.match(config, {
    host: '127.0.0.1',
    port: 8080,
    logLevel: 'info',
    auditLogFile: undefined,
    synapse: { url: 'http://127.0.0.1:8008', serverName: 'example.com', timeoutMs: 10000 },
    jwt: { verification: { kind: 'secret', algorithms: ['HS256', 'HS384', 'HS512'] }, clockToleranceS: 30, maxAgeS: 86400, rolesClaim: 'roles', orgClaim: 'org' },
    allowedOrgs: [],
    joinRoles: ['matrix-admin'],
    rateLimitPerMinute: 120,
    allowRemoteRooms: false
  })
  t.equal(loadConfig({ ...base, SYNAPSE_URL: 'https://matrix.example.com/' }).synapse.url, 'https://matrix.example.com')
  t.equal(loadConfig({ ...base, PORT: '' }).port, 8080, 'an empty variable counts as unset')
})

t.test('bad values name their variable', async (t) => {
  rejects(t, { ...base, SYNAPSE_URL: undefined }, 'SYNAPSE_URL', 'missing SYNAPSE_URL')
  rejects(t, { ...base, SYNAPSE_URL: 'matrix.example.com' }, 'SYNAPSE_URL', 'SYNAPSE_URL without scheme')
  rejects(t, { ...base, SYNAPSE_SERVER_NAME: undefined }, 'SYNAPSE_SERVER_NAME', 'missing server name')
  rejects(t, { ...base, SYNAPSE_SERVER_NAME: 'bad host!' }, 'SYNAPSE_SERVER_NAME', 'malformed server name')
  rejects(t, { ...base, PORT: 'eighty' }, 'PORT', 'PORT not a number')
  rejects(t, { ...base, PORT: '70000' }, 'PORT', 'PORT out of range')
  rejects(t, { ...base, SYNAPSE_TIMEOUT_MS: '5' }, 'SYNAPSE_TIMEOUT_MS', 'timeout too small')
  rejects(t, { ...base, LOG_LEVEL: 'loud' }, 'LOG_LEVEL', 'unknown log level')
  rejects(t, { ...base, ALLOW_REMOTE_ROOMS: 'yes' }, 'ALLOW_REMOTE_ROOMS', 'not a boolean')
  rejects(t, { ...base, JWT_ROLES_CLAIM: 'a..b' }, 'JWT_ROLES_CLAIM', 'empty path segment')
  rejects(t, { ...base, JOIN_ROLES: ' , ' }, 'JOIN_ROLES', 'no roles')
  rejects(t, { ...base, ALLOWED_ORGS: ',' }, 'ALLOWED_ORGS', 'no orgs')
  rejects(t, { ...base, JWT_ALGORITHMS: ',' }, 'JWT_ALGORITHMS', 'no algorithms')
  rejects(t, { ...base, SYNAPSE_ADMIN_TOKEN: undefined }, 'SYNAPSE_ADMIN_TOKEN', 'no admin token')
  rejects(t, { ...base, SYNAPSE_ADMIN_TOKEN: 'syt CANARY' }, 'SYNAPSE_ADMIN_TOKEN', 'white space in the token')
})

t.test('exactly one way to verify tokens, with algorithms that fit the key', async (t) => {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' })
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString()
  rejects(t, { ...base, JWT_SECRET: undefined }, 'JWT_SECRET', 'none given')
  rejects(t, { ...base, JWT_PUBLIC_KEY: pem }, 'JWT_PUBLIC_KEY', 'secret and public key')
  rejects(t, { ...base, JWT_JWKS_URL: 'https://idp.example/jwks' }, 'JWT_JWKS_URL', 'secret and JWKS')
  rejects(t, { ...base, JWT_ALGORITHMS: 'none' }, 'JWT_ALGORITHMS', 'none')
  rejects(t, { ...base, JWT_ALGORITHMS: 'HS256,RS256' }, 'JWT_ALGORITHMS', 'RS256 with an HMAC secret')
  const withKey = { ...base, JWT_SECRET: undefined, JWT_PUBLIC_KEY: pem }
  t.same(loadConfig(withKey).jwt.verification.algorithms, ['ES384'], 'derived from the curve')
  rejects(t, { ...withKey, JWT_ALGORITHMS: 'ES256' }, 'JWT_ALGORITHMS', 'ES256 with a P-384 key')
  rejects(t, { ...withKey, JWT_ALGORITHMS: 'HS256' }, 'JWT_ALGORITHMS', 'HS256 with a public key (key confusion)')
  rejects(t, { ...withKey, JWT_PUBLIC_KEY: 'CANARY not a key' }, 'JWT_PUBLIC_KEY', 'not a PEM')
  rejects(t, { ...withKey, JWT_PUBLIC_KEY: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() }, 'JWT_PUBLIC_KEY', 'a private key')
  const dsa = generateKeyPairSync('dsa', { modulusLength: 1024, divisorLength: 160 }).publicKey.export({ type: 'spki', format: 'pem' }).toString()
  rejects(t, { ...withKey, JWT_PUBLIC_KEY: dsa }, 'JWT_PUBLIC_KEY', 'an unsupported key type')
  const jwks = loadConfig({ ...base, JWT_SECRET: undefined, JWT_JWKS_URL: 'https://idp.example/jwks', JWT_ALGORITHMS: 'RS256, ES256' })
  t.same(jwks.jwt.verification, { kind: 'jwks', url: 'https://idp.example/jwks', algorithms: ['RS256', 'ES256'] })
  rejects(t, { ...base, JWT_SECRET: undefined, JWT_JWKS_URL: 'https://idp.example/jwks', JWT_ALGORITHMS: 'HS256' }, 'JWT_ALGORITHMS', 'HMAC with a JWKS')
})

t.test('*_FILE secrets: never both, readable, not empty, only the trailing newline stripped', async (t) => {
  const tokenFile = file('token', 'syt_from_file\n')
  const config = loadConfig({ ...base, SYNAPSE_ADMIN_TOKEN: undefined, SYNAPSE_ADMIN_TOKEN_FILE: tokenFile })
  t.equal(config.synapse.adminToken, 'syt_from_file')
  t.equal(loadConfig({ ...base, SYNAPSE_ADMIN_TOKEN: undefined, SYNAPSE_ADMIN_TOKEN_FILE: file('crlf', 'syt_x\r\n') }).synapse.adminToken, 'syt_x')
  rejects(t, { ...base, SYNAPSE_ADMIN_TOKEN_FILE: tokenFile }, 'SYNAPSE_ADMIN_TOKEN', 'both set')
  rejects(t, { ...base, SYNAPSE_ADMIN_TOKEN: undefined, SYNAPSE_ADMIN_TOKEN_FILE: join(dir, 'missing') }, 'SYNAPSE_ADMIN_TOKEN_FILE', 'unreadable')
  rejects(t, { ...base, SYNAPSE_ADMIN_TOKEN: undefined, SYNAPSE_ADMIN_TOKEN_FILE: file('empty', '\n') }, 'SYNAPSE_ADMIN_TOKEN_FILE', 'empty')
  rejects(t, { ...base, SYNAPSE_ADMIN_TOKEN: undefined, SYNAPSE_ADMIN_TOKEN_FILE: file('two', 'syt_x\n\n') }, 'SYNAPSE_ADMIN_TOKEN_FILE', 'only one newline is stripped')
  const { publicKey } = generateKeyPairSync('ed25519')
  const keyFile = file('key.pem', publicKey.export({ type: 'spki', format: 'pem' }).toString())
  t.same(loadConfig({ ...base, JWT_SECRET: undefined, JWT_PUBLIC_KEY_FILE: keyFile }).jwt.verification.algorithms, ['EdDSA'])
  rejects(t, { ...base, JWT_SECRET: undefined, JWT_PUBLIC_KEY: 'x', JWT_PUBLIC_KEY_FILE: keyFile }, 'JWT_PUBLIC_KEY', 'both key forms')
})

t.test('REDIS_URL_FILE: the Redis URL (with its password) from a file, never with REDIS_URL, never logged', async (t) => {
  const url = 'redis://:CANARY-valkey-password@valkey:6379/0'
  const config = loadConfig({ ...base, REDIS_URL_FILE: file('redis_url', `${url}\n`) })
  t.equal(config.redisUrl, url, 'the trailing newline is dropped')
  t.equal(startupSummary(config).shared_state, 'redis://valkey:6379/0', 'the summary shows where, without the password')
  t.equal(loadConfig(base).redisUrl, undefined)
  rejects(t, { ...base, REDIS_URL: 'redis://valkey:6379', REDIS_URL_FILE: file('redis_url_both', url) }, 'REDIS_URL', 'both set')
  rejects(t, { ...base, REDIS_URL_FILE: join(dir, 'missing') }, 'REDIS_URL_FILE', 'unreadable')
  rejects(t, { ...base, REDIS_URL_FILE: file('redis_url_bad', 'http://:CANARY@valkey\n') }, 'REDIS_URL_FILE', 'not a Redis URL, not repeated')
  rejects(t, { ...base, REDIS_URL_FILE: file('redis_url_two', `${url}\n${url}\n`) }, 'REDIS_URL_FILE', 'two URLs')
})

t.test('PUBLIC_URL: an http(s) URL, the trailing slash dropped', async (t) => {
  t.equal(loadConfig({ ...base, PUBLIC_URL: 'https://gateway.example.com/' }).publicUrl, 'https://gateway.example.com')
  t.equal(loadConfig({ ...base, PUBLIC_URL: 'https://example.com/matrix-admin' }).publicUrl, 'https://example.com/matrix-admin')
  t.equal(loadConfig(base).publicUrl, undefined)
  t.equal(startupSummary(loadConfig({ ...base, PUBLIC_URL: 'https://gateway.example.com' })).public_url, 'https://gateway.example.com', 'in the start-up summary')
  rejects(t, { ...base, PUBLIC_URL: 'gateway.example.com' }, 'PUBLIC_URL', 'no scheme')
})

t.test('every problem is reported at once, one line each, with the expected form', async (t) => {
  try {
    loadConfig({ SYNAPSE_URL: 'matrix.example.com', PORT: 'CANARY', JWT_CLOCK_TOLERANCE_S: '99999', LOG_LEVEL: 'loud', JOIN_ROLES: ',', REDIS_URL: 'http://:CANARY@redis' })
    t.fail('accepted')
  } catch (error) {
    t.ok(error instanceof ConfigError)
    const lines = (error as Error).message.split('\n')
    t.same(lines, [
      'Invalid configuration: PORT must be a whole number from 0 to 65535',
      'Invalid configuration: SYNAPSE_URL must look like http://127.0.0.1:8008',
      'Invalid configuration: SYNAPSE_SERVER_NAME is required (e.g. SYNAPSE_SERVER_NAME=example.com)',
      'Invalid configuration: JWT_CLOCK_TOLERANCE_S must be a whole number from 0 to 3600',
      'Invalid configuration: REDIS_URL must look like redis://redis:6379',
      'Invalid configuration: LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent',
      'Invalid configuration: SYNAPSE_ADMIN_TOKEN is required (or SYNAPSE_ADMIN_TOKEN_FILE): the access token of a Synapse server admin, e.g. syt_...',
      'Invalid configuration: JOIN_ROLES must name at least one role (e.g. JOIN_ROLES=matrix-admin,helpdesk)',
      'Invalid configuration: JWT_SECRET is required (or JWT_SECRET_FILE, JWT_PUBLIC_KEY, JWT_PUBLIC_KEY_FILE or JWT_JWKS_URL)'
    ])
    t.equal((error as ConfigError).problems.length, lines.length)
    t.equal((error as ConfigError).variable, 'PORT', 'variable is the first one at fault')
  }
})

t.test('unknown variables with our prefixes are warnings, with a did-you-mean', async (t) => {
  const config = loadConfig({ ...base, JWT_AUDIANCE: 'gw', SYNAPSE_ADMIN_TOKN_FILE: '/x', LOG_FORMAT: 'json', RATELIMIT_PER_MINUTE: '5', HOME: '/root', PATH: '/bin' })
  t.same(config.warnings, [
    'JWT_AUDIANCE: unknown variable; did you mean JWT_AUDIENCE?',
    'LOG_FORMAT: unknown variable',
    'SYNAPSE_ADMIN_TOKN_FILE: unknown variable; did you mean SYNAPSE_ADMIN_TOKEN_FILE?'
  ], 'other variables (HOME, PATH, another prefix) are not ours to judge')
  t.same(loadConfig(base).warnings, [])
})

t.test('the start-up summary says how the replica runs, without a secret', async (t) => {
  const summary = startupSummary(loadConfig({ ...base, REDIS_URL: 'redis://user:CANARY-redis-password@redis:6379/0', AUDIT_LOG_FILE: '/var/log/gw/audit.log' }))
  t.match(summary, {
    verification: { mode: 'HMAC secret', algorithms: ['HS256', 'HS384', 'HS512'], issuer: 'any (JWT_ISSUER unset)', audience: 'any (JWT_AUDIENCE unset)' },
    synapse: { url: 'http://127.0.0.1:8008', server_name: 'example.com' },
    audit: { destination: '/var/log/gw/audit.log', chained: false },
    policy: 'implicit (JOIN_ROLES: matrix-admin)',
    shared_state: 'redis://redis:6379/0',
    limits: { rate_limit_per_minute: 120, synapse_max_concurrency: 64, synapse_queue_timeout_ms: 2000, batch_max_items: 100 },
    metrics: 'on /metrics'
  })
  t.notMatch(JSON.stringify(summary), /CANARY/, 'no secret, no Redis password')
  const jwks = startupSummary(loadConfig({
    ...base,
    JWT_SECRET: undefined,
    JWT_JWKS_URL: 'https://idp.example/jwks?key=CANARY',
    JWT_ISSUER: 'https://idp.example',
    POLICY_FILE: '/etc/gw/policy.yaml',
    METRICS_PORT: '9100',
    METRICS_ENABLED: 'true'
  }))
  t.match(jwks, { verification: { mode: 'JWKS', jwks_url: 'https://idp.example/jwks', issuer: 'https://idp.example' }, policy: '/etc/gw/policy.yaml', shared_state: /per replica/, metrics: 'on port 9100' })
  t.notMatch(JSON.stringify(jwks), /CANARY/)
  const { publicKey } = generateKeyPairSync('ed25519')
  const keyed = startupSummary(loadConfig({ ...base, JWT_SECRET: undefined, JWT_PUBLIC_KEY: publicKey.export({ type: 'spki', format: 'pem' }).toString(), METRICS_ENABLED: 'false' }))
  t.match(keyed, { verification: { mode: 'public key', algorithms: ['EdDSA'] }, metrics: 'off' })
  t.notOk('pem' in keyed.verification, 'the key itself is not repeated')
})

t.test('the server process exits 1 with one line naming the variable', async (t) => {
  const result = await runServer({ ...base, SYNAPSE_SERVER_NAME: undefined, PORT: '0' })
  t.equal(result.code, 1)
  t.equal(result.stderr.trim().split('\n').length, 1, result.stderr)
  t.match(result.stderr, /^Invalid configuration: SYNAPSE_SERVER_NAME is required/)
  t.notMatch(result.stderr + result.stdout, /CANARY/)
  const several = await runServer({ ...base, SYNAPSE_SERVER_NAME: undefined, SYNAPSE_URL: 'nope', PORT: '0' })
  t.equal(several.code, 1)
  t.same(several.stderr.trim().split('\n').map((line) => line.split(' ')[2]), ['SYNAPSE_URL', 'SYNAPSE_SERVER_NAME'], 'one line per variable')
})

t.test('JWT_SECRET_FILE works like the other *_FILE variables', async (t) => {
  const secretFile = file('jwt_secret', `${SECRET}\n`)
  const config = loadConfig({ ...base, JWT_SECRET: undefined, JWT_SECRET_FILE: secretFile })
  t.match(config.jwt.verification, { kind: 'secret', secret: SECRET })
  rejects(t, { ...base, JWT_SECRET_FILE: secretFile }, 'JWT_SECRET', 'both set')
})

t.test('a port that is taken stops the process with one line', async (t) => {
  const { createServer } = await import('node:net')
  const taken = createServer().listen(0, '127.0.0.1')
  await new Promise((resolve) => taken.once('listening', resolve))
  t.after(() => { taken.close() })
  const port = String((taken.address() as { port: number }).port)
  const result = await runServer({ ...base, HOST: '127.0.0.1', PORT: port })
  t.equal(result.code, 1)
  t.match(result.stderr, /^Cannot listen on 127\.0\.0\.1: EADDRINUSE\n$/)
})
