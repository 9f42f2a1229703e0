import { serverOf } from '../matrix-ids.js'
import { JoinBody, JoinResult, RoomParams } from '../schemas.js'
import { blockStatus, joinAnswer } from '../synapse/answers.js'
import type { ActionContext, ActionDefinition, DryRunCheck, DryRunReport } from './action.js'
import { lookUpActiveUser, userCheck, roomCheck } from './checks.js'

/** room.join: Synapse's admin join API, after looking the user up (Synapse joins deactivated users). */
export const roomJoin: ActionDefinition<typeof RoomParams, typeof JoinBody> = {
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
  target: ({ params, body }) => ({ room: (params as { roomIdOrAlias?: string }).roomIdOrAlias, userId: (body as { user_id?: string } | undefined)?.user_id }),

  async run (context, { room, userId }) {
    const user = userId as string
    const resolved = room as NonNullable<typeof room>
    await lookUpActiveUser(context, user)
    // Server hints only for a remote room (ALLOW_REMOTE_ROOMS): a local room needs none.
    const servers = resolved.alias !== null && serverOf(resolved.alias) !== context.config.synapse.serverName ? resolved.servers : []
    joinAnswer(await context.act('join', context.synapse.join(resolved.id, user, servers)), user)
    return { room_id: resolved.id, user_id: user }
  },

  async dryRun (context, { room, userId }) {
    const checks: DryRunCheck[] = []
    const user = userId as string
    const roomId = (room as NonNullable<typeof room>).id
    const userProblem = await userCheck(context, user, checks, { refuseDeactivated: true })
    if (userProblem !== undefined) return { checks, code: userProblem }
    return await roomChecks(context, roomId, user, checks)
  }
}

/** What Synapse's join servlet checks, in its order, read from the room's state. */
async function roomChecks (context: ActionContext, roomId: string, userId: string, checks: DryRunCheck[]): Promise<DryRunReport> {
  const state = await roomCheck(context, roomId, checks, { users: [userId] })
  if (state === undefined) return { checks, code: 'room_not_found' }
  if (blockStatus(await context.read('block_status', context.synapse.blockStatus(roomId)))) {
    checks.push({ name: 'room_not_blocked', ok: false, detail: 'The room is blocked on this homeserver.' })
    return { checks, code: 'room_blocked' }
  }
  checks.push({ name: 'room_not_blocked', ok: true, detail: 'The room is not blocked.' })
  const membership = state.membership(userId)
  if (membership === 'ban') {
    checks.push({ name: 'user_not_banned', ok: false, detail: 'The user is banned from the room.' })
    return { checks, code: 'user_banned' }
  }
  checks.push({ name: 'user_not_banned', ok: true, detail: `The user's membership: ${membership ?? 'none'}.` })
  if (state.joinRule === 'public') {
    checks.push({ name: 'admin_can_invite', ok: true, detail: 'The room is public: no invite is needed.' })
    return { checks }
  }
  const admin = await context.adminUserId()
  if (state.membership(admin) !== 'join') {
    checks.push({ name: 'admin_in_room', ok: false, detail: 'The room is not public and the gateway\'s admin account is not in it.' })
    return { checks, code: 'admin_not_in_room' }
  }
  checks.push({ name: 'admin_in_room', ok: true, detail: 'The gateway\'s admin account is in the room.' })
  if (membership === 'join') {
    checks.push({ name: 'admin_can_invite', ok: true, detail: 'The user is already in the room.' })
    return { checks }
  }
  const level = state.powerLevel(admin)
  if (level < state.levels.invite) {
    checks.push({ name: 'admin_can_invite', ok: false, detail: `The admin account's power level ${level} is below the invite level ${state.levels.invite}.` })
    return { checks, code: 'admin_cannot_invite' }
  }
  checks.push({ name: 'admin_can_invite', ok: true, detail: `The admin account's power level ${level} allows inviting (${state.levels.invite}).` })
  return { checks }
}
