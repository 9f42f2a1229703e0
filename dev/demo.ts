/**
 * `npm run demo`: the gateway in front of the simulated homeserver, with generated secrets,
 * and two ready-to-paste curl commands (one that joins, one that is denied). Nothing to configure.
 */
import { randomBytes } from 'node:crypto'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { SimulatedHomeserver } from './homeserver/server.js'
import { helpdeskClaims, signJwt } from './tokens.js'

const port = process.env.PORT ?? '8080'
const jwtSecret = randomBytes(32).toString('base64url')
const homeserver = new SimulatedHomeserver({ adminToken: `syt_demo_${randomBytes(16).toString('hex')}` })
const homeserverUrl = await homeserver.listen(Number(process.env.DEMO_HOMESERVER_PORT ?? 0))

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
const url = await app.listen({ host: config.host, port: config.port })

const allowed = signJwt({ alg: 'HS256' }, helpdeskClaims({ sub: 'demo-helpdesk' }, 8 * 3600), jwtSecret)
const denied = signJwt({ alg: 'HS256' }, helpdeskClaims({ sub: 'demo-viewer', roles: ['matrix-viewer'] }, 8 * 3600), jwtSecret)
const helpdesk = signJwt({ alg: 'HS256' }, helpdeskClaims({ sub: 'demo-servicedesk', roles: ['helpdesk'] }, 8 * 3600), jwtSecret)
const curl = (token: string, room = '%23public-test:test.local', user = '@alice:test.local') =>
  `curl -sS -X POST '${url}/v1/rooms/${room}/members' -H 'Authorization: Bearer ${token}' --json '{"user_id": "${user}"}'`

process.stdout.write(`
synapse-admin-gateway demo
  gateway:              ${url}
  simulated homeserver: ${homeserverUrl} (server name test.local; users @alice, @bob, ... ; rooms #public-test, #private-admin)
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

Press Ctrl-C to stop.
`)

const stop = async () => {
  await app.close()
  await homeserver.close()
  process.exit(0)
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { stop().catch((error: unknown) => { console.error(error); process.exit(1) }) })
}
