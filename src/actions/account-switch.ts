import { Type } from '@sinclair/typebox'
import type { ProblemCode } from '../errors.js'
import { UserParams } from '../schemas.js'
import type { LookedUpUser } from '../synapse/answers.js'
import type { SynapseFeature } from '../synapse/version.js'
import { defineAction, type ActionContext } from './action.js'
import { ACCOUNT_PROBLEMS, AccountBody, accountChecks, stateAlready } from './account-checks.js'

/**
 * An account flag the gateway switches on (PUT) or off (DELETE): user.lock / user.unlock,
 * user.suspend / user.unsuspend. Each is its own module; what they share is built here.
 */
export interface AccountSwitch<Name extends string> {
  name: Name
  method: 'PUT' | 'DELETE'
  url: string
  operationId: string
  summary: string
  description: string
  /** The answer's field, e.g. "locked". */
  field: 'locked' | 'suspended'
  /** The state the action leaves. */
  value: boolean
  needs: SynapseFeature
  /** The user lookup's view of the flag (undefined where the version does not say). */
  current: (user: LookedUpUser) => boolean | undefined
  /** Sends the change and checks Synapse's answer. */
  change: (context: ActionContext, userId: string) => Promise<void>
}

const SWITCH_PROBLEMS: ProblemCode[] = [...ACCOUNT_PROBLEMS,
  'user_deactivated', 'not_supported_by_synapse', 'payload_too_large', 'unsupported_media_type']

export function accountSwitch<const Name extends string> (spec: AccountSwitch<Name>) {
  const state = `${spec.value ? '' : 'not '}${spec.field}`
  return defineAction({
    name: spec.name,
    method: spec.method,
    url: spec.url,
    acting: true,
    operationId: spec.operationId,
    summary: spec.summary,
    description: spec.description,
    params: UserParams,
    body: AccountBody,
    result: Type.Object({
      user_id: Type.String(),
      [spec.field]: Type.Literal(spec.value),
      changed: Type.Boolean({ description: `false when the user was already ${state}.` })
    }),
    problems: SWITCH_PROBLEMS,
    checks: [
      ...accountChecks({ needs: spec.needs, refuseDeactivated: true }),
      stateAlready(`already_${spec.value ? '' : 'un'}${spec.field}`, (user) => {
        const current = spec.current(user)
        return current === undefined ? undefined : current === spec.value
      }, state, `${spec.value ? 'not ' : ''}${spec.field}`)
    ],

    async run (context, { userId }) {
      const user = userId as string
      const current = spec.current(await context.facts.user(user))
      if (current === spec.value) return { user_id: user, [spec.field]: spec.value, changed: false }
      await spec.change(context, user)
      return { user_id: user, [spec.field]: spec.value, changed: true }
    }
  })
}
