import { serverOf } from '../matrix-ids.js'
import { JoinBody, JoinResult, RoomParams } from '../schemas.js'
import { blockStatus, joinAnswer } from '../synapse/answers.js'
import { defineAction } from './action.js'
import { adminInRoom, roomExists, userExists } from './checks.js'

/** room.join: Synapse's admin join API, after looking the user up (Synapse joins deactivated users). */
export const roomJoin = defineAction({
  name: 'room.join',
  method: 'POST',
  url: '/v1/rooms/:roomIdOrAlias/members',
  acting: true,
  operationId: 'joinRoom',
  summary: 'Join a local user to a room',
  description: 'Looks the user up (unknown: 404, deactivated: 409), resolves an alias to its room ID, checks the policy, then joins the user through Synapse\'s admin API. Joining a user who is already in the room succeeds. Every attempt is audited.',
  params: RoomParams,
  body: JoinBody,
  result: JoinResult,
  problems: ['invalid_body', 'invalid_user_id', 'invalid_room', 'user_not_local', 'room_not_local', 'reason_required', 'admin_not_in_room', 'admin_cannot_invite',
    'user_banned', 'room_blocked', 'synapse_forbidden', 'room_not_found', 'user_not_found', 'user_deactivated', 'payload_too_large', 'unsupported_media_type'],
  // What Synapse's join servlet checks, in its order, read from the room's state.
  checks: [
    userExists({ refuseDeactivated: true }),
    roomExists(),
    {
      name: 'room_not_blocked',
      by: 'synapse',
      fails: ['room_blocked'],
      async check (context, { roomId }) {
        if (blockStatus(await context.synapse.blockStatus(roomId))) return { ok: false, code: 'room_blocked', detail: 'The room is blocked on this homeserver.' }
        return { ok: true, detail: 'The room is not blocked.' }
      }
    },
    {
      name: 'user_not_banned',
      by: 'synapse',
      fails: ['user_banned'],
      async check (context, { roomId, userId }) {
        const membership = (await context.facts.room(roomId)).membership(userId)
        if (membership === 'ban') return { ok: false, code: 'user_banned', detail: 'The user is banned from the room.' }
        return { ok: true, detail: `The user's membership: ${membership ?? 'none'}.` }
      }
    },
    adminInRoom({ publicRoomNeedsNone: true, detail: 'The room is not public and the gateway\'s admin account is not in it.' }),
    {
      name: 'admin_can_invite',
      by: 'synapse',
      fails: ['admin_cannot_invite'],
      async check (context, { roomId, userId }) {
        const state = await context.facts.room(roomId)
        if (state.joinRule === 'public') return { ok: true, detail: 'The room is public: no invite is needed.' }
        if (state.membership(userId) === 'join') return { ok: true, detail: 'The user is already in the room.' }
        const level = state.powerLevel(await context.adminUserId())
        if (level < state.levels.invite) {
          return { ok: false, code: 'admin_cannot_invite', detail: `The admin account's power level ${level} is below the invite level ${state.levels.invite}.` }
        }
        return { ok: true, detail: `The admin account's power level ${level} allows inviting (${state.levels.invite}).` }
      }
    }
  ],

  async run (context, { room, userId }) {
    const user = userId as string
    const resolved = room as NonNullable<typeof room>
    // Server hints only for a remote room (ALLOW_REMOTE_ROOMS): a local room needs none.
    const servers = resolved.alias !== null && serverOf(resolved.alias) !== context.config.synapse.serverName ? resolved.servers : []
    joinAnswer(await context.synapse.join(resolved.id, user, servers), user)
    return { room_id: resolved.id, user_id: user }
  }
})
