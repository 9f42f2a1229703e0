import { createHmac, sign as cryptoSign, type KeyObject } from 'node:crypto'

/** Signs JWTs for the demo and the tests (the gateway itself only ever verifies them). */
const base64url = (value: string | Buffer) => Buffer.from(value).toString('base64url')

const HMAC_HASH: Record<string, string> = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }
const RSA_HASH: Record<string, string> = { RS256: 'sha256', RS384: 'sha384', RS512: 'sha512' }
const EC_HASH: Record<string, string> = { ES256: 'sha256', ES384: 'sha384', ES512: 'sha512' }

export type JwtClaims = Record<string, unknown>
export type JwtHeader = Record<string, unknown> & { alg: string }

/** `key` is an HMAC secret for HS*, a private KeyObject otherwise. */
export function signJwt (header: JwtHeader, claims: JwtClaims, key: string | Buffer | KeyObject): string {
  const input = `${base64url(JSON.stringify({ typ: 'JWT', ...header }))}.${base64url(JSON.stringify(claims))}`
  const alg = header.alg
  let signature: Buffer
  if (HMAC_HASH[alg] !== undefined) {
    signature = createHmac(HMAC_HASH[alg], key as string | Buffer).update(input).digest()
  } else if (RSA_HASH[alg] !== undefined) {
    signature = cryptoSign(RSA_HASH[alg], Buffer.from(input), key as KeyObject)
  } else if (EC_HASH[alg] !== undefined) {
    signature = cryptoSign(EC_HASH[alg], Buffer.from(input), { key: key as KeyObject, dsaEncoding: 'ieee-p1363' })
  } else if (alg === 'EdDSA') {
    signature = cryptoSign(null, Buffer.from(input), key as KeyObject)
  } else {
    signature = Buffer.alloc(0)
  }
  return `${input}.${base64url(signature)}`
}

/** Claims of a caller allowed to join users, valid for `lifetimeS` from now. */
export function helpdeskClaims (overrides: JwtClaims = {}, lifetimeS = 3600): JwtClaims {
  const now = Math.floor(Date.now() / 1000)
  return { sub: 'helpdesk-bot', org: 'example', roles: ['matrix-admin'], iat: now, exp: now + lifetimeS, ...overrides }
}
