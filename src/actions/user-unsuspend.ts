import { ACCOUNT_CALLS, SUSPENSION, suspendAnswer } from '../synapse/accounts.js'
import { accountSwitch } from './account-switch.js'

/** user.unsuspend: Synapse's suspension endpoint with {"suspend": false}. */
export const userUnsuspend = accountSwitch({
  name: 'user.unsuspend',
  method: 'DELETE',
  url: '/v1/users/:userId/suspension',
  operationId: 'unsuspendUser',
  summary: 'Lift a user\'s suspension',
  description: 'Lifts the suspension: the user can send, join and invite again. A user who is not suspended succeeds with "changed": false. A Synapse without the endpoint: 501 not_supported_by_synapse. Optional JSON body {"reason"}.',
  field: 'suspended',
  value: false,
  needs: SUSPENSION,
  current: (user) => user.suspended,
  async change (context, userId) {
    suspendAnswer(await context.synapse.send(ACCOUNT_CALLS.setSuspended(userId, false)), userId, false)
  }
})
