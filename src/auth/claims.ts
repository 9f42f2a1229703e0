import { problem } from '../errors.js'
import { refuseToken } from './refusal.js'

/**
 * Who called, as the audit log and the rate limiter see them. `claims` (the whole verified
 * payload, for the policy), `iss` and `jti` are not enumerable: an object spread or
 * JSON.stringify of a caller (an audit entry's actor) carries sub, org and roles only.
 */
export interface Caller {
  sub: string
  org: string | null
  roles: string[]
  claims: Record<string, unknown>
  iss?: string
  jti?: string
  /** Set when the token has no roles at JWT_ROLES_CLAIM but has some elsewhere (see rolesHint). */
  rolesHint?: string
}

export interface ClaimRules {
  clockToleranceS: number
  maxAgeS: number
  rolesPath: string[]
  orgPath: string[]
}

const MAX_ROLES = 64
const MAX_CLAIM_LENGTH = 256

/**
 * A claim by its full name (namespaced claims such as `https://acme.example/roles` contain dots),
 * else by following the dotted path. Own properties only, so `__proto__` and friends lead nowhere.
 */
export function claimAt (payload: unknown, path: string[]): unknown {
  const fullName = path.join('.')
  if (path.length > 1 && typeof payload === 'object' && payload !== null && Object.hasOwn(payload, fullName)) {
    return (payload as Record<string, unknown>)[fullName]
  }
  let value = payload
  for (const segment of path) {
    if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.hasOwn(value, segment)) return undefined
    value = (value as Record<string, unknown>)[segment]
  }
  return value
}

/** An array of strings or a space-separated string (OAuth `scope` style); anything else is no roles. */
export function rolesFrom (value: unknown): string[] {
  const roles = typeof value === 'string' ? value.split(' ') : Array.isArray(value) ? value : []
  return roles
    .filter((role): role is string => typeof role === 'string' && role !== '' && role.length <= MAX_CLAIM_LENGTH)
    .slice(0, MAX_ROLES)
}

/**
 * Checks what fast-jwt leaves open: `iat` in the future and the token's whole lifetime
 * (`exp` − `iat`, or what is left of it when there is no `iat`), then reads the caller.
 */
export function callerFrom (payload: Record<string, unknown>, rules: ClaimRules, nowS = Date.now() / 1000): Caller {
  const { exp, iat } = payload as { exp: number, iat?: unknown }
  const tooLong = () => refuseToken('lifetime', `The token lives longer than this gateway accepts (JWT_MAX_AGE_S, ${rules.maxAgeS} s from iat to exp); ask for shorter-lived tokens or raise JWT_MAX_AGE_S.`)
  if (iat !== undefined) {
    if (typeof iat !== 'number' || !Number.isFinite(iat)) throw refuseToken('claims', 'The token\'s iat claim must be a number (seconds since 1970).')
    if (iat > nowS + rules.clockToleranceS) throw refuseToken('not_yet_valid', 'The token was issued in the future (its iat claim); check the clocks of the identity provider and the gateway.')
    if (exp - iat > rules.maxAgeS) throw tooLong()
  } else if (exp - nowS > rules.maxAgeS + rules.clockToleranceS) {
    throw tooLong()
  }
  const sub = payload.sub
  if (typeof sub !== 'string' || sub === '' || sub.length > MAX_CLAIM_LENGTH) {
    throw refuseToken('sub_missing', 'The token must name its caller in a sub claim (a string of at most 256 characters).')
  }
  const org = claimAt(payload, rules.orgPath)
  const caller: Caller = {
    sub,
    org: typeof org === 'string' && org.length <= MAX_CLAIM_LENGTH ? org : null,
    roles: rolesFrom(claimAt(payload, rules.rolesPath))
  } as Caller
  const hidden = (value: unknown) => ({ value, enumerable: false, writable: false, configurable: false })
  Object.defineProperty(caller, 'claims', hidden(payload))
  if (typeof payload.iss === 'string') Object.defineProperty(caller, 'iss', hidden(payload.iss))
  if (typeof payload.jti === 'string' && payload.jti.length <= MAX_CLAIM_LENGTH) Object.defineProperty(caller, 'jti', hidden(payload.jti))
  if (caller.roles.length === 0) {
    const hint = rolesHint(payload, rules.rolesPath.join('.'))
    if (hint !== undefined) Object.defineProperty(caller, 'rolesHint', hidden(hint))
  }
  return caller
}

/** Where identity providers usually put roles: Keycloak, Okta/Entra groups, OAuth scopes. */
const USUAL_ROLE_CLAIMS = [['roles'], ['realm_access', 'roles'], ['groups'], ['scp'], ['scope'], ['permissions']]

/**
 * When the token has no roles at JWT_ROLES_CLAIM but has some at a usual place, a sentence
 * naming that place, for the insufficient_role detail. Claim paths are configuration, not
 * secrets; the roles themselves are not repeated.
 */
export function rolesHint (payload: Record<string, unknown>, rolesClaim: string): string | undefined {
  if (rolesFrom(claimAt(payload, rolesClaim.split('.'))).length > 0) return undefined
  const candidates = USUAL_ROLE_CLAIMS.map((path) => path.join('.'))
  const resourceAccess = claimAt(payload, ['resource_access'])
  if (typeof resourceAccess === 'object' && resourceAccess !== null && !Array.isArray(resourceAccess)) {
    for (const client of Object.keys(resourceAccess).slice(0, 16)) {
      if (/^[\x21-\x7e]{1,64}$/.test(client) && !client.includes('.')) candidates.push(`resource_access.${client}.roles`)
    }
  }
  const found = candidates.filter((path) => path !== rolesClaim && rolesFrom(claimAt(payload, path.split('.'))).length > 0)
  if (found.length === 0) return undefined
  return `The token has no roles at ${rolesClaim} (JWT_ROLES_CLAIM) but has some at ${found.join(', ')}: set JWT_ROLES_CLAIM=${found[0] as string} if that is where your identity provider puts them.`
}

export function authorize (caller: Caller, allowedOrgs: string[], allowedRoles: string[]): void {
  if (allowedOrgs.length > 0 && (caller.org === null || !allowedOrgs.includes(caller.org))) {
    throw problem('org_not_allowed', 'Your organisation is not allowed to use this gateway.')
  }
  if (!caller.roles.some((role) => allowedRoles.includes(role))) {
    const hint = caller.rolesHint
    throw problem('insufficient_role', `This action needs one of the roles: ${allowedRoles.join(', ')}.${hint === undefined ? '' : ` ${hint}`}`, {
      headers: { 'www-authenticate': 'Bearer error="insufficient_scope"' }
    })
  }
}
