/**
 * The simulated homeserver answers as either recorded Synapse version on the endpoints the
 * gateway uses, as the recordings of both (scripts/synapse/record.ts) show: server_version,
 * the user lookup's fields and flag types, a kick in an unknown room, the room details' fields,
 * the state read filtered by type. HOMESERVER_SYNAPSE_VERSION picks the version.
 */
import t from 'tap'
import { request } from 'undici'
import { SimulatedHomeserver } from '../../dev/homeserver/server.js'
import { ACTION_ROOMS } from '../../dev/homeserver/state.js'
import { SYNAPSE_VERSIONS, synapseVersionFrom } from '../../dev/homeserver/versions.js'
import { recorded } from '../fixtures/synapse/versions.js'

const enc = encodeURIComponent
const types = (value: Record<string, unknown>) => Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, inner === null ? 'null' : Array.isArray(inner) ? 'array' : typeof inner]))

for (const version of SYNAPSE_VERSIONS) {
  t.test(`answers as Synapse ${version} was recorded`, async (t) => {
    const homeserver = new SimulatedHomeserver({ synapseVersion: version, fixture: 'actions' })
    const url = await homeserver.listen()
    t.teardown(async () => { await homeserver.close() })
    const call = async (method: 'GET' | 'POST', path: string, body?: unknown) => {
      const response = await request(`${url}${path}`, { method, headers: { authorization: `Bearer ${homeserver.adminToken}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })
      return { status: response.statusCode, server: response.headers.server, body: await response.body.json() as any }
    }

    const serverVersion = await call('GET', '/_synapse/admin/v1/server_version')
    t.same(serverVersion.body, recorded(version, 'g2').response.body, 'server_version (g2)')
    t.equal(serverVersion.server, recorded(version, 'g2').response.headers.server, 'the Server header names the version')

    const user = await call('GET', `/_synapse/admin/v2/users/${enc('@alice:test.local')}`)
    const ana = recorded(version, 'g4').response.body
    const { last_seen_ts: _seen, ...anaTypes } = types(ana)
    const { last_seen_ts: _simSeen, ...userTypes } = types(user.body)
    t.same(userTypes, anaTypes, 'the user lookup has the recorded fields, flags as 0/1 or booleans (g4)')

    const kick = await call('POST', `/_matrix/client/v3/rooms/${enc('!nosuch:test.local')}/kick`, { user_id: '@alice:test.local' })
    t.same({ status: kick.status, body: kick.body }, { status: recorded(version, 'g17').response.status, body: recorded(version, 'g17').response.body }, 'a kick in an unknown room (g17)')

    const details = await call('GET', `/_synapse/admin/v1/rooms/${enc(ACTION_ROOMS.kickPublic)}`)
    t.same(Object.keys(details.body).sort(), Object.keys(recorded(version, 'g25').response.body).sort(), 'the room details have the recorded fields (g25)')

    const filtered = await call('GET', `/_synapse/admin/v1/rooms/${enc(ACTION_ROOMS.kickPublic)}/state?type=m.room.power_levels`)
    const recordedTypes = new Set(recorded(version, 'g22').response.body.state.map((event: { type: string }) => event.type))
    const simulatedTypes = new Set(filtered.body.state.map((event: { type: string }) => event.type))
    t.equal(simulatedTypes.size === 1, recordedTypes.size === 1, `?type= is ${recordedTypes.size === 1 ? 'honoured' : 'ignored'} (g22)`)
    t.ok(simulatedTypes.has('m.room.power_levels'), 'the power levels are in the answer')
  })
}

t.test('HOMESERVER_SYNAPSE_VERSION names the version; unknown ones are refused', async (t) => {
  t.equal(synapseVersionFrom(undefined), '1.163.2', 'the newest by default')
  t.equal(synapseVersionFrom('newest'), '1.163.2')
  t.equal(synapseVersionFrom('1.67'), '1.67.0')
  t.equal(synapseVersionFrom('1.67.0'), '1.67.0')
  t.throws(() => synapseVersionFrom('1.100.0'), /HOMESERVER_SYNAPSE_VERSION=1\.100\.0 is not a simulated version; use one of 1\.163\.2, 1\.67\.0/)
})
