import type { Caller } from '../auth/claims.js'
import { GatewayError, problem } from '../errors.js'
import type { Decision, Policy, PolicyCaller, RoomFacts } from '../policy/index.js'
import type { TrackedSynapse } from '../synapse/calls.js'
import type { ResolvedRoom, RoomDirectory } from '../synapse/rooms.js'

/** The caller as the policy sees it: with the whole verified payload for `when` conditions. */
export function policyCaller (caller: Caller): PolicyCaller {
  return { sub: caller.sub, org: caller.org, roles: caller.roles, claims: caller.claims ?? {} }
}

/** ALLOWED_ORGS: a caller of another organisation (or none) is refused before the policy is asked. */
export function checkOrg (allowedOrgs: readonly string[], caller: Caller): void {
  if (allowedOrgs.length > 0 && (caller.org === null || !allowedOrgs.includes(caller.org))) {
    throw problem('org_not_allowed', 'Your organisation is not allowed to use this gateway.')
  }
}

/**
 * The facts the policy decides on about a room, fetched only when a rule needs them: the spaces
 * that list it, and (for alias rules) the aliases the room itself publishes.
 */
export async function roomFacts (policy: Policy, rooms: RoomDirectory, synapse: TrackedSynapse, room: ResolvedRoom): Promise<RoomFacts> {
  const spaces: string[] = []
  for (const ref of policy.spaceRefs) {
    if ((await rooms.spaceChildren(ref.slice('space:'.length), synapse)).has(room.id)) spaces.push(ref)
  }
  let canonical: string | null = null
  let alias = room.alias
  let alt: string[] = []
  if (policy.needsRoomAliases) {
    // Canonical and alt aliases are facts of the room whatever the caller named: a deny rule
    // on an alt alias must hold when the caller names the room ID or its canonical alias.
    ({ canonical, alt } = await rooms.publishedAliases(room.id, synapse))
    // Any user may point a directory alias at any room, so a named alias counts only when the
    // room itself publishes it (canonical or alt alias, which only its admins can set).
    if (alias !== null && alias !== canonical && !alt.includes(alias)) alias = null
  }
  return { id: room.id, alias, canonical_alias: canonical, alt_aliases: alt, spaces, named: room.alias ?? room.id }
}

/**
 * The room the caller named, resolved; or, when no room has that alias, the room_not_found problem
 * to answer once the policy has decided (the policy speaks first, so that an alias's existence is
 * told only to a caller that may act on it).
 */
export async function resolveNamed (rooms: RoomDirectory, named: string, synapse: TrackedSynapse): Promise<{ room: ResolvedRoom, unknown?: undefined } | { room?: undefined, unknown: GatewayError }> {
  try {
    return { room: await rooms.resolve(named, synapse) }
  } catch (error) {
    if (error instanceof GatewayError && error.problem === 'room_not_found') return { unknown: error }
    throw error
  }
}

/**
 * A room Synapse does not know, as the policy sees it: the alias the caller gave (as if the room
 * published it), no ID, no canonical or alternative alias, in no space. A condition reading
 * `room.id` sees "".
 */
export function unknownRoomFacts (named: string): RoomFacts {
  return { id: '', alias: named, canonical_alias: null, alt_aliases: [], spaces: [], named }
}

/**
 * Without a policy file, version 1's answer; with one, what did not match and nothing about other
 * rules. Either way the roles hint when the token's roles sit elsewhere than JWT_ROLES_CLAIM.
 */
export function refusal (policy: Policy, joinRoles: string[], caller: Caller, action: string, decision: Decision | undefined): GatewayError {
  const hint = caller.rolesHint === undefined ? '' : ` ${caller.rolesHint}`
  if (policy.implicit) {
    return problem('insufficient_role', `This action needs one of the roles: ${joinRoles.join(', ')}.${hint}`, {
      headers: { 'www-authenticate': 'Bearer error="insufficient_scope"' }
    })
  }
  return problem('policy_denied', `${decision?.detail ?? `The policy does not allow you ${action}.`}${hint}`)
}
