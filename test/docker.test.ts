/**
 * No Docker engine runs here, so the Docker files are checked by reading them: the image's start
 * command is the README's, it runs as `node`, its HEALTHCHECK works (run here against a real
 * gateway), and the compose stack passes the gateway a configuration it accepts.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { parse } from 'yaml'
import { loadConfig } from '../src/config.js'
import { startHarness } from './helpers/harness.js'

const read = (file: string) => readFileSync(new URL(`../${file}`, import.meta.url), 'utf8')
const dockerfile = read('Dockerfile')
const stages = dockerfile.split(/^FROM /m).slice(1)
const runtime = stages.at(-1) as string
const jsonInstruction = (text: string, instruction: string) => {
  const match = new RegExp(`^${instruction} (?:.*?CMD )?(\\[.*\\])\\s*$`, 'm').exec(text.replace(/\\\n\s*/g, ''))
  return match === null ? undefined : JSON.parse(match[1] as string) as string[]
}

t.test('the image starts the way the README says, as node (not npm) under the node user', async (t) => {
  const cmd = jsonInstruction(runtime, 'CMD')
  t.same(cmd, ['node', 'dist/server.js'])
  const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string>, engines: Record<string, string> }
  t.equal(pkg.scripts.start, (cmd as string[]).join(' '), 'npm start runs the same command')
  t.match(read('README.md'), /npm start runs dist\/server\.js/)
  t.match(read('README.md'), /CMD \["node", "dist\/server\.js"\]/, 'the README names the image\'s command')
  t.equal(stages.length, 2, 'multi-stage')
  t.ok(stages.every((stage) => stage.startsWith('node:24')), 'Node 24 LTS base')
  t.match(runtime, /^USER node$/m)
  t.match(runtime, /HOST=0\.0\.0\.0/)
  t.match(runtime, /npm ci --omit=dev/)
  t.match(runtime, /COPY --from=build \/app\/dist \.\/dist/)
  const instructions = dockerfile.split('\n').filter((line) => !line.trimStart().startsWith('#')).join('\n')
  t.notMatch(instructions, /curl|wget|apt-get/, 'no HTTP client installed or needed in the image')
  t.match(read('.dockerignore'), /^node_modules$/m)
  t.equal(pkg.engines.node, '>=20.19')
})

t.test('the HEALTHCHECK command reports a serving gateway healthy and a dead one unhealthy', async (t) => {
  const healthcheck = jsonInstruction(runtime, 'HEALTHCHECK') as string[]
  t.equal(healthcheck[0], 'node')
  const h = await startHarness(t)
  const run = async (port: string) => await promisify(execFile)(process.execPath, healthcheck.slice(1), { env: { PORT: port } }).then(() => 0, (error: { code: number }) => error.code)
  t.equal(await run(new URL(h.url).port), 0)
  t.equal(await run('9'), 1)
})

t.test('the compose stack gives the gateway a configuration it accepts, with secrets as files', async (t) => {
  const compose = parse(read('docker-compose.yml')) as any
  t.ok(compose.services.synapse.image.startsWith('matrixdotorg/synapse'), 'the official Synapse image')
  const gateway = compose.services.gateway
  t.equal(gateway.environment.SYNAPSE_ADMIN_TOKEN_FILE, '/run/secrets/synapse_admin_token')
  t.equal(gateway.environment.JWT_SECRET_FILE, '/run/secrets/jwt_secret')
  t.same(gateway.secrets.sort(), ['jwt_secret', 'synapse_admin_token'])
  t.same(compose.secrets.synapse_admin_token, { file: './secrets/synapse_admin_token' })
  t.equal(compose.services.bootstrap.command.join(' '), 'node dist/bootstrap-admin.js')
  t.equal(compose.services.bootstrap.environment.TOKEN_FILE, '/secrets/synapse_admin_token')
  t.same(compose.services.bootstrap.volumes, ['synapse-data:/synapse-data:ro', './secrets:/secrets'])
  t.equal(gateway.depends_on.synapse.condition, 'service_healthy')
  t.match(read('Dockerfile'), /chown node:node \/var\/log\/gateway/, 'the audit directory is writable by the gateway')

  // What the gateway would see inside the container: compose's env, the image's env, the secret files.
  const dir = mkdtempSync(join(tmpdir(), 'gateway-compose-'))
  const secret = (name: string, value: string) => { writeFileSync(join(dir, name), `${value}\n`); return join(dir, name) }
  const env: Record<string, string> = { HOST: '0.0.0.0', PORT: '8080' }
  for (const [key, value] of Object.entries(gateway.environment as Record<string, string>)) env[key] = String(value)
  env.SYNAPSE_SERVER_NAME = 'localhost' // ${SERVER_NAME:-localhost}
  env.SYNAPSE_ADMIN_TOKEN_FILE = secret('synapse_admin_token', 'syt_from_bootstrap')
  env.JWT_SECRET_FILE = secret('jwt_secret', 'a-secret-made-with-openssl-rand-base64-48')
  const config = loadConfig(env)
  t.match(config, { host: '0.0.0.0', synapse: { url: 'http://synapse:8008', adminToken: 'syt_from_bootstrap' }, auditLogFile: '/var/log/gateway/audit.log' })
})
