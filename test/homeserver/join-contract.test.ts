/**
 * Replays the recordings of a real Synapse 1.67.0 (test/fixtures/synapse/join-contract.json)
 * against the simulated homeserver, in recorded order, and checks that it answers the same:
 * status, errcode, error text, success bodies and the target's membership afterwards.
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import { SimulatedHomeserver } from '../../dev/homeserver/server.js'
import { RECORDED_ROOMS, type Membership } from '../../dev/homeserver/state.js'
import { SYNAPSE_VERSIONS } from '../../dev/homeserver/versions.js'
import { answerAs } from '../fixtures/synapse/versions.js'
import { sendRecorded } from '../helpers/http.js'

interface Recording {
  case: string
  request: { method: string, path: string, body: unknown, body_is_raw_bytes?: boolean, headers?: Record<string, string> }
  response: { status: number | null | unknown[] | Record<string, number>, body: any }
  effect?: { before: { membership: Membership | null }, after: { membership: Membership | null } }
}

const recordings = JSON.parse(readFileSync(new URL('../fixtures/synapse/join-contract.json', import.meta.url), 'utf8')) as Recording[]

const TOKENS: Record<string, string> = {
  '<redacted:alice-token>': 'alice-token',
  '<redacted:tina-token>': 'tina-token',
  '<redacted:dave-token>': 'dave-token'
}

/** Endpoints the simulated homeserver implements; the others are only replayed for their effects. */
const SIMULATED = /^\/_synapse\/admin\/v1\/join\/|^\/_synapse\/admin\/v2\/users\/|^\/_matrix\/client\/v3\/account\/whoami|^\/_matrix\/client\/v3\/directory\/room\/|^\/_synapse\/admin\/v1\/server_version|^\/health$/

for (const version of SYNAPSE_VERSIONS) {
  t.test(`the simulated homeserver answers every recorded case as Synapse ${version} does (1.67.0's recording, its differences from 1.163.2's)`, async (t) => {
    const homeserver = new SimulatedHomeserver({ synapseVersion: version, userTokens: { 'alice-token': '@alice:test.local', 'tina-token': '@tina:test.local', 'dave-token': '@dave:test.local' } })
    const url = await homeserver.listen()
    t.teardown(async () => { await homeserver.close() })
    const substitute = (text: string) => {
      let out = text.replaceAll('<redacted:admin-token>', homeserver.adminToken)
      for (const [placeholder, token] of Object.entries(TOKENS)) out = out.replaceAll(placeholder, token)
      return out
    }
    const membershipOf = (roomId: string, userId: string) => homeserver.state.rooms.get(roomId)?.members.get(userId) ?? null
    const roomOf = (path: string) => {
      const segment = decodeURIComponent(path.split('?')[0]?.split('/').pop() ?? '')
      if (segment.startsWith('!')) return segment
      for (const room of homeserver.state.rooms.values()) if (room.aliases.includes(segment)) return room.id
      return undefined
    }

    let replayed = 0
    for (const recording of recordings) {
      const { request, response } = recording
      if (typeof response.status !== 'number') continue // summaries of bursts
      const path = request.path
      if (!SIMULATED.test(path.split('?')[0] as string)) {
      // State changes made through endpoints we do not simulate, as the recordings show them.
        if (recording.case.startsWith('h7b ')) homeserver.state.rooms.get(RECORDED_ROOMS.alicePrivate)?.members.set('@admin:test.local', 'invite')
        if (recording.case.startsWith('h7d2 ')) homeserver.state.rooms.get(RECORDED_ROOMS.alicePrivate)?.members.set('@admin:test.local', 'join')
        if (recording.case.startsWith('h8 ')) homeserver.state.rooms.get(RECORDED_ROOMS.bobPrivate)?.powerLevels.set('@admin:test.local', 100)
        continue
      }
      const body = request.body === null || request.body === undefined
        ? undefined
        : request.body_is_raw_bytes === true ? String(request.body) : JSON.stringify(request.body)
      const target = (request.body as { user_id?: unknown } | null)?.user_id
      const roomId = path.startsWith('/_synapse/admin/v1/join/') ? roomOf(path) : undefined
      if (recording.effect !== undefined && typeof target === 'string' && roomId !== undefined) {
      // Memberships changed between cases by steps that were not recorded (e.g. a kick).
        const room = homeserver.state.rooms.get(roomId)
        const before = recording.effect.before.membership
        if (room !== undefined && before === null) room.members.delete(target)
        else if (room !== undefined && before !== null) room.members.set(target, before)
      }
      const headers = Object.fromEntries(Object.entries(request.headers ?? {}).map(([name, value]) => [name, substitute(value)]))
      const answer = await sendRecorded(url, request.method, substitute(path), headers, body)
      const label = recording.case
      const route = path.split('?', 1)[0] as string
      const recorded = answerAs(version, request.method, route, response as { status: number, body: any }, homeserver.state.rooms.has(decodeURIComponent(route.split('/')[5] ?? '')))
      t.equal(answer.status, recorded.status, `${label}: status`)
      const expected = recorded.body
      if (typeof expected === 'object' && expected !== null && 'errcode' in expected) {
        const actual = JSON.parse(answer.text) as { errcode: string, error: string }
        t.equal(actual.errcode, expected.errcode, `${label}: errcode`)
        t.equal(actual.error, expected.error, `${label}: error text`)
      } else if (path.startsWith('/_synapse/admin/v2/users/') && response.status === 200) {
        const actual = JSON.parse(answer.text) as Record<string, unknown>
        t.same(Object.keys(actual).sort(), Object.keys(expected).sort(), `${label}: user fields`)
        t.equal(actual.deactivated, expected.deactivated, `${label}: deactivated`)
      } else if (path.startsWith('/_matrix/client/v3/account/whoami')) {
        t.equal((JSON.parse(answer.text) as { user_id: string }).user_id, expected.user_id, `${label}: whoami user`)
      } else if (typeof expected === 'object' && expected !== null) {
        t.same(JSON.parse(answer.text), expected, `${label}: body`)
      }
      if (recording.effect !== undefined && typeof target === 'string' && roomId !== undefined) {
        t.equal(membershipOf(roomId, target), recording.effect.after.membership, `${label}: membership after`)
      }
      replayed++
    }
    t.ok(replayed >= 110, `replayed ${replayed} recorded cases`)
  })
}
