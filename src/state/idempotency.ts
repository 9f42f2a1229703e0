import { createHash, randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
import { unavailable } from './unavailable.js'

/** The first complete answer to a request, as it is replayed. */
export interface StoredAnswer { status: number, headers: Record<string, string>, body: string }

export type Claim =
  /** This request owns the key now; it must later call complete() or release(). */
  | { kind: 'new' }
  /** Same key, same fingerprint, the first answer is finished: replay it (Idempotent-Replayed: true). */
  | { kind: 'replay', answer: StoredAnswer }
  /** Same key, the first request is still running: 409 idempotency_in_progress. */
  | { kind: 'in_progress' }
  /** Same key, another method, path or body: 422 idempotency_key_reused. */
  | { kind: 'mismatch' }

export interface IdempotencyStore {
  /** Atomic across replicas: of concurrent claims on one key, exactly one is `new`. */
  claim: (scope: string, key: string, fingerprint: string) => Promise<Claim>
  /** Stores the answer of a `new` claim for the store's TTL; a no-op when the claim was lost (expired, released). */
  complete: (scope: string, key: string, answer: StoredAnswer) => Promise<void>
  /** The owner ended without an answer worth storing (e.g. it must be retried): the key is free again. */
  release: (scope: string, key: string) => Promise<void>
  close: () => Promise<void>
}

export interface StoreTimes {
  /** How long a finished answer is replayed (IDEMPOTENCY_TTL_S). */
  ttlS: number
  /** How long a claim whose owner never finished blocks the key (a replica that died mid-request). */
  inFlightTtlS: number
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex')
const milliseconds = (seconds: number): number => Math.max(1, Math.ceil(seconds * 1000))

/**
 * What identifies a request for reuse checks: SHA-256 (hex) of the method, the path and the body.
 * A JSON body is canonicalised (keys sorted, whitespace dropped), so `{"a":1,"b":2}` and
 * `{ "b": 2, "a": 1 }` are the same request; any other body counts as its raw text.
 */
export function fingerprint (method: string, path: string, body: string): string {
  return sha256(JSON.stringify([method.toUpperCase(), path, canonicalBody(body)]))
}

function canonicalBody (body: string): string {
  try {
    return `json:${canonicalJson(JSON.parse(body))}`
  } catch {
    // Not JSON (or nested too deeply to walk): the text as sent.
    return `text:${body}`
  }
}

/** Serialises with sorted keys without building objects, so keys such as `__proto__` stay plain data. */
function canonicalJson (value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>
    return `{${Object.keys(record).sort().map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`).join(',')}}`
  }
  return JSON.stringify(value)
}

/** The caller's key is never kept: records live under SHA-256 of (scope, key), unambiguous for any strings. */
export function storageKey (scope: string, key: string): string {
  return sha256(JSON.stringify([scope, key]))
}

function answerFrom (text: string): StoredAnswer {
  return JSON.parse(text) as StoredAnswer
}

interface MemoryRecord {
  fingerprint: string
  owner: string | undefined
  answer: StoredAnswer | undefined
  expiresAt: number
}

export interface MemoryStoreOptions extends StoreTimes {
  /** Records kept at most; above it the oldest is dropped (default 100 000). */
  maxEntries?: number
}

/**
 * Idempotency records of one replica. Bounded: above `maxEntries` the oldest record goes. Expired
 * records are dropped when they are looked at or reach the front of the insertion order, so there
 * is no timer per entry.
 */
export function createMemoryIdempotencyStore (options: MemoryStoreOptions): IdempotencyStore {
  const maxEntries = options.maxEntries ?? 100_000
  const records = new Map<string, MemoryRecord>()
  const now = (): number => performance.now()

  function sweep (): void {
    for (const [id, record] of records) {
      if (record.expiresAt > now() && records.size <= maxEntries) return
      records.delete(id)
    }
  }
  function live (id: string): MemoryRecord | undefined {
    const record = records.get(id)
    if (record !== undefined && record.expiresAt <= now()) {
      records.delete(id)
      return undefined
    }
    return record
  }
  function put (id: string, record: MemoryRecord): void {
    // Re-inserting keeps the Map's order "oldest write first", which is what eviction drops.
    records.delete(id)
    records.set(id, record)
    sweep()
  }

  return {
    async claim (scope, key, requestFingerprint) {
      const id = storageKey(scope, key)
      const record = live(id)
      if (record === undefined) {
        put(id, { fingerprint: requestFingerprint, owner: 'memory', answer: undefined, expiresAt: now() + milliseconds(options.inFlightTtlS) })
        return { kind: 'new' }
      }
      if (record.fingerprint !== requestFingerprint) return { kind: 'mismatch' }
      if (record.answer === undefined) return { kind: 'in_progress' }
      return { kind: 'replay', answer: structuredClone(record.answer) }
    },
    async complete (scope, key, answer) {
      const id = storageKey(scope, key)
      const record = live(id)
      if (record?.owner === undefined) return
      put(id, { fingerprint: record.fingerprint, owner: undefined, answer: structuredClone(answer), expiresAt: now() + milliseconds(options.ttlS) })
    },
    async release (scope, key) {
      const id = storageKey(scope, key)
      if (live(id)?.owner !== undefined) records.delete(id)
    },
    async close () {
      records.clear()
    }
  }
}

// One hash per record: `fingerprint`, then `owner` (a random token) while running, `answer` once done.
const CLAIM = `
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'fingerprint', ARGV[1], 'owner', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'new'}
end
local record = redis.call('HMGET', KEYS[1], 'fingerprint', 'answer')
if record[1] ~= ARGV[1] then return {'mismatch'} end
if not record[2] then return {'in_progress'} end
return {'replay', record[2]}
`
// Only the claim's owner may finish it: a request that outlived its in-flight TTL and lost the key
// to a retry must not overwrite that retry's record.
const COMPLETE = `
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'owner')
redis.call('HSET', KEYS[1], 'answer', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`
const RELEASE = `
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
`

type ClaimReply = ['new'] | ['mismatch'] | ['in_progress'] | ['replay', string]

interface IdempotencyCommands {
  gatewayIdempotencyClaim: (key: string, fingerprint: string, owner: string, inFlightMs: number) => Promise<ClaimReply>
  gatewayIdempotencyComplete: (key: string, owner: string, answer: string, ttlMs: number) => Promise<number>
  gatewayIdempotencyRelease: (key: string, owner: string) => Promise<number>
}

export interface RedisStoreOptions extends StoreTimes {
  /** Prefix of every record's Redis key (default `sag:idem:`). */
  prefix?: string
}

/**
 * Idempotency records in Redis, shared by every replica. Each call is one Lua script, so a claim
 * is atomic; any failure to reach Redis rejects with StateUnavailableError. The store remembers
 * the owner token of the claims it won, so complete() and release() act only on its own claims.
 * The client is the caller's: close() does not close it.
 */
export function createRedisIdempotencyStore (redis: Redis, options: RedisStoreOptions): IdempotencyStore {
  const prefix = options.prefix ?? 'sag:idem:'
  const inFlightMs = milliseconds(options.inFlightTtlS)
  const ttlMs = milliseconds(options.ttlS)
  redis.defineCommand('gatewayIdempotencyClaim', { numberOfKeys: 1, lua: CLAIM })
  redis.defineCommand('gatewayIdempotencyComplete', { numberOfKeys: 1, lua: COMPLETE })
  redis.defineCommand('gatewayIdempotencyRelease', { numberOfKeys: 1, lua: RELEASE })
  const commands = redis as unknown as IdempotencyCommands
  const owned = new Map<string, string>()

  async function run<T> (command: () => Promise<T>): Promise<T> {
    try {
      return await command()
    } catch (error) {
      throw unavailable(error)
    }
  }

  return {
    async claim (scope, key, requestFingerprint) {
      const id = prefix + storageKey(scope, key)
      const owner = randomUUID()
      const reply = await run(() => commands.gatewayIdempotencyClaim(id, requestFingerprint, owner, inFlightMs))
      if (reply[0] === 'new') owned.set(id, owner)
      if (reply[0] === 'replay') return { kind: 'replay', answer: answerFrom(reply[1]) }
      return { kind: reply[0] }
    },
    async complete (scope, key, answer) {
      const id = prefix + storageKey(scope, key)
      const owner = owned.get(id)
      if (owner === undefined) return
      owned.delete(id)
      await run(() => commands.gatewayIdempotencyComplete(id, owner, JSON.stringify(answer), ttlMs))
    },
    async release (scope, key) {
      const id = prefix + storageKey(scope, key)
      const owner = owned.get(id)
      if (owner === undefined) return
      owned.delete(id)
      await run(() => commands.gatewayIdempotencyRelease(id, owner))
    },
    async close () {
      owned.clear()
    }
  }
}
