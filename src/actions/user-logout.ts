import { Type } from '@sinclair/typebox'
import { UserParams } from '../schemas.js'
import { ACCOUNT_CALLS, deleteDevicesAnswer, deviceIds } from '../synapse/accounts.js'
import { defineAction } from './action.js'
import { ACCOUNT_PROBLEMS, AccountBody, accountChecks } from './account-checks.js'

/** user.logout: every device of the user deleted, which ends their access tokens. */
export const userLogout = defineAction({
  name: 'user.logout',
  method: 'POST',
  url: '/v1/users/:userId/logout',
  acting: true,
  operationId: 'logoutUser',
  summary: 'Log a user out everywhere',
  description: 'Lists the user\'s devices and deletes them all (Synapse\'s delete_devices): every session of the user ends and its access tokens are refused; the password is unchanged. A user without devices succeeds with "devices_removed": 0. Never the gateway\'s account or a server admin. Optional JSON body {"reason"}.',
  params: UserParams,
  body: AccountBody,
  result: Type.Object({
    user_id: Type.String(),
    devices_removed: Type.Integer({ minimum: 0, description: 'How many devices (sessions) were deleted; 0 when the user had none.' })
  }),
  problems: [...ACCOUNT_PROBLEMS, 'payload_too_large', 'unsupported_media_type'],
  checks: [
    ...accountChecks({ refuseDeactivated: false }),
    {
      name: 'has_devices',
      by: 'synapse',
      fails: [],
      async check (context, { userId }) {
        const devices = deviceIds(await context.synapse.send(ACCOUNT_CALLS.devices(userId)))
        if (devices.length === 0) return { ok: true, done: true, detail: 'The user has no devices: nothing would change.' }
        return { ok: true, detail: `${devices.length} ${devices.length === 1 ? 'device' : 'devices'} would be deleted.` }
      }
    }
  ],

  async run (context, { userId }) {
    const user = userId as string
    const devices = deviceIds(await context.synapse.send(ACCOUNT_CALLS.devices(user)))
    if (devices.length > 0) deleteDevicesAnswer(await context.synapse.send(ACCOUNT_CALLS.deleteDevices(user, devices)))
    return { user_id: user, devices_removed: devices.length }
  }
})
