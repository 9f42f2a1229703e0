/**
 * Replays every account case of both recordings (modern-1.163.2.json, v1.67-account-actions.json:
 * l* lock, s* suspend, d* devices, p* password reset, x* deactivation) against the simulated
 * homeserver answering as that version, in recorded order, with the recording's users, passwords
 * and room: same status, errcode, error text and body (values that change on every run, such as
 * tokens, event IDs and timestamps, only by presence). The effects are the recorded follow-up
 * cases themselves (whoami and login after a lock, a reset or a deactivation; the lookup after).
 */
import { request } from 'undici'
import t from 'tap'
import { SimulatedHomeserver } from '../../dev/homeserver/server.js'
import { buildRoom } from '../../dev/homeserver/state.js'
import { SYNAPSE_VERSIONS } from '../../dev/homeserver/versions.js'
import { RECORDINGS, recorded, type Exchange } from '../fixtures/synapse/versions.js'

const ACCOUNT_CASE = /^[lsdpx]\d+$/
const NAMES = ['ana', 'bob', 'carl', 'ivan', 'jill', 'kim', 'lena', 'gina', 'hank', 'mia']
/** Different on every run; compared by presence only. */
const VOLATILE = new Set(['event_id', 'access_token', 'creation_ts', 'last_seen_ts', 'origin_server_ts', 'age', 'base_url'])

const idOf = (exchange: Exchange) => exchange.case.split(' ', 1)[0] as string

function normalise (value: unknown, volatile: Set<string>): unknown {
  if (Array.isArray(value)) return value.map((inner) => normalise(inner, volatile))
  if (typeof value !== 'object' || value === null) return value
  return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, volatile.has(key) ? '<volatile>' : normalise(inner, VOLATILE)]))
}

/** The body as compared: a device list in device ID order (Synapse's order is not specified); whoami's and login's device ID by presence. */
function comparable (path: string, body: any): unknown {
  if (Array.isArray(body?.devices)) body = { ...body, devices: [...body.devices].sort((a, b) => String(a.device_id).localeCompare(String(b.device_id))) }
  const topLevel = /\/(account\/whoami|login)$/.test(path) ? new Set([...VOLATILE, 'device_id']) : VOLATILE
  return normalise(body, topLevel)
}

for (const version of SYNAPSE_VERSIONS) {
  t.test(`the account endpoints answer every l/s/d/p/x case as Synapse ${version} was recorded`, async (t) => {
    const exchanges = RECORDINGS[version].filter((exchange) => ACCOUNT_CASE.test(idOf(exchange)))
    const homeserver = new SimulatedHomeserver({ synapseVersion: version, fixture: 'actions' })
    const url = await homeserver.listen()
    t.teardown(async () => { await homeserver.close() })

    // The recording's world: its users (passwords as the recorded logins show them), kim's two
    // devices with the recorded IDs, and the public room ivan, gina and hank joined.
    const text = JSON.stringify(RECORDINGS[version])
    const tokens: Record<string, string> = {}
    const passwords: Record<string, string> = {}
    const kimDevices = (recorded(version, 'd1').response.body.devices as Array<{ device_id: string }>).map((device) => device.device_id)
    const kimSecond = (recorded(version, 'd2').request.body as { devices: string[] }).devices[0] as string
    for (const name of NAMES) {
      const password = new RegExp(`pw-${name}-[0-9a-f]{12}`).exec(text)?.[0] ?? `pw-${name}-unrecorded`
      passwords[name] = password
      const deviceId = name === 'kim' ? kimDevices.find((id) => id !== kimSecond) : undefined
      tokens[name] = homeserver.createUser({ localpart: name, password, displayname: `${name[0]?.toUpperCase()}${name.slice(1)} Example`, deviceId }).accessToken
    }
    const login = (name: string, deviceId?: string) => {
      const answer = homeserver.accounts.login(JSON.stringify({ type: 'm.login.password', identifier: { type: 'm.id.user', user: `@${name}:test.local` }, password: passwords[name], device_id: deviceId }))
      return (answer.body as { access_token: string }).access_token
    }
    tokens['jill-2'] = login('jill')
    tokens['kim-2'] = login('kim', kimSecond)
    const publicRoom = decodeURIComponent(recorded(version, 's3').request.path.split('/')[5] as string)
    homeserver.state.rooms.set(publicRoom, buildRoom({
      id: publicRoom,
      name: 'Public room',
      creator: '@admin:test.local',
      isPublic: true,
      members: ['admin', 'ivan', 'gina', 'hank'].map((name) => [`@${name}:test.local`, 'join']),
      powerLevels: { '@admin:test.local': 100 }
    }, homeserver.state))

    let replayed = 0
    for (const exchange of exchanges) {
      const id = idOf(exchange)
      // Lena's second session is opened right before the password cases, as the recorder did.
      if (id === 'p1') tokens['lena-2'] = login('lena')
      const substitute = (value: string) => value
        .replaceAll('<redacted:admin-token>', homeserver.adminToken)
        .replace(/<redacted:user-token:([a-z0-9-]+)>/g, (_placeholder, name: string) => tokens[name] as string)
      const headers = Object.fromEntries(Object.entries(exchange.request.headers).map(([name, value]) => [name, substitute(value)]))
      const response = await request(`${url}${exchange.request.path}`, {
        method: exchange.request.method as 'GET' | 'POST' | 'PUT',
        headers,
        body: exchange.request.body === null ? undefined : JSON.stringify(exchange.request.body)
      })
      const body = await response.body.json() as any
      const expected = exchange.response
      t.equal(response.statusCode, expected.status, `${id}: status (${exchange.case})`)
      if (id === 's4') {
        // The timeline differs (the simulator keeps only messages sent to it): its shape is compared.
        t.same(Object.keys(body).sort(), Object.keys(expected.body).sort(), `${id}: the same fields`)
        t.ok(Array.isArray(body.chunk), `${id}: a chunk of events`)
      } else {
        t.same(comparable(exchange.request.path, body), comparable(exchange.request.path, expected.body), `${id}: body`)
      }
      replayed++
    }
    t.equal(replayed, 61, 'every account case of the recording was replayed')
  })
}

t.test('a fault on one account endpoint slows only that endpoint (deactivation for SYNAPSE_DEACTIVATE_TIMEOUT_MS)', async (t) => {
  const homeserver = new SimulatedHomeserver({ fixture: 'actions' })
  const url = await homeserver.listen()
  t.teardown(async () => { await homeserver.close() })
  const { userId } = homeserver.createUser({ localpart: 'slowpoke', password: 'a password' })
  const admin = { authorization: `Bearer ${homeserver.adminToken}`, 'content-type': 'application/json' }
  homeserver.fault = { kind: 'slow', on: 'deactivate', delayMs: 400 }

  const started = performance.now()
  const deactivation = request(`${url}/_synapse/admin/v1/deactivate/${encodeURIComponent(userId)}`, { method: 'POST', headers: admin, body: '{}' })
  const lookup = await request(`${url}/_synapse/admin/v2/users/${encodeURIComponent(userId)}`, { headers: admin })
  const lookedUp = await lookup.body.json() as { deactivated: boolean }
  t.ok(performance.now() - started < 400, 'the lookup is not slowed')
  t.equal(lookedUp.deactivated, false, 'while the deactivation is under way, the user is still active')
  const answer = await deactivation
  t.same(await answer.body.json(), { id_server_unbind_result: 'success' }, 'the deactivation answers as usual')
  t.ok(performance.now() - started >= 390, 'after the delay')
  t.equal(homeserver.state.users.get(userId)?.deactivated, true, 'and the user is deactivated')
})
