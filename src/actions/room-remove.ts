import { problem } from '../errors.js'
import { RemoveBody, RoomUserParams } from '../schemas.js'
import { Type } from '@sinclair/typebox'
import { kickAnswer, roomDetails } from '../synapse/answers.js'
import type { ActionContext, ActionDefinition, DryRunCheck } from './action.js'
import { lookUpUser, userCheck, roomCheck } from './checks.js'

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
export const roomRemove: ActionDefinition<typeof RoomUserParams, typeof RemoveBody> = {
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
  target: ({ params }) => {
    const { roomIdOrAlias, userId } = params as { roomIdOrAlias?: string, userId?: string }
    return { room: roomIdOrAlias, userId }
  },

  async run (context, { room, userId, reason }) {
    const user = userId as string
    const roomId = (room as NonNullable<typeof room>).id
    await refuseOwnAccount(context, user)
    await lookUpUser(context, user)
    const answer = kickAnswer(await context.act('kick', context.synapse.kick(roomId, user, reason)))
    if (answer === 'removed') return { room_id: roomId, user_id: user, membership: 'leave', changed: true }
    if (answer === 'banned') return { room_id: roomId, user_id: user, membership: 'ban', changed: false }
    if (roomDetails(await context.read('room_details', context.synapse.roomDetails(roomId))) === undefined) {
      throw problem('room_not_found', 'Synapse does not know this room: check the room ID or alias.')
    }
    return { room_id: roomId, user_id: user, membership: 'leave', changed: false }
  },

  async dryRun (context, { room, userId }) {
    const checks: DryRunCheck[] = []
    const user = userId as string
    const roomId = (room as NonNullable<typeof room>).id
    // A prediction like the others (200, would_succeed false), not the real call's 403.
    if (user === await context.adminUserId()) {
      checks.push({ name: 'not_protected', ok: false, detail: 'The user is the gateway\'s own admin account, which is never removed.' })
      return { checks, code: 'protected_target' }
    }
    checks.push({ name: 'not_protected', ok: true, detail: 'The user is not the gateway\'s own admin account.' })
    const userProblem = await userCheck(context, user, checks, { refuseDeactivated: false })
    if (userProblem !== undefined) return { checks, code: userProblem }
    const state = await roomCheck(context, roomId, checks, { users: [user] })
    if (state === undefined) return { checks, code: 'room_not_found' }
    // Synapse checks the target before the sender: an absent or banned user is "done" whatever the admin's place.
    const membership = state.membership(user)
    if (membership !== 'join' && membership !== 'invite') {
      checks.push({ name: 'user_in_room', ok: true, detail: `The user is not in the room (${membership ?? 'never joined'}): nothing would change.` })
      return { checks }
    }
    checks.push({ name: 'user_in_room', ok: true, detail: `The user's membership is ${membership}.` })
    const admin = await context.adminUserId()
    if (state.membership(admin) !== 'join') {
      checks.push({ name: 'admin_in_room', ok: false, detail: 'The gateway\'s admin account is not in the room.' })
      return { checks, code: 'admin_not_in_room' }
    }
    checks.push({ name: 'admin_in_room', ok: true, detail: 'The gateway\'s admin account is in the room.' })
    const adminLevel = state.powerLevel(admin)
    const userLevel = state.powerLevel(user)
    if (adminLevel < state.levels.kick || userLevel >= adminLevel) {
      checks.push({ name: 'admin_can_kick', ok: false, detail: `The admin account's power level ${adminLevel} must reach the kick level ${state.levels.kick} and exceed the user's ${userLevel}.` })
      return { checks, code: 'admin_cannot_kick' }
    }
    checks.push({ name: 'admin_can_kick', ok: true, detail: `The admin account's power level ${adminLevel} may kick a user at ${userLevel}.` })
    return { checks }
  }
}

/** The gateway would lose its own place in the room. */
async function refuseOwnAccount (context: ActionContext, userId: string): Promise<void> {
  if (userId === await context.adminUserId()) {
    throw problem('protected_target', 'The gateway\'s own admin account cannot be removed: it would lose its place in the room.')
  }
}
