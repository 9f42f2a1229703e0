import { ACCOUNT_CALLS, LOCKING, lockAnswer } from '../synapse/accounts.js'
import { accountSwitch } from './account-switch.js'

/** user.lock: Synapse's admin user API with {"locked": true} (1.91+), after the lookup (PUT creates unknown users). */
export const userLock = accountSwitch({
  name: 'user.lock',
  method: 'PUT',
  url: '/v1/users/:userId/lock',
  operationId: 'lockUser',
  summary: 'Lock a user\'s account',
  description: 'Locks the account (Synapse 1.91 or later): the user can no longer log in and every access token answers 401 M_USER_LOCKED until it is unlocked; nothing is deleted. A locked user succeeds with "changed": false. Never the gateway\'s account or a server admin (403 protected_target). Older Synapse: 501 not_supported_by_synapse, before anything changes. Optional JSON body {"reason"}.',
  field: 'locked',
  value: true,
  needs: LOCKING,
  current: (user) => user.locked,
  async change (context, userId) {
    lockAnswer(await context.synapse.send(ACCOUNT_CALLS.setLocked(userId, true)), true, await context.synapseVersion())
  }
})
