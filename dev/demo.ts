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
  LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
  AUDIT_LOG_FILE: process.env.AUDIT_LOG_FILE
})
const app = await buildApp(config)
const url = await app.listen({ host: config.host, port: config.port })

const allowed = signJwt({ alg: 'HS256' }, helpdeskClaims({ sub: 'demo-helpdesk' }, 8 * 3600), jwtSecret)
const denied = signJwt({ alg: 'HS256' }, helpdeskClaims({ sub: 'demo-viewer', roles: ['matrix-viewer'] }, 8 * 3600), jwtSecret)
const curl = (token: string) =>
  `curl -sS -X POST '${url}/v1/rooms/%23public-test:test.local/members' -H 'Authorization: Bearer ${token}' --json '{"user_id": "@alice:test.local"}'`

process.stdout.write(`
synapse-admin-gateway demo
  gateway:              ${url}
  simulated homeserver: ${homeserverUrl} (server name test.local; users @alice, @bob, ... ; rooms #public-test, #private-admin)
  audit entries:        ${config.auditLogFile ?? 'standard output'}

Join @alice to #public-test (200; the token has the matrix-admin role, valid 8 hours):

${curl(allowed)}

The same with a token that lacks the role (403 insufficient_role, as application/problem+json):

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
