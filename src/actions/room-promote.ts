import { Type } from '@sinclair/typebox'
import { PromoteBody, RoomParams } from '../schemas.js'
import { makeRoomAdminAnswer } from '../synapse/answers.js'
import type { ActionDefinition, DryRunCheck } from './action.js'
import { lookUpActiveUser, userCheck, roomCheck } from './checks.js'

const PromoteResult = Type.Object({ room_id: Type.String(), user_id: Type.String(), power_level: Type.Literal(100) })

/**
 * room.promote: Synapse's make_room_admin. It answers 200 for unknown and deactivated users (and
 * invites them), so the user is looked up first; it can half-succeed, audited as unknown.
 */
export const roomPromote: ActionDefinition<typeof RoomParams, typeof PromoteBody> = {
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
  target: ({ params, body }) => ({ room: (params as { roomIdOrAlias?: string }).roomIdOrAlias, userId: (body as { user_id?: string } | undefined)?.user_id }),

  async run (context, { room, userId }) {
    const user = userId as string
    const roomId = (room as NonNullable<typeof room>).id
    await lookUpActiveUser(context, user)
    makeRoomAdminAnswer(await context.act('make_room_admin', context.synapse.makeRoomAdmin(roomId, user)))
    return { room_id: roomId, user_id: user, power_level: 100 as const }
  },

  async dryRun (context, { room, userId }) {
    const checks: DryRunCheck[] = []
    const user = userId as string
    const roomId = (room as NonNullable<typeof room>).id
    const userProblem = await userCheck(context, user, checks, { refuseDeactivated: true })
    if (userProblem !== undefined) return { checks, code: userProblem }
    const state = await roomCheck(context, roomId, checks, { users: [user], powerUsers: true })
    if (state === undefined) return { checks, code: 'room_not_found' }
    const [sender] = state.joinedPowerUsers(context.config.synapse.serverName)
    if (sender === undefined || sender.level < state.levels.powerLevels) {
      checks.push({ name: 'local_admin_in_room', ok: false, detail: 'No joined local member of the room may change its power levels.' })
      return { checks, code: 'synapse_forbidden' }
    }
    // The event auth rules refuse changing the level of a user above the sender; Synapse then says "No local admin user in room with power …".
    if (state.powerLevel(user) > sender.level) {
      checks.push({ name: 'local_admin_in_room', ok: false, detail: `The user's power level ${state.powerLevel(user)} is above that of the best joined local member, ${sender.userId} (${sender.level}).` })
      return { checks, code: 'synapse_forbidden' }
    }
    checks.push({ name: 'local_admin_in_room', ok: true, detail: `${sender.userId} (power level ${sender.level}) can change the power levels.` })
    // In a public room nobody is invited, so a ban does not stop Synapse.
    if (state.membership(user) === 'ban' && state.joinRule !== 'public') {
      checks.push({ name: 'user_not_banned', ok: false, detail: 'The user is banned from the room.' })
      return { checks, code: 'user_banned' }
    }
    checks.push({ name: 'user_not_banned', ok: true, detail: `The user's membership: ${state.membership(user) ?? 'none'}.` })
    return { checks }
  }
}
