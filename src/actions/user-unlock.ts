import { ACCOUNT_CALLS, LOCKING, lockAnswer } from '../synapse/accounts.js'
import { accountSwitch } from './account-switch.js'

/** user.unlock: Synapse's admin user API with {"locked": false} (1.91+). */
export const userUnlock = accountSwitch({
  name: 'user.unlock',
  method: 'DELETE',
  url: '/v1/users/:userId/lock',
  operationId: 'unlockUser',
  summary: 'Unlock a user\'s account',
  description: 'Unlocks the account (Synapse 1.91 or later): login works again, and so do the access tokens the user had. An unlocked user succeeds with "changed": false. Older Synapse: 501 not_supported_by_synapse. Optional JSON body {"reason"}.',
  field: 'locked',
  value: false,
  needs: LOCKING,
  current: (user) => user.locked,
  async change (context, userId) {
    lockAnswer(await context.synapse.send(ACCOUNT_CALLS.setLocked(userId, false)), false, await context.synapseVersion())
  }
})
