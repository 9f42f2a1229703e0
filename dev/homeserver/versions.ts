/**
 * Which Synapse the simulated homeserver answers as. Every difference between the two recorded
 * versions that the simulator reproduces is one field here, named after what it changes, with
 * the recording that shows it (test/fixtures/synapse/modern-1.163.2.json and
 * v1.67-account-actions.json, case ids in brackets; the full list is versions-findings.md).
 * New version-dependent behaviour (e.g. the account endpoints) adds a field, not an `if` on the
 * version string.
 */
export type SynapseVersion = '1.163.2' | '1.67.0'

export const SYNAPSE_VERSIONS: readonly SynapseVersion[] = ['1.163.2', '1.67.0']
export const NEWEST_SYNAPSE: SynapseVersion = '1.163.2'

export interface SynapseProfile {
  version: SynapseVersion
  /** GET /_synapse/admin/v1/server_version's body (g2, g3). */
  serverVersion: Record<string, string>
  /** The user lookup's is_guest/admin/deactivated/shadow_banned: booleans, or 0/1 in 1.67 (g4). */
  flagsAsBooleans: boolean
  /** The user lookup's `locked`, `suspended`, `erased`, `last_seen_ts`, `consent_ts` (g4; not in 1.67). */
  accountStateFields: boolean
  /** A kick in a room Synapse does not know: 404 "Not a known room", or 1.67's 403 "not in the room" (g17). */
  kickUnknownRoomIsNotFound: boolean
  /** GET …/rooms/{id}/state?type=… returns only that type; 1.67 ignores the parameter (g22, g23). */
  stateTypeFilter: boolean
  /** Room details include `tombstoned` and `replacement_room` (g25). */
  roomTombstoneFields: boolean
  /** PUT /_synapse/admin/v1/suspend/{user} exists (s1; 1.67: 400 M_UNRECOGNIZED). */
  suspendEndpoint: boolean
  /** `locked: true` is stored and enforced (l1–l4); 1.67 ignores the field and answers 200. */
  lockEnforced: boolean
  /** Login of a deactivated user: 403 M_USER_DEACTIVATED (1.67) or M_FORBIDDEN "Invalid username or password" (x4). */
  deactivatedLoginErrcode: 'M_USER_DEACTIVATED' | 'M_FORBIDDEN'
  /** 1.67 says a user is deactivated before checking the password; 1.163 answers every failed login alike (probed, not recorded). */
  deactivatedBeforePassword: boolean
  /** A message from a non-member: 1.67 appends the sender's member event, " (None)" when there is none (probed). */
  notInRoomNamesMemberEvent: boolean
  /** A message to a room the server does not know: 1.67's 403 "Unknown room"; 1.163 "User … not in room …" (probed). */
  sendToUnknownRoomSaysUnknownRoom: boolean
}

export const SYNAPSE_PROFILES: Record<SynapseVersion, SynapseProfile> = {
  '1.163.2': {
    version: '1.163.2',
    serverVersion: { server_version: '1.163.2' },
    flagsAsBooleans: true,
    accountStateFields: true,
    kickUnknownRoomIsNotFound: true,
    stateTypeFilter: true,
    roomTombstoneFields: true,
    suspendEndpoint: true,
    lockEnforced: true,
    deactivatedLoginErrcode: 'M_FORBIDDEN',
    deactivatedBeforePassword: false,
    notInRoomNamesMemberEvent: false,
    sendToUnknownRoomSaysUnknownRoom: false
  },
  '1.67.0': {
    version: '1.67.0',
    serverVersion: { server_version: '1.67.0', python_version: '3.11.2' },
    flagsAsBooleans: false,
    accountStateFields: false,
    kickUnknownRoomIsNotFound: false,
    stateTypeFilter: false,
    roomTombstoneFields: false,
    suspendEndpoint: false,
    lockEnforced: false,
    deactivatedLoginErrcode: 'M_USER_DEACTIVATED',
    deactivatedBeforePassword: true,
    notInRoomNamesMemberEvent: true,
    sendToUnknownRoomSaysUnknownRoom: true
  }
}

/** HOMESERVER_SYNAPSE_VERSION: "1.163.2"/"newest" (default) or "1.67.0"/"1.67"; anything else is an error. */
export function synapseVersionFrom (text: string | undefined): SynapseVersion {
  const value = (text ?? '').trim()
  if (value === '' || value === 'newest' || value === '1.163' || value === '1.163.2') return '1.163.2'
  if (value === '1.67' || value === '1.67.0') return '1.67.0'
  throw new Error(`HOMESERVER_SYNAPSE_VERSION=${value} is not a simulated version; use one of ${SYNAPSE_VERSIONS.join(', ')} (or "newest")`)
}
