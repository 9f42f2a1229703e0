import { problem } from '../errors.js'

/** Who called, as the audit log and the rate limiter see them. */
export interface Caller {
  sub: string
  org: string | null
  roles: string[]
  /** The whole verified payload, for policy conditions. */
  claims?: Record<string, unknown>
  iss?: string
  jti?: string
}

export interface ClaimRules {
  clockToleranceS: number
  maxAgeS: number
  rolesPath: string[]
  orgPath: string[]
}

const MAX_ROLES = 64
const MAX_CLAIM_LENGTH = 256

function invalidToken (detail: string) {
  return problem('invalid_token', detail, { headers: { 'www-authenticate': 'Bearer error="invalid_token"' } })
}

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
  if (iat !== undefined) {
    if (typeof iat !== 'number' || !Number.isFinite(iat)) throw invalidToken('The token\'s iat claim must be a number.')
    if (iat > nowS + rules.clockToleranceS) throw invalidToken('The token was issued in the future; check the clocks.')
    if (exp - iat > rules.maxAgeS) throw invalidToken(`The token lives longer than this gateway accepts (${rules.maxAgeS} s).`)
  } else if (exp - nowS > rules.maxAgeS + rules.clockToleranceS) {
    throw invalidToken(`The token lives longer than this gateway accepts (${rules.maxAgeS} s).`)
  }
  const sub = payload.sub
  if (typeof sub !== 'string' || sub === '' || sub.length > MAX_CLAIM_LENGTH) {
    throw invalidToken('The token must name its caller in a sub claim.')
  }
  const org = claimAt(payload, rules.orgPath)
  const caller: Caller = {
    sub,
    org: typeof org === 'string' && org.length <= MAX_CLAIM_LENGTH ? org : null,
    roles: rolesFrom(claimAt(payload, rules.rolesPath)),
    claims: payload
  }
  if (typeof payload.iss === 'string') caller.iss = payload.iss.slice(0, MAX_CLAIM_LENGTH)
  if (typeof payload.jti === 'string') caller.jti = payload.jti.slice(0, MAX_CLAIM_LENGTH)
  return caller
}

export function authorize (caller: Caller, allowedOrgs: string[], allowedRoles: string[]): void {
  if (allowedOrgs.length > 0 && (caller.org === null || !allowedOrgs.includes(caller.org))) {
    throw problem('org_not_allowed', 'Your organisation is not allowed to use this gateway.')
  }
  if (!caller.roles.some((role) => allowedRoles.includes(role))) {
    throw problem('insufficient_role', `This action needs one of the roles: ${allowedRoles.join(', ')}.`, {
      headers: { 'www-authenticate': 'Bearer error="insufficient_scope"' }
    })
  }
}
