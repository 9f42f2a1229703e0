/**
 * Helpers for the account action tests (test/accounts/*.test.ts): the gateway in front of the
 * simulated homeserver answering as either Synapse version, with fresh users to act on.
 */
import { SYNAPSE_VERSIONS, type SynapseVersion } from '../../dev/homeserver/versions.js'
import type { SimUser } from '../../dev/homeserver/state.js'
import { startActionHarness, type ActionHarness } from './actions.js'

interface Tap { after: (fn: () => unknown) => void }

export { SYNAPSE_VERSIONS, type SynapseVersion }

export const userPath = (userId: string, rest: string) => `/v1/users/${encodeURIComponent(userId)}${rest}`

export interface AccountHarness extends ActionHarness {
  /** A new local user (logged in on one device, or `devices` of them); its ID. */
  newUser: (localpart: string, options?: { admin?: boolean, devices?: number, password?: string }) => string
  /** The simulated homeserver's record of a user. */
  user: (userId: string) => SimUser
}

export async function startAccountHarness (t: Tap, version: SynapseVersion, env: Record<string, string> = {}): Promise<AccountHarness> {
  const h = await startActionHarness(t, { env, homeserver: { synapseVersion: version } })
  return {
    ...h,
    newUser (localpart, options = {}) {
      const password = options.password ?? `pw-${localpart}-0123456789`
      const session = h.homeserver.createUser({ localpart, password, admin: options.admin })
      for (let i = 1; i < (options.devices ?? 1); i++) h.homeserver.accounts.login(JSON.stringify({ identifier: { user: session.userId }, password }))
      return session.userId
    },
    user: (userId) => h.homeserver.state.users.get(userId) as SimUser
  }
}
