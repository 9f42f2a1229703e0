import { problem } from '../errors.js'
import { RemoveBody, RoomUserParams } from '../schemas.js'
import { Type } from '@sinclair/typebox'
import { kickAnswer, roomKnown } from '../synapse/answers.js'
import { defineAction } from './action.js'
import { adminInRoom, roomExists, userExists } from './checks.js'

const RemoveResult = Type.Object({
  room_id: Type.String(),
  user_id: Type.String(),
  membership: Type.Union([Type.Literal('leave'), Type.Literal('ban')], { description: '"ban" when the user was banned (the ban stays).' }),
  changed: Type.Boolean({ description: 'false when the user was not in the room (left, kicked, never joined, or banned).' })
})

/**
 * room.remove: Synapse has no admin endpoint for it, so a kick through the client API as the
 * admin account. Synapse answers "The target user is not in the room" for an absent user and for
 * an unknown room alike; the room's details tell the two apart.
 */
export const roomRemove = defineAction({
  name: 'room.remove',
  method: 'DELETE',
  url: '/v1/rooms/:roomIdOrAlias/members/:userId',
  acting: true,
  operationId: 'removeRoomMember',
  summary: 'Remove a user from a room',
  description: 'Kicks the user through the client API as the gateway\'s admin account (it must be in the room with kick power over the user). A user who is not in the room also succeeds, with "changed": false; an invite is revoked; a ban stays. Deactivated users may be removed. Optional JSON body {"reason"}.',
  params: RoomUserParams,
  body: Type.Union([RemoveBody, Type.Null()]) as unknown as typeof RemoveBody,
  result: RemoveResult,
  problems: ['invalid_body', 'invalid_user_id', 'invalid_room', 'user_not_local', 'room_not_local', 'reason_required', 'protected_target', 'admin_not_in_room',
    'admin_cannot_kick', 'synapse_forbidden', 'room_not_found', 'user_not_found', 'payload_too_large', 'unsupported_media_type'],
  checks: [
    {
      name: 'not_protected',
      by: 'gateway',
      fails: ['protected_target'],
      async check (context, { userId }) {
        if (userId !== await context.adminUserId()) return { ok: true, detail: 'The user is not the gateway\'s own admin account.' }
        return {
          ok: false,
          code: 'protected_target',
          detail: 'The user is the gateway\'s own admin account, which is never removed.',
          refusal: 'The gateway\'s own admin account cannot be removed: it would lose its place in the room.'
        }
      }
    },
    userExists({ refuseDeactivated: false }),
    roomExists(),
    {
      // Synapse checks the target before the sender: an absent or banned user is "done" whatever the admin's place.
      name: 'user_in_room',
      by: 'synapse',
      fails: [],
      async check (context, { roomId, userId }) {
        const membership = (await context.facts.room(roomId)).membership(userId)
        if (membership !== 'join' && membership !== 'invite') {
          return { ok: true, done: true, detail: `The user is not in the room (${membership ?? 'never joined'}): nothing would change.` }
        }
        return { ok: true, detail: `The user's membership is ${membership}.` }
      }
    },
    adminInRoom({ publicRoomNeedsNone: false, detail: 'The gateway\'s admin account is not in the room.' }),
    {
      name: 'admin_can_kick',
      by: 'synapse',
      fails: ['admin_cannot_kick'],
      async check (context, { roomId, userId }) {
        const state = await context.facts.room(roomId)
        const adminLevel = state.powerLevel(await context.adminUserId())
        const userLevel = state.powerLevel(userId)
        if (adminLevel < state.levels.kick || userLevel >= adminLevel) {
          return { ok: false, code: 'admin_cannot_kick', detail: `The admin account's power level ${adminLevel} must reach the kick level ${state.levels.kick} and exceed the user's ${userLevel}.` }
        }
        return { ok: true, detail: `The admin account's power level ${adminLevel} may kick a user at ${userLevel}.` }
      }
    }
  ],

  async run (context, { room, userId, reason }) {
    const user = userId as string
    const roomId = (room as NonNullable<typeof room>).id
    const answer = kickAnswer(await context.synapse.kick(roomId, user, reason))
    if (answer === 'removed') return { room_id: roomId, user_id: user, membership: 'leave', changed: true }
    if (answer === 'banned') return { room_id: roomId, user_id: user, membership: 'ban', changed: false }
    if (!roomKnown(await context.synapse.roomDetails(roomId))) {
      throw problem('room_not_found', 'Synapse does not know this room: check the room ID or alias.')
    }
    return { room_id: roomId, user_id: user, membership: 'leave', changed: false }
  }
})
