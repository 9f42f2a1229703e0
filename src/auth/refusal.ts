import { GatewayError, type ProblemCode } from '../errors.js'

/**
 * Why a token was refused, as a short machine string: in the audit entry
 * (`request.tokenRefusal`) and the debug log line. The answer's `detail` says it for people.
 */
export type TokenRefusal =
  | 'malformed' | 'too_large' | 'algorithm' | 'signature' | 'kid_unknown'
  | 'exp_missing' | 'expired' | 'not_yet_valid' | 'lifetime'
  | 'issuer' | 'audience' | 'sub_missing' | 'claims'

/** An invalid_token or token_expired answer that knows which check failed. */
export class TokenRefusedError extends GatewayError {
  constructor (readonly reason: TokenRefusal, code: ProblemCode, detail: string, headers: Record<string, string>) {
    super(code, detail, { headers })
  }
}

/** RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E, so no quote or backslash. */
function errorDescription (detail: string): string {
  return detail.replace(/["\\]/g, '\'').replace(/[^\x20-\x7e]/g, '?').slice(0, 300)
}

/** Refused tokens are the cheap path: built without a stack trace, like every problem. */
export function refuseToken (reason: TokenRefusal, detail: string): TokenRefusedError {
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    const code = reason === 'expired' ? 'token_expired' : 'invalid_token'
    return new TokenRefusedError(reason, code, detail, {
      'www-authenticate': `Bearer error="invalid_token", error_description="${errorDescription(detail)}"`
    })
  } finally {
    Error.stackTraceLimit = limit
  }
}

/**
 * A claim value the token carries, fit to quote back: issuers and audiences are not secrets,
 * but only short printable text is repeated (never the token, never a signature).
 */
export function quotable (value: unknown): string | undefined {
  const text = typeof value === 'string' ? value : Array.isArray(value) && value.every((item) => typeof item === 'string') ? value.join(', ') : undefined
  if (text === undefined || text === '' || text.length > 200 || !/^[\x20-\x7e]+$/.test(text)) return undefined
  return text
}

export interface ExpectedClaims {
  issuer: string | undefined
  audience: string | undefined
  algorithms: string[]
}

const ENTRA_V1 = /^https:\/\/sts\.windows\.net\/([^/]+)\/$/
const ENTRA_V2 = /^https:\/\/login\.microsoftonline\.com\/([^/]+)\/v2\.0$/

/** Entra ID issues v1.0 tokens (`sts.windows.net`) unless the app asks for v2.0, and the other way round. */
function entraHint (expected: string, got: unknown): string {
  if (typeof got !== 'string') return ''
  if (ENTRA_V2.test(expected) && ENTRA_V1.test(got)) {
    return ' This is an Entra ID v1.0 token while JWT_ISSUER names the v2.0 issuer: set "accessTokenAcceptedVersion": 2 in the app registration\'s manifest, or set JWT_ISSUER (and JWT_JWKS_URL) to the v1.0 ones.'
  }
  if (ENTRA_V1.test(expected) && ENTRA_V2.test(got)) {
    return ' This is an Entra ID v2.0 token while JWT_ISSUER names the v1.0 issuer (sts.windows.net): set JWT_ISSUER to https://login.microsoftonline.com/<tenant>/v2.0.'
  }
  return ''
}

function issuerRefusal (expected: string, got: unknown): TokenRefusedError {
  const shown = quotable(got)
  const carries = got === undefined ? 'has no iss claim' : shown === undefined || Array.isArray(got) ? 'has an iss claim that is not the expected one' : `was issued by ${shown}`
  return refuseToken('issuer', `The token ${carries}; this gateway accepts tokens issued by ${expected} (JWT_ISSUER).${entraHint(expected, got)}`)
}

function audienceRefusal (expected: string, got: unknown): TokenRefusedError {
  const shown = quotable(got)
  const carries = got === undefined ? 'has no aud claim' : shown === undefined ? 'has an aud claim that is not the expected one' : `is meant for ${shown}`
  return refuseToken('audience', `The token ${carries}; this gateway accepts tokens for the audience ${expected} (JWT_AUDIENCE). Ask your identity provider to add that audience (Keycloak: an audience mapper; its default aud is "account").`)
}

function hasAudience (aud: unknown, expected: string): boolean {
  return aud === expected || (Array.isArray(aud) && aud.includes(expected))
}

/** Reads a token's header and payload without verifying anything: only to explain a refusal. */
export function decodeUnverified (token: string): { header: Record<string, unknown>, payload: Record<string, unknown> } | undefined {
  const parts = token.split('.')
  if (parts.length !== 3) return undefined
  try {
    const header: unknown = JSON.parse(Buffer.from(parts[0] as string, 'base64url').toString('utf8'))
    const payload: unknown = JSON.parse(Buffer.from(parts[1] as string, 'base64url').toString('utf8'))
    const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)
    return isObject(header) && isObject(payload) ? { header, payload } : undefined
  } catch {
    return undefined
  }
}

/** A claim rule the verifier enforces (iss, aud, exp and the date types), checked again to name it. */
function claimRefusal (payload: Record<string, unknown>, expected: ExpectedClaims): TokenRefusedError | undefined {
  if (!('exp' in payload)) return refuseToken('exp_missing', 'The token has no exp claim; this gateway only accepts tokens that expire.')
  for (const claim of ['exp', 'nbf', 'iat']) {
    if (claim in payload && typeof payload[claim] !== 'number') return refuseToken('claims', `The token's ${claim} claim must be a number (seconds since 1970).`)
  }
  if (expected.issuer !== undefined && payload.iss !== expected.issuer) return issuerRefusal(expected.issuer, payload.iss)
  if (expected.audience !== undefined && !hasAudience(payload.aud, expected.audience)) return audienceRefusal(expected.audience, payload.aud)
  return undefined
}

const SIGNATURE_CODES = new Set(['FAST_JWT_INVALID_SIGNATURE', 'FAST_JWT_MISSING_SIGNATURE', 'FAST_JWT_INVALID_KEY', 'FAST_JWT_VERIFY_ERROR'])

/**
 * Names the check that failed for an error thrown by @fastify/jwt / fast-jwt. Their codes say
 * which step failed; for claims (whose messages @fastify/jwt may drop) the decoded payload
 * is checked again against the same rules to say which claim and what was expected.
 */
export function explainVerifyError (error: { code?: string, message?: string }, token: string, expected: ExpectedClaims): TokenRefusedError {
  const code = error.code ?? ''
  const decoded = decodeUnverified(token)
  if (decoded === undefined || code === 'FAST_JWT_MALFORMED' || code === 'FAST_JWT_INVALID_PAYLOAD' || code === 'FAST_JWT_INVALID_TYPE') {
    return refuseToken('malformed', 'The token is malformed: it must be a signed JWT (three base64url parts, header and payload JSON objects).')
  }
  if (code === 'FAST_JWT_EXPIRED' || code === 'FST_JWT_AUTHORIZATION_TOKEN_EXPIRED') {
    return refuseToken('expired', 'The token has expired: get a new one from your identity provider.')
  }
  if (code === 'FAST_JWT_INACTIVE') {
    return refuseToken('not_yet_valid', 'The token is not valid yet (its nbf claim is in the future); check the clocks of the identity provider and the gateway.')
  }
  const algorithmRefused = typeof decoded.header.alg !== 'string' || !expected.algorithms.includes(decoded.header.alg)
  if (code === 'FAST_JWT_INVALID_ALGORITHM' || (SIGNATURE_CODES.has(code) && algorithmRefused)) {
    const alg = quotable(decoded.header.alg)
    return refuseToken('algorithm', `The token is signed with ${alg === undefined ? 'an algorithm' : alg.slice(0, 16)} but this gateway accepts only ${expected.algorithms.join(', ')} (JWT_ALGORITHMS and the configured key).`)
  }
  if (code === 'FAST_JWT_INVALID_CRIT_HEADER') {
    return refuseToken('malformed', 'The token\'s crit header names an extension this gateway does not support.')
  }
  if (SIGNATURE_CODES.has(code) || /signature/i.test(error.message ?? '')) {
    return refuseToken('signature', 'The token\'s signature does not verify with the configured key: it was signed by another key or altered.')
  }
  return claimRefusal(decoded.payload, expected) ??
    refuseToken('claims', 'The token\'s claims are not acceptable.')
}
