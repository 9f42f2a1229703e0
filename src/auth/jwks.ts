import { createPublicKey, type JsonWebKey } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { request } from 'undici'
import { problem } from '../errors.js'
import { algorithmsForKey } from './keys.js'
import { quotable, refuseToken } from './refusal.js'

interface CachedKey { pem: string, algorithms: string[] }
interface KeySet { byKid: Map<string, CachedKey>, all: CachedKey[] }

export interface JwksTiming {
  /** An unknown kid triggers at most one fetch per cooldown, however many arrive. */
  cooldownMs?: number
  /** Keys are refreshed in the background once they are this old; kept if the refresh fails. */
  maxAgeMs?: number
  /** The clock the cooldown and key age are measured with (tests pass one they move). */
  now?: () => number
}

export interface JwksOptions extends JwksTiming {
  /** From configuration only: never derived from a token. */
  url: string
  algorithms: string[]
  log: FastifyBaseLogger
  fetchTimeoutMs?: number
  onFetch?: (result: 'ok' | 'failed') => void
}

export interface JwtHeader { kid?: unknown, alg?: unknown }

export interface JwksStore {
  /** The PEM key that verifies a token with this header; throws invalid_token or keys_unavailable. */
  keyFor: (header: JwtHeader) => Promise<string>
  /** Loads keys at start; never throws (an IdP that is down only makes the service unready). */
  warm: () => Promise<void>
  readonly ready: boolean
  /** For /readyz: retries a failed load, within the cooldown. */
  ensureLoaded: () => Promise<boolean>
  close: () => void
}

const MAX_JWKS_BYTES = 1024 * 1024

function toKeySet (document: unknown, allowed: string[]): KeySet {
  const keys = (document as { keys?: unknown } | null)?.keys
  if (!Array.isArray(keys)) throw new Error('the JWKS has no keys array')
  const set: KeySet = { byKid: new Map(), all: [] }
  for (const jwk of keys as Array<Record<string, unknown>>) {
    if (typeof jwk !== 'object' || jwk === null) continue
    if (jwk.use !== undefined && jwk.use !== 'sig') continue
    if (jwk.kty === 'oct' || 'd' in jwk) continue
    let algorithms: string[]
    let pem: string
    try {
      const key = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' })
      algorithms = algorithmsForKey(key)
      pem = key.export({ type: 'spki', format: 'pem' }).toString()
    } catch {
      continue
    }
    if (typeof jwk.alg === 'string') algorithms = algorithms.includes(jwk.alg) ? [jwk.alg] : []
    algorithms = algorithms.filter((algorithm) => allowed.includes(algorithm))
    if (algorithms.length === 0) continue
    const cached = { pem, algorithms }
    set.all.push(cached)
    if (typeof jwk.kid === 'string') set.byKid.set(jwk.kid, cached)
  }
  if (set.all.length === 0) throw new Error('the JWKS has no usable signing key for the allowed algorithms')
  return set
}

export function createJwksStore (options: JwksOptions): JwksStore {
  const cooldownMs = options.cooldownMs ?? 5000
  const fetchTimeoutMs = options.fetchTimeoutMs ?? 5000
  const maxAgeMs = options.maxAgeMs ?? 10 * 60_000
  const now = options.now ?? Date.now
  let keys: KeySet | undefined
  let loadedAt = 0
  let lastAttemptAt = Number.NEGATIVE_INFINITY
  let lastFailed = false
  let inFlight: Promise<void> | undefined

  async function fetchKeySet (): Promise<KeySet> {
    const response = await request(options.url, {
      method: 'GET',
      headers: { accept: 'application/json' },
      headersTimeout: fetchTimeoutMs,
      bodyTimeout: fetchTimeoutMs,
      signal: AbortSignal.timeout(fetchTimeoutMs)
    })
    if (response.statusCode !== 200) {
      await response.body.dump()
      throw new Error(`the JWKS endpoint answered HTTP ${response.statusCode}`)
    }
    let size = 0
    const chunks: Buffer[] = []
    for await (const chunk of response.body) {
      size += (chunk as Buffer).length
      if (size > MAX_JWKS_BYTES) {
        response.body.destroy()
        throw new Error('the JWKS document is too large')
      }
      chunks.push(chunk as Buffer)
    }
    return toKeySet(JSON.parse(Buffer.concat(chunks).toString('utf8')), options.algorithms)
  }

  function refresh (): Promise<void> {
    if (inFlight !== undefined) return inFlight
    lastAttemptAt = now()
    inFlight = fetchKeySet().then((fresh) => {
      keys = fresh
      loadedAt = now()
      options.onFetch?.('ok')
      if (lastFailed) options.log.info('JWKS keys loaded again')
      lastFailed = false
    }, (err: Error) => {
      options.onFetch?.('failed')
      if (!lastFailed) options.log.warn({ reason: err.message }, 'cannot load JWKS keys; cached keys stay in use')
      lastFailed = true
    }).finally(() => { inFlight = undefined })
    return inFlight
  }

  const cooledDown = () => now() - lastAttemptAt >= cooldownMs

  function find (kid: string | undefined): CachedKey | undefined {
    if (keys === undefined) return undefined
    if (kid !== undefined) return keys.byKid.get(kid)
    return keys.all.length === 1 ? keys.all[0] : undefined
  }

  const timer = setInterval(() => {
    if (now() - loadedAt >= maxAgeMs && cooledDown()) refresh().catch(() => undefined)
  }, Math.min(maxAgeMs, 60_000))
  timer.unref()

  return {
    async keyFor (header) {
      if (header.kid !== undefined && (typeof header.kid !== 'string' || header.kid.length > 256)) {
        throw refuseToken('malformed', 'The token\'s kid header is malformed (it must be a string of at most 256 characters).')
      }
      const kid = header.kid
      let key = find(kid)
      if (key === undefined) {
        if (cooledDown()) await refresh()
        else if (inFlight !== undefined) await inFlight
        key = find(kid)
      }
      if (key === undefined) {
        if (keys === undefined || lastFailed) {
          throw problem('keys_unavailable', 'The identity provider\'s signing keys cannot be loaded right now; retry shortly.', { retryAfterS: Math.ceil(cooldownMs / 1000) })
        }
        const kid = quotable(header.kid)
        throw refuseToken('kid_unknown', kid === undefined || kid.length > 64
          ? 'The token names no key the identity provider publishes at JWT_JWKS_URL (no kid header, and more than one key there).'
          : `The token was signed by a key (kid ${kid}) the identity provider does not publish at JWT_JWKS_URL; check that JWT_JWKS_URL belongs to the issuer of the token.`)
      }
      if (!key.algorithms.includes(header.alg as string)) {
        const alg = quotable(header.alg)
        throw refuseToken('algorithm', `The token's algorithm${alg === undefined ? '' : ` (${alg.slice(0, 16)})`} does not fit its key, which verifies ${key.algorithms.join(', ')}.`)
      }
      return key.pem
    },
    async warm () { await refresh() },
    get ready () { return keys !== undefined },
    async ensureLoaded () {
      if (keys === undefined && cooledDown()) await refresh()
      return keys !== undefined
    },
    close () { clearInterval(timer) }
  }
}
