/**
 * docker-compose.yml without a Docker engine: `docker compose` is not installable here (Debian
 * only has Compose v1, which predates the Compose Specification's `name`), so the file is
 * validated against the Compose Specification's JSON schema (vendored in
 * test/fixtures/compose-spec/), interpolated with .env.example (copied to .env by the operator)
 * as compose would, and each gateway replica's environment is given to the real loadConfig with
 * the files compose mounts, for each way of checking tokens that .env can choose.
 * Where the `docker compose` plugin exists, `docker compose config` checks the file as well.
 */
import { execFile } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseEnv, promisify } from 'node:util'
import { Ajv, type ErrorObject } from 'ajv'
import t from 'tap'
import { parse } from 'yaml'
import { loadConfig } from '../../src/config.js'

const read = (file: string) => readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8')
const composeText = read('docker-compose.yml')
// Compose resolves YAML merge keys (<<) itself.
const compose = parse(composeText, { merge: true }) as any
const dotenvText = read('.env.example')
const dotenv = parseEnv(dotenvText) as Record<string, string>

/** Compose's interpolation of ${VAR}, ${VAR:-default} and ${VAR:?error}, from .env. */
function interpolate (value: string, variables: Record<string, string | undefined>): string {
  return value.replace(/\$\{([A-Z0-9_]+)(?::([-?])([^}]*))?\}/g, (_all, name: string, operator?: string, argument?: string) => {
    const set = variables[name]
    if (set !== undefined && set !== '') return set
    if (operator === '?') throw new Error(`compose would refuse to start: ${name}: ${argument ?? ''}`)
    return operator === '-' ? argument ?? '' : ''
  })
}

t.test('the file is valid Compose Specification, and the check catches what is not', async (t) => {
  const schema = JSON.parse(read('test/fixtures/compose-spec/compose-spec.json')) as object
  // The vendored schema names a draft-07 meta-schema by an https address Ajv does not know.
  const validate = new Ajv({ allErrors: true, strict: false, validateSchema: false }).compile(schema)
  t.ok(validate(compose), JSON.stringify(validate.errors))
  const broken = parse(composeText, { merge: true }) as any
  broken.services.gateway.depends_on.synapse.condition = 'service_ready'
  broken.services.valkey.read_onyl = true
  t.notOk(validate(broken), 'an unknown condition and a misspelt key are refused')
  const paths = new Set((validate.errors ?? []).map((error: ErrorObject) => error.instancePath))
  t.ok(paths.has('/services/gateway/depends_on/synapse/condition') && paths.has('/services/valkey'), 'each named where it is')
})

t.test('SERVER_NAME is set once, in .env, and used by Synapse and every gateway', async (t) => {
  t.match(dotenv.SERVER_NAME, /^[a-z0-9.-]+$/, '.env sets SERVER_NAME')
  const raw = parse(composeText) as any // before merges: where the names are written
  const expression = raw['x-server-name'] as string
  t.match(expression, /^\$\{SERVER_NAME:\?[^}]+\}$/, 'without .env compose refuses to start instead of guessing a name')
  t.equal(compose.services['synapse-config'].environment.SYNAPSE_SERVER_NAME, expression)
  for (const name of ['gateway', 'gateway-2']) t.equal(compose.services[name].environment.SYNAPSE_SERVER_NAME, expression, name)
  t.equal(composeText.match(/SERVER_NAME:\?/g)?.length, 1, 'one expression, shared by anchors')
  t.throws(() => interpolate(expression, {}), /SERVER_NAME/, 'no default that could differ from Synapse\'s')
})

t.test('Synapse is pinned to a recent release, the same for both of its services', async (t) => {
  const image = compose.services.synapse.image as string
  t.equal(compose.services['synapse-config'].image, image)
  const version = /^matrixdotorg\/synapse:v(\d+)\.(\d+)\.(\d+)$/.exec(image)
  t.ok(version, `a release tag, not latest: ${image}`)
  t.ok(Number(version?.[1]) === 1 && Number(version?.[2]) > 67, 'newer than the 1.67.0 of the recordings')
  t.notMatch(composeText, /\$\{SYNAPSE_VERSION/, 'no variable that silently falls back to another version')
})

t.test('the replicas profile adds a second gateway and the Valkey they share', async (t) => {
  const services = compose.services as Record<string, any>
  const defaultServices = Object.keys(services).filter((name) => services[name].profiles === undefined).sort()
  t.same(defaultServices, ['gateway', 'synapse', 'synapse-config'], 'a plain `up` starts only these')
  t.same(services['gateway-2'].profiles, ['replicas'])
  t.same(services.valkey.profiles, ['replicas'])
  t.equal(services['gateway-2'].environment.REDIS_URL, 'redis://valkey:6379')
  t.equal(services['gateway-2'].depends_on.valkey.condition, 'service_healthy')
  t.same(services.valkey.healthcheck.test, ['CMD', 'valkey-cli', 'ping'])
  // eslint-disable-next-line no-template-curly-in-string -- compose's interpolation, not a template
  t.equal(services.gateway.environment.REDIS_URL, '${REDIS_URL:-}', 'the first gateway joins when .env sets REDIS_URL')
  t.match(dotenvText, /^#COMPOSE_PROFILES=replicas\n#REDIS_URL=redis:\/\/valkey:6379$/m, '.env shows both switches together')
  t.not(services['gateway-2'].environment.AUDIT_LOG_FILE, services.gateway.environment.AUDIT_LOG_FILE, 'one audit file (one hash chain) per replica')
  t.not(services['gateway-2'].ports[0], services.gateway.ports[0])
  for (const name of ['gateway', 'gateway-2', 'valkey']) {
    t.equal(services[name].read_only, true, `${name}: read-only root filesystem`)
    t.same(services[name].cap_drop, ['ALL'], `${name}: no capabilities`)
  }
  t.equal(services.valkey.user, '999:999', 'Valkey as its own user: with no capabilities its entrypoint cannot switch users')
  for (const name of ['gateway', 'gateway-2']) {
    const policy = services[name].configs.find((config: { source: string }) => config.source === 'policy')
    t.equal(services[name].environment.POLICY_FILE, policy.target, `${name}: POLICY_FILE is the mounted policy`)
  }
  t.equal(compose.configs.policy.file, './examples/policy.yaml')
  t.ok(existsSync(new URL('../../examples/policy.yaml', import.meta.url)), 'the example policy exists')
})

const secretsDir = mkdtempSync(join(tmpdir(), 'gateway-compose-'))
const secretFile = (name: string, content: string) => { writeFileSync(join(secretsDir, name), content); return join(secretsDir, name) }
const mounted: Record<string, string> = {
  '/run/secrets/synapse_admin_token': secretFile('synapse_admin_token', 'syt_from_bootstrap\n'),
  '/run/secrets/jwt_secret': secretFile('jwt_secret', 'a-secret-made-with-openssl-rand-base64-48\n'),
  '/run/secrets/audit_chain_key': secretFile('audit_chain_key', 'a-chain-key-made-with-openssl-rand-base64-48\n'),
  // What `openssl genpkey -algorithm ed25519` writes.
  '/run/secrets/audit_checkpoint_key': secretFile('audit_checkpoint_key', generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()),
  '/etc/synapse-admin-gateway/policy.yaml': secretFile('policy.yaml', read('examples/policy.yaml'))
}
/** The configuration one gateway service gets, with .env's values and the files where compose mounts them. */
function serviceConfig (service: string, variables: Record<string, string>) {
  const env: Record<string, string> = { HOST: '0.0.0.0', PORT: '8080' } // the image's ENV
  for (const [key, value] of Object.entries(compose.services[service].environment as Record<string, string>)) {
    const interpolated = interpolate(String(value), variables)
    env[key] = mounted[interpolated] ?? interpolated
  }
  return loadConfig(env)
}

t.test('each gateway replica gets a configuration the gateway accepts, secrets as files', async (t) => {
  for (const [service, redisUrl] of [['gateway', undefined], ['gateway-2', 'redis://valkey:6379']] as const) {
    const gateway = compose.services[service]
    t.same([...gateway.secrets].sort(), ['audit_chain_key', 'audit_checkpoint_key', 'jwt_secret', 'synapse_admin_token'])
    const config = serviceConfig(service, dotenv)
    t.match(config, { synapse: { url: 'http://synapse:8008', adminToken: 'syt_from_bootstrap', serverName: dotenv.SERVER_NAME }, redisUrl, jwt: { verification: { kind: 'secret' }, rolesClaim: 'roles' } }, service)
    t.match(config.auditLogFile, /^\/var\/log\/gateway\//, 'the audit volume, which the image makes writable for node')
    t.ok(config.auditChainKey !== undefined, 'the chain key is a Docker secret')
    t.same(config.warnings, [], 'no misspelt variable')
    t.match(gateway.environment.AUDIT_CHECKPOINT_FILE, /^\/var\/log\/gateway\/.+\.checkpoints$/, 'checkpoints on the audit volume')
    t.equal(gateway.environment.AUDIT_CHECKPOINT_KEY_FILE, '/run/secrets/audit_checkpoint_key', 'signed with the checkpoint key, a Docker secret')
  }
  t.not(compose.services['gateway-2'].environment.AUDIT_CHECKPOINT_FILE, compose.services.gateway.environment.AUDIT_CHECKPOINT_FILE, 'one checkpoint file per chain')
  for (const name of ['synapse_admin_token', 'jwt_secret', 'audit_chain_key', 'audit_checkpoint_key']) {
    t.same(compose.secrets[name], { file: `./secrets/${name}` })
  }
})

t.test('.env chooses how tokens are checked, without editing docker-compose.yml', async (t) => {
  const uncommented = parseEnv(dotenvText.replace(/^#(JWT_[A-Z_]+=)/gm, '$1')) as Record<string, string>
  const { JWT_SECRET_FILE: _secret, ...jwks } = uncommented
  const config = serviceConfig('gateway', jwks)
  t.match(config.jwt, {
    verification: { kind: 'jwks', url: uncommented.JWT_JWKS_URL },
    issuer: uncommented.JWT_ISSUER,
    audience: uncommented.JWT_AUDIENCE,
    rolesClaim: 'realm_access.roles'
  }, 'the IdP lines of .env.example, uncommented, with the secret line commented out')
  t.throws(() => serviceConfig('gateway', uncommented), /JWT_JWKS_URL conflicts with JWT_SECRET_FILE/, 'both kept: the gateway says to choose one')
  t.throws(() => serviceConfig('gateway', { SERVER_NAME: 'localhost' }), /JWT_SECRET is required/, 'neither: the gateway says what is missing')
})

t.test('the bootstrap writes the token where the gateways read it, owned by the image\'s node user', async (t) => {
  const bootstrap = compose.services.bootstrap
  t.equal(bootstrap.command.join(' '), 'node dist/bootstrap-admin.js')
  t.equal(bootstrap.environment.TOKEN_FILE, '/secrets/synapse_admin_token')
  t.equal(bootstrap.environment.FILE_OWNER, '1000:1000')
  t.same(bootstrap.volumes, ['synapse-data:/synapse-data:ro', './secrets:/secrets'])
  t.same(bootstrap.profiles, ['bootstrap'], 'not started by `up`')
  t.equal(compose.services.gateway.depends_on.synapse.condition, 'service_healthy')
})

t.test('docs/deploy.md explains Compose v2, the bootstrap order, secrets ownership and the replicas profile', async (t) => {
  const deploy = read('docs/deploy.md')
  t.match(deploy, /docker-compose-plugin/)
  t.match(deploy, /Docker Desktop/)
  t.match(deploy, /docker compose up -d`? before the bootstrap|Do not run `docker compose up -d` before/)
  t.match(deploy, /uid 1000/)
  t.match(deploy, /--profile replicas/)
})

const composePlugin = await promisify(execFile)('docker', ['compose', 'version']).then(() => true, () => false)
t.test('docker compose config accepts the file', { skip: composePlugin ? false : 'the docker compose plugin is not installed here: checked against the schema above instead' }, async (t) => {
  const { stdout } = await promisify(execFile)('docker', ['compose', '--profile', 'replicas', 'config', '--format', 'json'], { cwd: new URL('../..', import.meta.url).pathname })
  const resolved = JSON.parse(stdout) as { services: Record<string, { environment: Record<string, string> }> }
  t.equal(resolved.services.gateway?.environment.SYNAPSE_SERVER_NAME, dotenv.SERVER_NAME)
  t.equal(resolved.services.synapse !== undefined, true)
})
