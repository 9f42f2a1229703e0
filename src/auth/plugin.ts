import fastifyJwt, { type FastifyJWTOptions } from '@fastify/jwt'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { DETAILS, GatewayError, problem } from '../errors.js'
import { callerFrom, type Caller } from './claims.js'
import { createJwksStore, type JwksTiming, type JwtHeader } from './jwks.js'
import type { JwtSettings } from './options.js'
import { explainVerifyError, refuseToken, TokenRefusedError, type TokenRefusal } from './refusal.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Verifies the bearer token and returns the caller; throws the matching problem. */
    authenticate: (request: FastifyRequest) => Promise<Caller>
    /** True once token keys are usable (always, except while a JWKS has never loaded). */
    signingKeysReady: () => Promise<boolean>
  }
  interface FastifyRequest {
    /** Which check a refused token failed (for the audit entry); undefined otherwise. */
    tokenRefusal: TokenRefusal | undefined
  }
}

/** RFC 6750 bearer credentials; the scheme is case-insensitive (RFC 9110). */
const BEARER = /^Bearer ([^\s]+)$/i
/** Longer tokens are refused before any decoding or crypto. */
export const MAX_TOKEN_BYTES = 8192

function bearerToken (request: FastifyRequest): string {
  const raw = request.raw.rawHeaders
  let count = 0
  for (let i = 0; i < raw.length; i += 2) {
    if ((raw[i] as string).length === 13 && (raw[i] as string).toLowerCase() === 'authorization') count++
  }
  if (count > 1) throw problem('invalid_request', 'Send exactly one Authorization header.')
  const header = request.headers.authorization
  const match = header === undefined ? null : BEARER.exec(header)
  if (match === null) {
    throw problem('missing_token', DETAILS.missing_token, {
      headers: { 'www-authenticate': 'Bearer' }
    })
  }
  const token = match[1] as string
  if (token.length > MAX_TOKEN_BYTES) {
    throw refuseToken('too_large', 'The token is larger than 8 KiB; this gateway refuses it unread.')
  }
  return token
}

export interface AuthOptions { jwt: JwtSettings, jwksTiming?: JwksTiming | undefined, onJwksFetch?: (result: 'ok' | 'failed') => void }

async function auth (fastify: FastifyInstance, { jwt, jwksTiming, onJwksFetch }: AuthOptions): Promise<void> {
  const { verification, issuer, audience, clockToleranceS, maxAgeS, rolesClaim, orgClaim } = jwt
  const requiredClaims = ['exp']
  if (issuer !== undefined) requiredClaims.push('iss')
  if (audience !== undefined) requiredClaims.push('aud')
  const verify = {
    algorithms: verification.algorithms,
    allowedIss: issuer,
    allowedAud: audience,
    clockTolerance: clockToleranceS * 1000,
    requiredClaims,
    cache: false
  }

  let signingKeysReady = async () => true
  let jwtOptions: FastifyJWTOptions
  if (verification.kind === 'jwks') {
    const store = createJwksStore({ url: verification.url, algorithms: verification.algorithms, log: fastify.log, onFetch: onJwksFetch, ...jwksTiming })
    // Keys are fetched at start, without delaying it: an IdP that is down only makes /readyz say so.
    store.warm().catch(() => undefined)
    fastify.addHook('onClose', async () => { store.close() })
    signingKeysReady = store.ensureLoaded
    jwtOptions = {
      secret: async (_request: FastifyRequest, token: { header: JwtHeader }) => await store.keyFor(token.header),
      decode: { complete: true },
      verify,
      // Keeps fast-jwt's message (which step failed) on the errors @fastify/jwt wraps.
      messages: { authorizationTokenInvalid: (error: Error) => error.message }
    } as unknown as FastifyJWTOptions
  } else {
    if (verification.kind === 'secret' && Buffer.byteLength(verification.secret) < 32) {
      fastify.log.warn('JWT_SECRET is shorter than 32 bytes: HMAC tokens signed with it can be brute-forced; use a longer random secret')
    }
    jwtOptions = {
      secret: verification.kind === 'secret' ? verification.secret : { public: verification.pem },
      verify
    } as FastifyJWTOptions
  }
  await fastify.register(fastifyJwt, jwtOptions)

  const rules = { clockToleranceS, maxAgeS, rolesPath: rolesClaim.split('.'), orgPath: orgClaim.split('.') }
  const verifyStatic = verification.kind !== 'jwks'
  const expected = { issuer, audience, algorithms: verification.algorithms }
  fastify.decorateRequest('tokenRefusal', undefined)
  fastify.decorate('authenticate', async function authenticate (request: FastifyRequest): Promise<Caller> {
    let token: string | undefined
    try {
      token = bearerToken(request)
      const payload: unknown = verifyStatic ? verifyWithoutStacks(token) : await request.jwtVerify()
      if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
        throw refuseToken('malformed', 'The token payload must be a JSON object.')
      }
      return callerFrom(payload as Record<string, unknown>, rules)
    } catch (error) {
      const refusal = refusalOf(error, token)
      if (refusal === undefined) throw error
      request.tokenRefusal = refusal.reason
      request.log.debug({ token_refusal: refusal.reason, detail: refusal.message }, 'token refused')
      throw refusal
    }
  })

  /** Our own refusals pass as they are; the verifier's are explained; anything else is not a refusal. */
  function refusalOf (error: unknown, token: string | undefined): TokenRefusedError | undefined {
    if (error instanceof TokenRefusedError) return error
    if (error instanceof GatewayError || token === undefined) return undefined
    const { code, name } = error as { code?: unknown, name?: unknown }
    if (typeof code === 'string' && (code.startsWith('FST_JWT_') || code.startsWith('FAST_JWT_'))) return explainVerifyError(error as Error & { code: string }, token, expected)
    if (name === 'TokenError') return explainVerifyError(error as Error, token, expected)
    return undefined
  }
  fastify.decorate('signingKeysReady', signingKeysReady)

  /**
   * A static key verifies synchronously with the verifier built once at start. Refused tokens
   * are the cheap path: their errors are built without stack traces.
   */
  function verifyWithoutStacks (token: string): unknown {
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    try {
      return fastify.jwt.verify(token)
    } finally {
      Error.stackTraceLimit = limit
    }
  }
}

export default fp(auth, { name: 'auth', fastify: '5.x' })
