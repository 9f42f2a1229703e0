import { DETAILS, problem, type ProblemCode } from '../errors.js'
import { lookedUpUser, type LookedUpUser } from '../synapse/answers.js'
import { snapshot, type RoomSnapshot, type SnapshotScope } from '../synapse/rooms.js'
import type { ActionContext, DryRunCheck } from './action.js'

/** The user lookup every action that names a user makes first: unknown users are never acted on. */
export async function lookUpUser (context: ActionContext, userId: string): Promise<LookedUpUser> {
  return lookedUpUser(await context.read('user_lookup', context.synapse.lookupUser(userId)))
}

/** As lookUpUser, and a deactivated user is refused (Synapse itself would join or promote them). */
export async function lookUpActiveUser (context: ActionContext, userId: string): Promise<LookedUpUser> {
  const user = await lookUpUser(context, userId)
  if (user.deactivated) throw problem('user_deactivated', DETAILS.user_deactivated)
  return user
}

/** The same lookup for a dry run: the code the real call would get, or undefined when the user is fine. */
export async function userCheck (context: ActionContext, userId: string, checks: DryRunCheck[], { refuseDeactivated }: { refuseDeactivated: boolean }): Promise<ProblemCode | undefined> {
  try {
    const user = await (refuseDeactivated ? lookUpActiveUser(context, userId) : lookUpUser(context, userId))
    checks.push({ name: 'user_exists', ok: true, detail: user.deactivated ? 'The user exists (deactivated).' : 'The user exists and is active.' })
    return undefined
  } catch (error) {
    const code = (error as { problem?: ProblemCode }).problem
    if (code !== 'user_not_found' && code !== 'user_deactivated' && code !== 'user_not_local') throw error
    checks.push({ name: 'user_exists', ok: false, detail: (error as Error).message })
    return code
  }
}

/**
 * A dry run's look at the room: its state, or undefined (room_not_found) when Synapse does not know
 * it. The memberships kept are those of `scope.users` and of the gateway's own account.
 */
export async function roomCheck (context: ActionContext, roomId: string, checks: DryRunCheck[], scope: SnapshotScope): Promise<RoomSnapshot | undefined> {
  try {
    const users = [...scope.users, await context.adminUserId()]
    const state = await snapshot(context.synapse, roomId, context.read, { ...scope, users })
    checks.push({ name: 'room_exists', ok: true, detail: `The room is known (join rule: ${state.joinRule}).` })
    return state
  } catch (error) {
    if ((error as { problem?: string }).problem !== 'room_not_found') throw error
    checks.push({ name: 'room_exists', ok: false, detail: 'Synapse does not know this room.' })
    return undefined
  }
}
