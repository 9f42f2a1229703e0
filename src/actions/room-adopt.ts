import { Type } from '@sinclair/typebox'
import { GatewayError, problem } from '../errors.js'
import { RemoveBody, RoomParams } from '../schemas.js'
import { makeRoomAdminAnswer, ownJoinAnswer } from '../synapse/answers.js'
import { changingCall } from '../synapse/client.js'
import type { RoomSnapshot } from '../synapse/rooms.js'
import { defineAction, type ActionContext } from './action.js'
import { roomExists, type CheckResult } from './checks.js'

/** The power the gateway's account needs to invite and remove anyone below a room's admins. */
const ADOPTED_LEVEL = 100

/** make_room_admin acts through the room's highest-power joined local member: the checks read those memberships too. */
const POWER_USERS = { powerUsers: true }

/**
 * The join make_room_admin leaves to its target: it only invites into a room that is not public
 * (m3b, a1, a2), and the admin join API cannot join the admin itself there, even invited (its own
 * invite would come from an account that is not in the room: b2s, a6). A client join as the
 * invited account can (a3; test/fixtures/synapse/adopt-*.json).
 */
const ownJoin = (roomId: string, reason: string | undefined) =>
  changingCall('own_join', 'POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/join`, reason === undefined ? {} : { reason })

const AdoptResult = Type.Object({
  room_id: Type.String({ description: 'The room ID, resolved when an alias was given.' }),
  changed: Type.Boolean({ description: 'false when the gateway\'s account already was a joined member with power level 100: nothing was sent.' })
})

const CANNOT_BE_ADOPTED = {
  code: 'room_cannot_be_adopted',
  detail: 'No joined local member of this room has the power to change its power levels, so Synapse cannot give the gateway\'s account power in it. A room admin of this homeserver must join the room (or invite the gateway\'s account and give it power level 100 themselves), then retry.'
} as const

/** A version 12 room's creators have unlimited power (Infinity in the snapshot). */
const levelText = (level: number) => Number.isFinite(level) ? String(level) : 'unlimited (creator)'

/** What adopting the room takes: the grant (make_room_admin, which also invites), the join, or nothing. */
interface Plan { grant: boolean, join: boolean }

function planOf (state: RoomSnapshot, gateway: string): Plan {
  const membership = state.membership(gateway)
  const powerful = state.powerLevel(gateway) >= ADOPTED_LEVEL
  if (membership === 'join') return { grant: !powerful, join: false }
  // Without an invite, only a public room lets the account join; make_room_admin sends the invite.
  const mayJoin = membership === 'invite' || state.joinRule === 'public'
  return { grant: !powerful || !mayJoin, join: true }
}

async function roomAndPlan (context: ActionContext, roomId: string): Promise<{ state: RoomSnapshot, gateway: string, plan: Plan }> {
  const state = await context.facts.room(roomId, POWER_USERS)
  const gateway = await context.adminUserId()
  return { state, gateway, plan: planOf(state, gateway) }
}

/** The member make_room_admin will act through (joined creators of a version 12 room first), or a refusal. */
async function grantingMember (context: ActionContext, roomId: string): Promise<CheckResult & { level?: number }> {
  const { state, plan } = await roomAndPlan(context, roomId)
  if (!plan.grant) return 'skip'
  const [sender] = state.joinedPowerUsers(context.config.synapse.serverName)
  if (sender === undefined) {
    return { ok: false, code: 'room_cannot_be_adopted', detail: 'No local member listed in the room\'s power levels (or among its creators) is joined: Synapse has nobody to grant power through.' }
  }
  if (sender.level < state.levels.powerLevels) {
    return { ok: false, code: 'room_cannot_be_adopted', detail: `The most powerful joined local member, ${sender.userId} (power level ${sender.level}), may not change the power levels (${state.levels.powerLevels} needed).` }
  }
  // Synapse gives the gateway's account the granting member's level; a creator (unlimited power) grants 100.
  const level = Number.isFinite(sender.level) ? sender.level : ADOPTED_LEVEL
  return { ok: true, level, detail: `${sender.userId} (power level ${levelText(sender.level)}) can grant power level ${level}.` }
}

/** After the grant, the join failed: the power level stays; a retry only joins. */
function halfDone (error: unknown): unknown {
  if (!(error instanceof GatewayError) || error.outcome === 'unknown') return error
  return problem(error.problem, `${error.message} The gateway's account was already given its power level in the room but has not joined it; retry room.adopt (it then only joins).`, {
    outcome: 'unknown', matrixErrcode: error.matrixErrcode, retryAfterS: error.retryAfterS, headers: error.headers
  })
}

/**
 * room.adopt: the gateway's own account becomes a joined member of the room with power level 100,
 * so that joins into the private room and removals from it work. Synapse's make_room_admin for
 * the account (power level, and an invite when the room is not public), then the account's own
 * client join. Nothing is sent when it already is a joined member with that power.
 */
export const roomAdopt = defineAction({
  name: 'room.adopt',
  method: 'POST',
  url: '/v1/rooms/:roomIdOrAlias/adopt',
  acting: true,
  operationId: 'adoptRoom',
  summary: 'Make the gateway\'s own account a room member with power level 100',
  description: 'Prepares a room for the other actions: the gateway\'s account gets power level 100 through Synapse\'s make_room_admin (which acts through the room\'s most powerful joined local member, and invites the account into a room that is not public), then joins as itself. "changed": false when it already was a joined member with power level 100. 409 room_cannot_be_adopted when no joined local member may change the power levels (or the account is banned). Optional JSON body {"reason"}.',
  params: RoomParams,
  body: Type.Union([RemoveBody, Type.Null()]) as unknown as typeof RemoveBody,
  result: AdoptResult,
  problems: ['invalid_body', 'invalid_room', 'room_not_local', 'reason_required', 'room_cannot_be_adopted', 'synapse_forbidden', 'room_not_found',
    'payload_too_large', 'unsupported_media_type'],
  checks: [
    roomExists(POWER_USERS),
    {
      name: 'gateway_not_banned',
      by: 'gateway',
      fails: ['room_cannot_be_adopted'],
      async check (context, { roomId }) {
        const { state, gateway } = await roomAndPlan(context, roomId)
        if (state.membership(gateway) !== 'ban') return { ok: true, detail: `The gateway's account's membership: ${state.membership(gateway) ?? 'none'}.` }
        return { ok: false, code: 'room_cannot_be_adopted', detail: `The gateway's account ${gateway} is banned from the room; a room admin must unban it first.` }
      }
    },
    {
      name: 'not_adopted_yet',
      by: 'gateway',
      fails: [],
      async check (context, { roomId }) {
        const { state, gateway, plan } = await roomAndPlan(context, roomId)
        const level = state.powerLevel(gateway)
        if (!plan.grant && !plan.join) return { ok: true, done: true, detail: `The gateway's account is joined with power level ${levelText(level)}: nothing would change.` }
        return { ok: true, detail: `The gateway's account has power level ${levelText(level)}; it needs ${[plan.grant ? 'make_room_admin' : '', plan.join ? 'a join' : ''].filter(Boolean).join(' and ')}.` }
      }
    },
    {
      name: 'local_member_can_grant',
      by: 'synapse',
      fails: ['room_cannot_be_adopted'],
      async check (context, { roomId }) {
        const found = await grantingMember(context, roomId)
        return found === 'skip' ? { ok: true, detail: 'The gateway\'s account already has the power; make_room_admin is not needed.' } : found
      }
    },
    {
      name: 'grant_reaches_100',
      by: 'gateway',
      fails: ['room_cannot_be_adopted'],
      async check (context, { roomId }) {
        const found = await grantingMember(context, roomId)
        if (found === 'skip' || !found.ok || found.level === undefined) return 'skip'
        if (found.level >= ADOPTED_LEVEL) return { ok: true, detail: `The gateway's account would get power level ${found.level}.` }
        return { ok: false, code: 'room_cannot_be_adopted', detail: `The most powerful joined local member has power level ${found.level}: Synapse would give the gateway's account only that, not ${ADOPTED_LEVEL}. A member with power level ${ADOPTED_LEVEL} must join the room (or give the gateway's account power level ${ADOPTED_LEVEL} themselves).` }
      }
    }
  ],

  async run (context, { room, reason }) {
    const roomId = (room as NonNullable<typeof room>).id
    const { plan } = await roomAndPlan(context, roomId)
    if (plan.grant) makeRoomAdminAnswer(await context.synapse.makeRoomAdmin(roomId, await context.adminUserId()), CANNOT_BE_ADOPTED)
    if (plan.join) {
      try {
        ownJoinAnswer(await context.synapse.send(ownJoin(roomId, reason)))
      } catch (error) {
        throw plan.grant ? halfDone(error) : error
      }
    }
    return { room_id: roomId, changed: plan.grant || plan.join }
  }
})
