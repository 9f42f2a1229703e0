/**
 * Replays the second recording of a real Synapse 1.67.0 (test/fixtures/synapse/actions-contract.json:
 * kick, login-as, leave, logout, triage reads, make_room_admin, token problems) against a fresh
 * simulated homeserver seeded with the actions fixture, in recorded order, and checks that it
 * answers the same: status and full body, and the recorded effect before and after each case
 * (membership, member event sender and reason, power levels, whether a new event was sent, devices).
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import { SimulatedHomeserver } from '../../dev/homeserver/server.js'
import type { SimRoom } from '../../dev/homeserver/state.js'
import { SYNAPSE_VERSIONS } from '../../dev/homeserver/versions.js'
import { answerAs } from '../fixtures/synapse/versions.js'
import { sendRecorded } from '../helpers/http.js'

interface Side {
  membership?: string | null
  event_id?: string
  sender?: string
  reason?: unknown
  power_levels_event_id?: string
  power_levels_sender?: string
  power_levels_users?: Record<string, number>
  user_power_level?: number
  devices?: Array<{ device_id: string }>
}

interface Recording {
  case: string
  request: { method: string, path: string, body: unknown, body_is_raw_bytes?: boolean, headers?: Record<string, string> }
  response: { status: number, body: any }
  effect?: { before: Side, after: Side }
}

const recordings = JSON.parse(readFileSync(new URL('../fixtures/synapse/actions-contract.json', import.meta.url), 'utf8')) as Recording[]

/**
 * Values that differ on every run and mean nothing to a client: event IDs and their
 * `replaces_state` links (hashes), timestamps and ages, and the access tokens Synapse issues
 * (recorded redacted). Only their presence is compared.
 */
const VOLATILE = new Set(['event_id', 'replaces_state', 'origin_server_ts', 'age', 'last_seen', 'last_seen_ts'])

function normalise (value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalise)
  if (typeof value !== 'object' || value === null) return value
  return Object.fromEntries(Object.entries(value).map(([key, inner]) => {
    if (VOLATILE.has(key)) return [key, '<volatile>']
    if (key === 'access_token') return [key, '<redacted:issued-token>']
    return [key, normalise(inner)]
  }))
}

/** l18 asked for a token valid one hour from the time of recording: ask for one hour from now. */
function withFreshExpiry (body: unknown): unknown {
  const expiry = (body as { valid_until_ms?: unknown }).valid_until_ms
  return typeof expiry === 'number' ? { ...body as object, valid_until_ms: Date.now() + 3600_000 } : body
}

for (const version of SYNAPSE_VERSIONS) {
  t.test(`the simulated homeserver answers every recorded action as Synapse ${version} does (1.67.0's recording, its differences from 1.163.2's)`, async (t) => {
    const ownTokens: Record<string, string> = { alice: 'alice-own-token', bob: 'bob-own-token', oscar: 'oscar-own-token', sue: 'sue-own-token' }
    const homeserver = new SimulatedHomeserver({
      synapseVersion: version,
      fixture: 'actions',
      userTokens: Object.fromEntries(Object.entries(ownTokens).map(([name, token]) => [token, `@${name}:test.local`]))
    })
    const url = await homeserver.listen()
    t.teardown(async () => { await homeserver.close() })
    const admin = '@admin:test.local'
    // <redacted:user-token:NAME> is the user's own token until a login-as for NAME issues a new one.
    const current: Record<string, string> = { ...ownTokens }

    const substitute = (text: string, label: string) => text
      .replaceAll('<redacted:admin-token>', homeserver.adminToken)
      .replace(/<redacted:user-token:([a-z]+)>/g, (_placeholder, name: string) =>
      // The recording labels both of sue's tokens alike; l10c is, per its description, her own one.
        label === 'l10c' ? ownTokens[name] as string : current[name] as string)

    const roomOf = (path: string): SimRoom | undefined => {
      const segment = decodeURIComponent(path.split('/')[5] ?? '')
      for (const room of homeserver.state.rooms.values()) if (room.id === segment || room.aliases.includes(segment)) return room
      return undefined
    }
    const observe = (room: SimRoom, userId: string, devicesOf?: string) => ({
      membership: room.members.get(userId) ?? null,
      eventId: room.memberEvents.get(userId)?.eventId,
      sender: room.memberEvents.get(userId)?.sender,
      reason: room.memberEvents.get(userId)?.reason,
      plEventId: room.powerLevelsEventId,
      plSender: room.powerLevelsSender,
      plUsers: Object.fromEntries(room.powerLevels),
      userLevel: room.powerLevels.get(userId) ?? room.usersDefault,
      devices: devicesOf === undefined ? undefined : homeserver.state.users.get(devicesOf)?.devices
    })

    let replayed = 0
    for (const recording of recordings) {
      const { request, response, effect } = recording
      const label = recording.case.split(' ', 1)[0] as string
      const path = substitute(request.path, label)
      const headers = Object.fromEntries(Object.entries(request.headers ?? {}).map(([name, value]) => [name, substitute(value, label)]))
      const body = request.body === null || request.body === undefined
        ? undefined
        : request.body_is_raw_bytes === true ? String(request.body) : JSON.stringify(withFreshExpiry(request.body))

      // Whose membership and power level the effect describes.
      const route = path.split('?', 1)[0] as string
      const tokenUser = /<redacted:user-token:([a-z]+)>/.exec(request.headers?.Authorization ?? '')?.[1]
      const bodyUser = (request.body as { user_id?: unknown } | null)?.user_id
      const target = route.endsWith('/leave')
        ? `@${tokenUser as string}:test.local`
        : typeof bodyUser === 'string' ? bodyUser : route.endsWith('/make_room_admin') ? admin : undefined
      const loginUser = /^\/_synapse\/admin\/v1\/users\/([^/]+)\/login$/.exec(route)?.[1]
      const devicesOf = loginUser !== undefined ? decodeURIComponent(loginUser) : route.endsWith('/logout') ? `@${tokenUser as string}:test.local` : undefined
      const room = effect?.before.membership !== undefined || effect?.before.power_levels_users !== undefined ? roomOf(route) : undefined
      const before = room !== undefined && target !== undefined ? observe(room, target) : undefined

      const roomKnown = homeserver.state.rooms.has(decodeURIComponent(route.split('/')[5] ?? ''))
      const answer = await sendRecorded(url, request.method, path, headers, body)
      const expected = answerAs(version, request.method, route, response, roomKnown)
      t.equal(answer.status, expected.status, `${label}: status`)
      const actual = JSON.parse(answer.text) as unknown
      t.same(normalise(actual), normalise(expected.body), `${label}: body`)

      if (loginUser !== undefined && answer.status === 200) {
        const name = decodeURIComponent(loginUser).slice(1).split(':')[0] as string
        current[name] = (actual as { access_token: string }).access_token
      }
      if (effect !== undefined && before !== undefined && room !== undefined && target !== undefined) {
        const after = observe(room, target)
        const recorded = effect
        t.equal(before.membership, recorded.before.membership, `${label}: membership before`)
        t.equal(after.membership, recorded.after.membership, `${label}: membership after`)
        if (recorded.after.sender !== undefined) t.equal(after.sender, recorded.after.sender, `${label}: member event sender`)
        t.same(after.reason, recorded.after.reason, `${label}: reason stored`)
        t.equal(after.eventId === before.eventId, recorded.after.event_id === recorded.before.event_id, `${label}: new member event or the same one`)
        if (recorded.before.power_levels_users !== undefined) {
          t.same(before.plUsers, recorded.before.power_levels_users, `${label}: power levels before`)
          t.same(after.plUsers, recorded.after.power_levels_users, `${label}: power levels after`)
          t.equal(after.plSender, recorded.after.power_levels_sender, `${label}: power levels sender`)
          t.equal(after.userLevel, recorded.after.user_power_level, `${label}: the target's power level`)
          t.equal(after.plEventId === before.plEventId, recorded.after.power_levels_event_id === recorded.before.power_levels_event_id, `${label}: new power-level event or the same one`)
        }
      }
      if (effect?.after.devices !== undefined && devicesOf !== undefined) {
        t.same(homeserver.state.users.get(devicesOf)?.devices ?? [], effect.after.devices.map((device) => device.device_id), `${label}: devices unchanged`)
      }
      replayed++
    }
    t.equal(replayed, 167, 'every recorded exchange was replayed')
  })
}
