/**
 * `npm run demo`: the gateway in front of the simulated homeserver, with generated secrets,
 * two ready-to-paste curl commands (one that joins, one that is denied), the fixtures worth
 * trying and how to mint more tokens. Nothing to configure.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { SimulatedHomeserver } from './homeserver/server.js'
import { synapseVersionFrom } from './homeserver/versions.js'
import { RECORDED_ROOMS } from './homeserver/state.js'
import { helpdeskClaims, signJwt } from './tokens.js'

const port = process.env.PORT ?? '8080'
const jwtSecret = randomBytes(32).toString('base64url')
// The secret goes to a private file, so that `npm run token` can mint more tokens with it.
const secretDir = mkdtempSync(join(tmpdir(), 'synapse-admin-gateway-demo-'))
const secretFile = join(secretDir, 'jwt_secret')
writeFileSync(secretFile, `${jwtSecret}\n`, { mode: 0o600 })
const homeserver = new SimulatedHomeserver({ adminToken: `syt_demo_${randomBytes(16).toString('hex')}`, synapseVersion: synapseVersionFrom(process.env.HOMESERVER_SYNAPSE_VERSION) })
const homeserverUrl = await homeserver.listen(Number(process.env.DEMO_HOMESERVER_PORT ?? 0))

async function stop (code: number): Promise<never> {
  await homeserver.close()
  rmSync(secretDir, { recursive: true, force: true })
  process.exit(code)
}

const config = loadConfig({
  HOST: '127.0.0.1',
  PORT: port,
  SYNAPSE_URL: homeserverUrl,
  SYNAPSE_ADMIN_TOKEN: homeserver.adminToken,
  SYNAPSE_SERVER_NAME: homeserver.serverName,
  JWT_SECRET: jwtSecret,
  ALLOWED_ORGS: 'example',
  // Who may do what: the example policy (operators, helpdesk, viewers, on-call), or your own file.
  POLICY_FILE: process.env.POLICY_FILE ?? 'examples/policy.yaml',
  LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
  AUDIT_LOG_FILE: process.env.AUDIT_LOG_FILE
})
const app = await buildApp(config)
let url = ''
try {
  url = await app.listen({ host: config.host, port: config.port })
} catch (error) {
  const code = (error as NodeJS.ErrnoException).code
  process.stderr.write(code === 'EADDRINUSE'
    ? `Port ${config.port} on ${config.host} is taken; run the demo on another one: PORT=8081 npm run demo\n`
    : `Cannot listen on ${config.host}:${config.port}: ${code ?? (error as Error).message}\n`)
  await app.close()
  await stop(1)
}

const allowed = signJwt({ alg: 'HS256' }, helpdeskClaims({ sub: 'demo-helpdesk' }, 8 * 3600), jwtSecret)
const denied = signJwt({ alg: 'HS256' }, helpdeskClaims({ sub: 'demo-viewer', roles: ['matrix-viewer'] }, 8 * 3600), jwtSecret)
const helpdesk = signJwt({ alg: 'HS256' }, helpdeskClaims({ sub: 'demo-servicedesk', roles: ['helpdesk'] }, 8 * 3600), jwtSecret)
const curl = (token: string, room = '%23public-test:test.local', user = '@alice:test.local') =>
  `curl -sS -X POST '${url}/v1/rooms/${room}/members' -H 'Authorization: Bearer ${token}' --json '{"user_id": "${user}"}'`

process.stdout.write(`
synapse-admin-gateway demo
  gateway:              ${url}
  simulated homeserver: ${homeserverUrl} (server name test.local)
  audit entries:        ${config.auditLogFile ?? 'standard output'}
  policy:               ${config.policyFile ?? 'none'} (check a policy offline: npm run policy -- check FILE)

Join @alice to #public-test (200; the token has the matrix-admin role, valid 8 hours):

${curl(allowed)}

The policy in action: a helpdesk token joins @bob to the public rooms (200, rule helpdesk-public-rooms)
and nowhere else (403 policy_denied, the room does not match):

  ${curl(helpdesk, '%23public-test:test.local', '@bob:test.local')}

  ${curl(helpdesk, '%23private-admin:test.local', '@bob:test.local')}

The same join with a viewer token (403 policy_denied: the policy lets matrix-viewer only read; as application/problem+json):

${curl(denied)}

Worth trying (replace the room in the URL or the user_id in the body):
  users:  @alice, @bob, @frank ... join fine; @dave is deactivated (409 user_deactivated);
          @erin is banned from #public-test and #private-admin (403 user_banned);
          @nobody does not exist (404 user_not_found)
  rooms:  #public-test:test.local, #public-bob:test.local  public
          #private-admin:test.local                       private, the admin account is in it (joins by invite)
          ${RECORDED_ROOMS.alicePrivate}         private, the admin account is not in it (403 admin_not_in_room)
          ${RECORDED_ROOMS.bobPrivate}         the admin account may not invite (403 admin_cannot_invite)
          ${RECORDED_ROOMS.blocked}         blocked on the server (403 room_blocked)

More tokens for this demo (the secret is in a private file, removed when the demo stops):

  JWT_SECRET_FILE=${secretFile} npm run -s token -- --sub me --roles matrix-admin --ttl 3600

Press Ctrl-C to stop.
`)

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    app.close().then(async () => await stop(0)).catch((error: unknown) => { console.error(error); process.exit(1) })
  })
}
