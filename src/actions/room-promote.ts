import { Type } from '@sinclair/typebox'
import { PromoteBody, RoomParams } from '../schemas.js'
import { makeRoomAdminAnswer } from '../synapse/answers.js'
import { defineAction } from './action.js'
import { roomExists, userExists } from './checks.js'

/** make_room_admin acts through the room's highest-power joined local member: the checks read those memberships too. */
const POWER_USERS = { powerUsers: true }

const PromoteResult = Type.Object({ room_id: Type.String(), user_id: Type.String(), power_level: Type.Literal(100) })

/**
 * room.promote: Synapse's make_room_admin. It answers 200 for unknown and deactivated users (and
 * invites them), so the user is looked up first; it can half-succeed, audited as unknown.
 */
export const roomPromote = defineAction({
  name: 'room.promote',
  method: 'POST',
  url: '/v1/rooms/:roomIdOrAlias/admins',
  acting: true,
  operationId: 'promoteRoomAdmin',
  summary: 'Make a local user a room admin (power level 100)',
  description: 'Looks the user up (unknown: 404, deactivated: 409), then calls Synapse\'s make_room_admin, which acts through the room\'s highest-power local member. In an invite-only room the user is also invited.',
  params: RoomParams,
  body: PromoteBody,
  result: PromoteResult,
  problems: ['invalid_body', 'invalid_user_id', 'invalid_room', 'user_not_local', 'room_not_local', 'reason_required', 'user_banned', 'synapse_forbidden',
    'room_not_found', 'user_not_found', 'user_deactivated', 'payload_too_large', 'unsupported_media_type'],
  checks: [
    userExists({ refuseDeactivated: true }),
    roomExists(POWER_USERS),
    {
      name: 'local_admin_in_room',
      by: 'synapse',
      fails: ['synapse_forbidden'],
      async check (context, { roomId, userId }) {
        const state = await context.facts.room(roomId, POWER_USERS)
        const [sender] = state.joinedPowerUsers(context.config.synapse.serverName)
        if (sender === undefined || sender.level < state.levels.powerLevels) {
          return { ok: false, code: 'synapse_forbidden', detail: 'No joined local member of the room may change its power levels.' }
        }
        // The event auth rules refuse changing the level of a user above the sender; Synapse then says "No local admin user in room with power …".
        if (state.powerLevel(userId) > sender.level) {
          return { ok: false, code: 'synapse_forbidden', detail: `The user's power level ${state.powerLevel(userId)} is above that of the best joined local member, ${sender.userId} (${sender.level}).` }
        }
        return { ok: true, detail: `${sender.userId} (power level ${sender.level}) can change the power levels.` }
      }
    },
    {
      name: 'user_not_banned',
      by: 'synapse',
      fails: ['user_banned'],
      async check (context, { roomId, userId }) {
        const state = await context.facts.room(roomId, POWER_USERS)
        // In a public room nobody is invited, so a ban does not stop Synapse.
        if (state.membership(userId) === 'ban' && state.joinRule !== 'public') return { ok: false, code: 'user_banned', detail: 'The user is banned from the room.' }
        return { ok: true, detail: `The user's membership: ${state.membership(userId) ?? 'none'}.` }
      }
    }
  ],

  async run (context, { room, userId }) {
    const user = userId as string
    const roomId = (room as NonNullable<typeof room>).id
    makeRoomAdminAnswer(await context.synapse.makeRoomAdmin(roomId, user))
    return { room_id: roomId, user_id: user, power_level: 100 as const }
  }
})
