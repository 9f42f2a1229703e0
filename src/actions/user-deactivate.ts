import { Type } from '@sinclair/typebox'
import { Reason, UserParams } from '../schemas.js'
import type { LookedUpUser } from '../synapse/answers.js'
import { ACCOUNT_CALLS, deactivateAnswer } from '../synapse/accounts.js'
import { defineAction, type ActionContext } from './action.js'
import { ACCOUNT_PROBLEMS, accountChecks } from './account-checks.js'

const DeactivateBody = Type.Object({
  erase: Type.Optional(Type.Boolean({ description: 'Also erase the user (GDPR): display name and avatar removed, messages hidden from new joiners (default false).' })),
  reason: Type.Optional(Reason)
}, { additionalProperties: false })

const eraseOf = (context: ActionContext) => (context.body as { erase?: boolean } | null | undefined)?.erase ?? false

/** Nothing left to do: deactivated, and erased when erasing was asked (1.67 does not say: then it is asked again). */
const settled = (user: LookedUpUser, erase: boolean) => user.deactivated && (!erase || user.erased === true)

/** user.deactivate: Synapse's deactivation, with its own timeout (it may take minutes). */
export const userDeactivate = defineAction({
  name: 'user.deactivate',
  method: 'POST',
  url: '/v1/users/:userId/deactivate',
  acting: true,
  operationId: 'deactivateUser',
  summary: 'Deactivate a user\'s account',
  description: 'Deactivates the account for good: the user is logged out, leaves every room and cannot log in again; with `erase` the profile is erased too. A deactivated user succeeds with "changed": false. Synapse may take long: SYNAPSE_DEACTIVATE_TIMEOUT_MS (default 2 minutes); when it runs out the outcome is unknown (504) and a repeat is safe. Never the gateway\'s account or a server admin. Optional JSON body {"erase", "reason"}.',
  params: UserParams,
  body: Type.Union([DeactivateBody, Type.Null()]) as unknown as typeof DeactivateBody,
  result: Type.Object({
    user_id: Type.String(),
    erased: Type.Boolean({ description: 'Whether the user is erased (as far as Synapse reports it).' }),
    changed: Type.Boolean({ description: 'false when the user was already deactivated (and erased, when erasing was asked).' })
  }),
  problems: [...ACCOUNT_PROBLEMS, 'payload_too_large', 'unsupported_media_type'],
  checks: [
    ...accountChecks({ refuseDeactivated: false }),
    {
      name: 'not_deactivated_yet',
      by: 'gateway',
      fails: [],
      async check (context, { userId }) {
        const user = await context.facts.user(userId)
        if (settled(user, eraseOf(context))) return { ok: true, done: true, detail: 'The user is already deactivated: nothing would change.' }
        return { ok: true, detail: user.deactivated ? 'The user is deactivated; erasing is asked again.' : 'The user is active.' }
      }
    }
  ],

  async run (context, { userId }) {
    const user = userId as string
    const erase = eraseOf(context)
    const found = await context.facts.user(user)
    if (settled(found, erase)) return { user_id: user, erased: found.erased ?? false, changed: false }
    deactivateAnswer(await context.synapse.send(ACCOUNT_CALLS.deactivate(user, erase, context.config.synapse.deactivateTimeoutMs)))
    return { user_id: user, erased: erase || found.erased === true, changed: true }
  }
})
