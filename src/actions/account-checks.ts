import { Type } from '@sinclair/typebox'
import type { ProblemCode } from '../errors.js'
import { RemoveBody } from '../schemas.js'
import type { LookedUpUser } from '../synapse/answers.js'
import { hasRelease, type SynapseFeature } from '../synapse/version.js'
import { userExists, type CheckStep } from './checks.js'

/**
 * What the account actions (user.lock … user.deactivate) share: their checks, in the order they
 * run (Synapse's version, the user, the protected accounts), and their optional body.
 */

/** `{"reason"?}`, or no body at all. */
export const AccountBody = Type.Union([RemoveBody, Type.Null()]) as unknown as typeof RemoveBody

/** The running Synapse has the feature: refused before anything is read or sent when it does not. */
export function synapseHas (feature: SynapseFeature): CheckStep {
  return {
    name: 'synapse_supports',
    by: 'gateway',
    fails: ['not_supported_by_synapse'],
    async check (context) {
      const version = await context.synapseVersion()
      if (hasRelease(version, feature.since)) return { ok: true, detail: `Synapse ${version} can do this (${feature.what}: ${feature.since} or later).` }
      return { ok: false, code: 'not_supported_by_synapse', detail: `Synapse ${version} cannot do this: ${feature.what} needs Synapse ${feature.since} or later.` }
    }
  }
}

/** Never the gateway's own account (it would lock itself out) nor a Synapse server admin. */
export function notProtectedAccount (): CheckStep {
  return {
    name: 'not_protected',
    by: 'gateway',
    fails: ['protected_target'],
    async check (context, { userId }) {
      if (userId === await context.adminUserId()) {
        return { ok: false, code: 'protected_target', detail: 'The user is the gateway\'s own admin account, which account actions never touch.' }
      }
      if ((await context.facts.user(userId)).admin) {
        return { ok: false, code: 'protected_target', detail: 'The user is a Synapse server admin: the gateway never acts on server admin accounts; ask a Synapse operator.' }
      }
      return { ok: true, detail: 'The user is neither the gateway\'s account nor a server admin.' }
    }
  }
}

/**
 * "Nothing would change" when the lookup shows the state already holds; a version whose lookup
 * does not report the state (undefined) acts.
 */
export function stateAlready (name: string, holds: (user: LookedUpUser) => boolean | undefined, what: string, otherwise: string): CheckStep {
  return {
    name,
    by: 'gateway',
    fails: [],
    async check (context, { userId }) {
      const already = holds(await context.facts.user(userId))
      if (already === true) return { ok: true, done: true, detail: `The user is already ${what}: nothing would change.` }
      return { ok: true, detail: already === false ? `The user is ${otherwise}: it would change.` : `This Synapse does not report whether the user is ${what}.` }
    }
  }
}

/** What every account action can answer besides the pipeline's own: its body, the user, protected targets. */
export const ACCOUNT_PROBLEMS: ProblemCode[] = ['invalid_body', 'invalid_user_id', 'user_not_local', 'reason_required', 'protected_target', 'user_not_found']

/** The checks every account action starts with, in order. */
export function accountChecks ({ needs, refuseDeactivated }: { needs?: SynapseFeature, refuseDeactivated: boolean }): CheckStep[] {
  return [...(needs === undefined ? [] : [synapseHas(needs)]), userExists({ refuseDeactivated }), notProtectedAccount()]
}
