/** How tokens are verified: one of a shared secret, a public key, or an identity provider's JWKS. */
export type JwtVerification =
  | { kind: 'secret', secret: string, algorithms: string[] }
  | { kind: 'public-key', pem: string, algorithms: string[] }
  | { kind: 'jwks', url: string, algorithms: string[] }

/** What the auth plugin needs of the configuration (config.jwt): auth/ does not import config.ts. */
export interface JwtSettings {
  verification: JwtVerification
  issuer: string | undefined
  audience: string | undefined
  clockToleranceS: number
  maxAgeS: number
  rolesClaim: string
  orgClaim: string
}
