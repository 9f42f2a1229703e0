import { DETAILS, GatewayError, problem, type ProblemCode } from '../errors.js'
import type { ActionContext, ResolvedTarget } from './action.js'

/** What one check found: passed (maybe settling the answer: `done`), failed, or not relevant here. */
export type CheckResult =
  | { ok: true, detail: string, done?: boolean }
  | { ok: false, code: ProblemCode, detail: string, /** The real call's detail, when it words the refusal differently. */ refusal?: string }
  | 'skip'

/**
 * One named precondition. `gateway`: checked before acting, the real call stops at the first
 * failure with its problem. `synapse`: Synapse checks it itself when acting (its answer maps to
 * the same code), so only a dry run looks ahead at it. A dry run collects both kinds, in order,
 * so it cannot drift from what the real call checks.
 */
export interface CheckStep {
  name: string
  by: 'gateway' | 'synapse'
  /** Problems a failure answers with; thrown with another code, the problem is the request's (e.g. Synapse unavailable). */
  fails: ProblemCode[]
  check: (context: ActionContext, target: CheckedTarget) => Promise<CheckResult>
}

/** The target of an action that names a room and a user (the checks of other actions read only what they have). */
export interface CheckedTarget { roomId: string, userId: string, target: ResolvedTarget }

export interface DryRunCheck { name: string, ok: boolean, detail: string }
export interface DryRunReport { checks: DryRunCheck[], code?: ProblemCode }

function checkedTarget (target: ResolvedTarget): CheckedTarget {
  return { roomId: target.room?.id as string, userId: target.userId as string, target }
}

/** The real call: the gateway's own checks, stopping at the first failure with its problem. */
export async function enforceChecks (steps: CheckStep[], context: ActionContext, target: ResolvedTarget): Promise<void> {
  const checked = checkedTarget(target)
  for (const step of steps) {
    if (step.by !== 'gateway') continue
    const result = await step.check(context, checked)
    if (result !== 'skip' && !result.ok) throw problem(result.code, result.refusal ?? result.detail)
  }
}

/** A dry run: every check in order until one fails or settles the answer; nothing changes. */
export async function dryRunChecks (steps: CheckStep[], context: ActionContext, target: ResolvedTarget): Promise<DryRunReport> {
  const checked = checkedTarget(target)
  const checks: DryRunCheck[] = []
  for (const step of steps) {
    let result: CheckResult
    try {
      result = await step.check(context, checked)
    } catch (error) {
      if (!(error instanceof GatewayError) || !step.fails.includes(error.problem)) throw error
      result = { ok: false, code: error.problem, detail: error.message }
    }
    if (result === 'skip') continue
    checks.push({ name: step.name, ok: result.ok, detail: result.detail })
    if (!result.ok) return { checks, code: result.code }
    if (result.done === true) break
  }
  return { checks }
}

/** The user lookup every action that names a user makes first: unknown users are never acted on. */
export function userExists ({ refuseDeactivated }: { refuseDeactivated: boolean }): CheckStep {
  return {
    name: 'user_exists',
    by: 'gateway',
    fails: ['user_not_found', 'user_deactivated', 'user_not_local'],
    async check (context, { userId }) {
      const user = await context.facts.user(userId)
      if (!user.deactivated) return { ok: true, detail: 'The user exists and is active.' }
      // Synapse itself would join or promote a deactivated user.
      if (refuseDeactivated) return { ok: false, code: 'user_deactivated', detail: DETAILS.user_deactivated }
      return { ok: true, detail: 'The user exists (deactivated).' }
    }
  }
}

/**
 * The room's state, which the later checks read (with the same `scope`); Synapse answers
 * room_not_found itself when acting.
 */
export function roomExists (scope: { powerUsers?: boolean } = {}): CheckStep {
  return {
    name: 'room_exists',
    by: 'synapse',
    fails: ['room_not_found'],
    async check (context, { roomId }) {
      try {
        const state = await context.facts.room(roomId, scope)
        return { ok: true, detail: `The room is known (join rule: ${state.joinRule}).` }
      } catch (error) {
        if (!(error instanceof GatewayError) || error.problem !== 'room_not_found') throw error
        return { ok: false, code: 'room_not_found', detail: 'Synapse does not know this room.' }
      }
    }
  }
}

/**
 * The gateway's admin account must be in the room to act in it (kick, invite). `publicRoomNeedsNone`:
 * a public room needs no invite, so there the check does not apply.
 */
export function adminInRoom ({ publicRoomNeedsNone, detail }: { publicRoomNeedsNone: boolean, detail: string }): CheckStep {
  return {
    name: 'admin_in_room',
    by: 'synapse',
    fails: ['admin_not_in_room'],
    async check (context, { roomId }) {
      const state = await context.facts.room(roomId)
      if (publicRoomNeedsNone && state.joinRule === 'public') return 'skip'
      if (state.membership(await context.adminUserId()) !== 'join') return { ok: false, code: 'admin_not_in_room', detail }
      return { ok: true, detail: 'The gateway\'s admin account is in the room.' }
    }
  }
}
