import { problem, type GatewayError } from '../errors.js'
import { checked, unexpected } from './answers.js'
import { changingCall, readCall, type SynapseCall, type SynapseResponse } from './client.js'
import type { SynapseFeature } from './version.js'

/**
 * The account endpoints of Synapse's admin API that the account actions share, and their answers
 * as recorded from Synapse 1.163.2 and 1.67.0 (test/fixtures/synapse/versions-findings.md,
 * cases l*, s*, d*, p*, x*).
 */

const enc = encodeURIComponent

/** Synapse 1.91.0 added locking (MSC3939); 1.67 accepts `locked` and ignores it (l1, l3, l4). */
export const LOCKING: SynapseFeature = { since: '1.91.0', what: 'locking accounts' }
/**
 * Synapse's suspension endpoint (MSC3823) is served without an experimental flag from 1.121.0;
 * 1.67 answers 400 M_UNRECOGNIZED (s1).
 */
export const SUSPENSION: SynapseFeature = { since: '1.121.0', what: 'suspending accounts' }

export const ACCOUNT_CALLS = {
  /** PUT /v2/users creates an unknown user (l10): only ever sent after the lookup found the user. */
  setLocked: (userId: string, locked: boolean) =>
    changingCall(locked ? 'user_lock' : 'user_unlock', 'PUT', `/_synapse/admin/v2/users/${enc(userId)}`, { locked }, { needs: LOCKING }),
  setSuspended: (userId: string, suspend: boolean) =>
    changingCall(suspend ? 'user_suspend' : 'user_unsuspend', 'PUT', `/_synapse/admin/v1/suspend/${enc(userId)}`, { suspend }, { needs: SUSPENSION }),
  devices: (userId: string) => readCall('devices', `/_synapse/admin/v2/users/${enc(userId)}/devices`),
  deleteDevices: (userId: string, devices: string[]) => changingCall('delete_devices', 'POST', `/_synapse/admin/v2/users/${enc(userId)}/delete_devices`, { devices }),
  resetPassword: (userId: string, newPassword: string, logoutDevices: boolean) =>
    changingCall('reset_password', 'POST', `/_synapse/admin/v1/reset_password/${enc(userId)}`, { new_password: newPassword, logout_devices: logoutDevices }),
  deactivate: (userId: string, erase: boolean, timeoutMs: number) =>
    changingCall('deactivate', 'POST', `/_synapse/admin/v1/deactivate/${enc(userId)}`, { erase }, { timeoutMs }),
  /** Whether Synapse delegates authentication (MSC3861, MAS): the stable and the unstable discovery endpoints. */
  authMetadata: () => readCall('auth_metadata', '/_matrix/client/v1/auth_metadata'),
  authIssuer: () => readCall('auth_metadata', '/_matrix/client/unstable/org.matrix.msc2965/auth_issuer')
} satisfies Record<string, (...args: never[]) => SynapseCall>

const quote = (error: string | undefined) => error === undefined ? '' : ` Synapse said: "${error}"`
const isUnrecognized = (response: SynapseResponse) => (response.json as { errcode?: unknown } | undefined)?.errcode === 'M_UNRECOGNIZED'

/** The refusals every account endpoint shares: an unknown user (404), a remote one (400 "… local users"). */
function userRefusal (response: SynapseResponse, errcode: string | undefined, error: string | undefined): GatewayError | undefined {
  if (response.status === 404) return problem('user_not_found', `Synapse has no such user.${quote(error)}`, { matrixErrcode: errcode })
  if (response.status === 400 && error?.includes('local users') === true) {
    return problem('user_not_local', 'Only users of this homeserver can be acted on.', { matrixErrcode: errcode, outcome: 'failed' })
  }
  return undefined
}

/** Checks an account endpoint's answer: a 200 JSON object, or the problem it stands for. */
function accountAnswer (response: SynapseResponse): Record<string, unknown> {
  const { errcode, error } = checked(response, true)
  if (response.status === 200) return response.json as Record<string, unknown>
  throw userRefusal(response, errcode, error) ?? unexpected(response, true)
}

/**
 * PUT /_synapse/admin/v2/users/<u> {"locked"}: the answer is the user, with `locked` as stored. A
 * 200 without it is a Synapse that ignores the field (1.67): nothing changed.
 */
export function lockAnswer (response: SynapseResponse, locked: boolean, version: string): void {
  if (response.status === 201) {
    // The user did not exist after all (the lookup said it did): Synapse created it, without the lock (l10).
    throw problem('upstream_error', 'Synapse created the user instead of changing it; check the account in Synapse.', { outcome: 'unknown' })
  }
  const user = accountAnswer(response)
  if (typeof user.locked !== 'boolean') {
    throw problem('not_supported_by_synapse', `This Synapse (${version}) accepted the request but does not report a lock, so it ignored it: ${LOCKING.what} needs Synapse ${LOCKING.since} or later. Nothing was changed.`, { outcome: 'failed' })
  }
  if (user.locked !== locked) throw unexpected(response, true)
}

/** PUT /_synapse/admin/v1/suspend/<u> {"suspend"}: 200 {"user_<u>_suspended": bool} (s1, s5). */
export function suspendAnswer (response: SynapseResponse, userId: string, suspend: boolean): void {
  if (isUnrecognized(response)) {
    throw problem('not_supported_by_synapse', `This Synapse does not have the suspension endpoint: ${SUSPENSION.what} needs Synapse ${SUSPENSION.since} or later. Nothing was changed.`, { matrixErrcode: 'M_UNRECOGNIZED', outcome: 'failed' })
  }
  const answer = accountAnswer(response)
  if (answer[`user_${userId}_suspended`] !== suspend) throw unexpected(response, true)
}

interface Device { device_id: string }

/** GET /_synapse/admin/v2/users/<u>/devices (d1): the IDs of the user's devices. */
export function deviceIds (response: SynapseResponse): string[] {
  const { errcode, error } = checked(response, false)
  if (response.status !== 200) throw userRefusal(response, errcode, error) ?? unexpected(response)
  const devices = (response.json as { devices?: unknown }).devices
  if (!Array.isArray(devices)) throw unexpected(response)
  return devices.flatMap((device) => typeof (device as Device | null)?.device_id === 'string' ? [(device as Device).device_id] : [])
}

/** POST …/delete_devices (d2): 200 {}. */
export function deleteDevicesAnswer (response: SynapseResponse): void {
  accountAnswer(response)
}

/**
 * POST /_synapse/admin/v1/reset_password/<u> (p1): 200 {}. Synapse's password policy answers
 * 400 M_WEAK_PASSWORD (its message never holds the password); a Synapse that delegates
 * authentication to MAS does not serve the endpoint at all (M_UNRECOGNIZED): `delegated` says
 * whether that is why.
 */
export async function resetPasswordAnswer (response: SynapseResponse, delegated: () => Promise<boolean>): Promise<void> {
  if (isUnrecognized(response) && await delegated()) {
    throw problem('delegated_to_mas', 'Synapse delegates authentication to the Matrix Authentication Service (MAS), which manages passwords: reset it in MAS. Nothing was changed.', { matrixErrcode: 'M_UNRECOGNIZED', outcome: 'failed' })
  }
  const { errcode, error } = checked(response, true)
  if (response.status === 200) return
  if (response.status === 400 && errcode === 'M_WEAK_PASSWORD') {
    throw problem('password_rejected', 'Synapse\'s password policy refused the new password; choose a longer or more varied one (or leave new_password out to have one generated).', { matrixErrcode: errcode, outcome: 'failed' })
  }
  throw userRefusal(response, errcode, error) ?? unexpected(response, true)
}

/** Whether an auth-metadata answer names an issuer: authentication is delegated (MAS). */
export function namesIssuer (response: SynapseResponse): boolean {
  return response.status === 200 && typeof (response.json as { issuer?: unknown } | undefined)?.issuer === 'string'
}

/** POST /_synapse/admin/v1/deactivate/<u> (x1): 200 {"id_server_unbind_result"}, the same on every repeat. */
export function deactivateAnswer (response: SynapseResponse): void {
  accountAnswer(response)
}
