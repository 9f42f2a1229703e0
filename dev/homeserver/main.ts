/**
 * `npm run homeserver`: the simulated homeserver alone, on HOMESERVER_PORT (default 8008) at
 * 127.0.0.1, with the actions fixture (HOMESERVER_FIXTURE=join for the join recording's rooms),
 * answering as Synapse HOMESERVER_SYNAPSE_VERSION (1.163.2, the default, or 1.67.0).
 * Prints one line: URL, admin token, registration shared secret and the interesting fixtures.
 */
import { randomBytes } from 'node:crypto'
import { SimulatedHomeserver } from './server.js'
import { synapseVersionFrom, type SynapseVersion } from './versions.js'
import { ACTION_ROOMS, ACTION_USERS, RECORDED_ROOMS, SPEC_ROOMS, type Fixture } from './state.js'

const port = Number(process.env.HOMESERVER_PORT ?? '8008')
const fixture: Fixture = process.env.HOMESERVER_FIXTURE === 'join' ? 'join' : 'actions'
let synapseVersion: SynapseVersion
try {
  synapseVersion = synapseVersionFrom(process.env.HOMESERVER_SYNAPSE_VERSION)
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n`)
  process.exit(1)
}
const homeserver = new SimulatedHomeserver({
  fixture,
  synapseVersion,
  adminToken: process.env.HOMESERVER_ADMIN_TOKEN ?? `syt_sim_${randomBytes(16).toString('hex')}`,
  registrationSharedSecret: process.env.HOMESERVER_SHARED_SECRET ?? randomBytes(24).toString('base64url'),
  // A long-running process: do not keep every request in memory.
  recordCalls: false
})

const fixtures = fixture === 'actions'
  ? `deactivated ${ACTION_USERS.deactivated}, banned ${ACTION_USERS.banned} in ${ACTION_ROOMS.kickPublic} (#fresh-public), ` +
    `private ${ACTION_ROOMS.privateAdmin} (#fresh-private-admin), blocked ${ACTION_ROOMS.blocked} (#blocked-room)`
  : `deactivated @dave:test.local, banned @erin:test.local in ${RECORDED_ROOMS.publicTest} (#public-test), ` +
    `private ${RECORDED_ROOMS.privateAdmin} (#private-admin), blocked ${RECORDED_ROOMS.blocked}`

try {
  const url = await homeserver.listen(port)
  process.stdout.write(`Simulated homeserver (Synapse ${synapseVersion}, test.local, ${fixture} fixture) at ${url} ` +
    `admin token ${homeserver.adminToken} registration shared secret ${homeserver.registrationSharedSecret} ` +
    `fixtures: ${fixtures}, space ${SPEC_ROOMS.supportSpace} (#support)\n`)
} catch (error) {
  const code = (error as NodeJS.ErrnoException).code
  const hint = code === 'EADDRINUSE' ? ` (port ${port} is taken: set HOMESERVER_PORT to another one)` : ''
  process.stderr.write(`Cannot listen on 127.0.0.1:${port}: ${code ?? (error as Error).message}${hint}\n`)
  process.exit(1)
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { homeserver.close().then(() => process.exit(0), () => process.exit(1)) })
}
