import { ACCOUNT_CALLS, SUSPENSION, suspendAnswer } from '../synapse/accounts.js'
import { accountSwitch } from './account-switch.js'

/** user.suspend: Synapse's suspension endpoint (MSC3823), which 1.67 lacks. */
export const userSuspend = accountSwitch({
  name: 'user.suspend',
  method: 'PUT',
  url: '/v1/users/:userId/suspension',
  operationId: 'suspendUser',
  summary: 'Suspend a user\'s account',
  description: 'Suspends the account: the user stays logged in and can read, but cannot send messages, join or invite (Synapse answers their attempts 403 M_USER_SUSPENDED) until unsuspended. A suspended user succeeds with "changed": false. Never the gateway\'s account or a server admin. A Synapse without the endpoint (before 1.121): 501 not_supported_by_synapse, before anything changes. Optional JSON body {"reason"}.',
  field: 'suspended',
  value: true,
  needs: SUSPENSION,
  current: (user) => user.suspended,
  async change (context, userId) {
    suspendAnswer(await context.synapse.send(ACCOUNT_CALLS.setSuspended(userId, true)), userId, true)
  }
})
