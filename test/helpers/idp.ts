import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { helpdeskClaims, signJwt, type JwtClaims } from '../../dev/tokens.js'

export interface SigningKey { kid: string, alg: string, privateKey: KeyObject, publicKey: KeyObject }

export function rsaKey (kid: string, alg = 'RS256'): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  return { kid, alg, privateKey, publicKey }
}
export function ecKey (kid: string): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  return { kid, alg: 'ES256', privateKey, publicKey }
}
export function edKey (kid: string): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  return { kid, alg: 'EdDSA', privateKey, publicKey }
}

export function signWith (key: SigningKey, claims: JwtClaims = {}, header: Record<string, unknown> = {}): string {
  return signJwt({ alg: key.alg, kid: key.kid, ...header }, helpdeskClaims(claims), key.privateKey)
}

/** A real JWKS endpoint on loopback whose keys, availability and fetch count tests control. */
export class FakeIdp {
  keys: SigningKey[] = []
  down = false
  fetches = 0
  private readonly server: Server = createServer((request, response) => {
    this.fetches++
    if (this.down) {
      response.writeHead(503).end('down')
      return
    }
    const keys = this.keys.map((key) => ({ ...key.publicKey.export({ format: 'jwk' }), kid: key.kid, alg: key.alg, use: 'sig' }))
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }))
  })

  async start (): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve))
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/.well-known/jwks.json`
  }

  async stop (): Promise<void> {
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}
