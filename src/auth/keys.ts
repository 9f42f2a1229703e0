import { createPublicKey, type KeyObject } from 'node:crypto'
import { ConfigError } from '../config-error.js'

export const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512']
const RSA_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']
const EC_ALGORITHM_BY_CURVE: Record<string, string> = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512', prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' }
export const ASYMMETRIC_ALGORITHMS = [...RSA_ALGORITHMS, 'ES256', 'ES384', 'ES512', 'EdDSA']

/** The algorithms a public key can verify; empty for key types we do not accept. */
export function algorithmsForKey (key: KeyObject): string[] {
  switch (key.asymmetricKeyType) {
    case 'rsa':
    case 'rsa-pss':
      return RSA_ALGORITHMS
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve
      const algorithm = curve === undefined ? undefined : EC_ALGORITHM_BY_CURVE[curve]
      return algorithm === undefined ? [] : [algorithm]
    }
    case 'ed25519':
      return ['EdDSA']
    default:
      return []
  }
}

/**
 * The algorithms tokens may use: those configured, each of which the key must support, or all
 * that the key supports. `none` never; HMAC only with a secret, asymmetric only with keys,
 * so no token can make the gateway use a public key as an HMAC secret.
 */
export function allowedAlgorithms (configured: string[], supported: string[], variable: string): string[] {
  if (configured.length === 0) return supported
  for (const algorithm of configured) {
    if (!supported.includes(algorithm)) {
      throw new ConfigError('JWT_ALGORITHMS', `lists ${algorithm.slice(0, 16)}, which the key given in ${variable} cannot verify (allowed: ${supported.join(', ')})`)
    }
  }
  return configured
}

/** Parses a PEM public key once, at start. Private keys are refused: the gateway never signs. */
export function parsePublicKeyPem (pem: string, variable: string): { pem: string, algorithms: string[] } {
  if (/PRIVATE KEY/.test(pem)) throw new ConfigError(variable, 'holds a private key; give the public key only')
  let key: KeyObject
  try {
    key = createPublicKey(pem)
  } catch {
    throw new ConfigError(variable, 'is not a PEM public key (RSA, EC or Ed25519)')
  }
  const algorithms = algorithmsForKey(key)
  if (algorithms.length === 0) throw new ConfigError(variable, 'is a key type the gateway does not support (use RSA, EC P-256/384/521 or Ed25519)')
  return { pem: key.export({ type: 'spki', format: 'pem' }).toString(), algorithms }
}
