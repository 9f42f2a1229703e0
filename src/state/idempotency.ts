import { createHash, createHmac, randomUUID } from 'node:crypto'
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
 * What identifies a request for reuse checks: SHA-256 (hex) of the method, the path and the body,
 * or an HMAC-SHA256 with `key`: a body may hold a secret (a password reset's `new_password`), and
 * a plain hash kept in Redis would let whoever reads it test guesses. A JSON body is canonicalised
 * (keys sorted, whitespace dropped), so `{"a":1,"b":2}` and `{ "b": 2, "a": 1 }` are the same
 * request; any other body counts as its raw text.
 */
export function fingerprint (method: string, path: string, body: string, key?: Buffer): string {
  const text = JSON.stringify([method.toUpperCase(), path, canonicalBody(body)])
  return key === undefined ? sha256(text) : createHmac('sha256', key).update(text).digest('hex')
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
  /** What the record costs, as counted against maxBytes. */
  bytes: number
}

/** An answer larger than this is never stored: the request answers, a retry runs again. */
export const MAX_STORED_ANSWER_BYTES = 1024 * 1024
/** IDEMPOTENCY_MAX_BYTES's default, per replica in memory or per Redis prefix. */
const DEFAULT_MAX_BYTES = 64 * 1024 * 1024
/** A record's own cost beside its strings: the Map entry, the record object, the answer's objects. */
const RECORD_OVERHEAD_BYTES = 200

/** The bytes an answer stands for: its body and headers as UTF-8. */
function answerBytes (answer: StoredAnswer): number {
  let bytes = Buffer.byteLength(answer.body)
  for (const [name, value] of Object.entries(answer.headers)) bytes += name.length + Buffer.byteLength(value)
  return bytes
}

/** The answer's bytes when it may be stored under a budget of `maxBytes`; undefined when it is too big. */
function storable (answer: StoredAnswer, maxBytes: number): number | undefined {
  const bytes = answerBytes(answer)
  return bytes <= Math.min(MAX_STORED_ANSWER_BYTES, maxBytes) ? bytes : undefined
}

export interface MemoryStoreOptions extends StoreTimes {
  /** Records kept at most; above it the oldest is dropped (default 100 000). */
  maxEntries?: number
  /** Bytes kept at most (keys, fingerprints, answers); above it the oldest records are dropped (default 64 MiB). */
  maxBytes?: number
  /** The clock records expire by, in milliseconds (default performance.now); tests move it. */
  now?: () => number
}

/**
 * Idempotency records of one replica. Bounded by count and by bytes: above `maxEntries` or
 * `maxBytes` the oldest records go. Expired records are dropped when they are looked at or reach
 * the front of the insertion order, so there is no timer per entry.
 */
export function createMemoryIdempotencyStore (options: MemoryStoreOptions): IdempotencyStore {
  const maxEntries = options.maxEntries ?? 100_000
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES
  const records = new Map<string, MemoryRecord>()
  let totalBytes = 0
  const now = options.now ?? ((): number => performance.now())

  function drop (id: string): void {
    const record = records.get(id)
    if (record === undefined) return
    totalBytes -= record.bytes
    records.delete(id)
  }
  function sweep (): void {
    for (const [id, record] of records) {
      if (record.expiresAt > now() && records.size <= maxEntries && totalBytes <= maxBytes) return
      drop(id)
    }
  }
  function live (id: string): MemoryRecord | undefined {
    const record = records.get(id)
    if (record !== undefined && record.expiresAt <= now()) {
      drop(id)
      return undefined
    }
    return record
  }
  function put (id: string, record: Omit<MemoryRecord, 'bytes'>, answerSize = 0): void {
    // Re-inserting keeps the Map's order "oldest write first", which is what eviction drops.
    drop(id)
    const bytes = RECORD_OVERHEAD_BYTES + id.length + record.fingerprint.length + answerSize
    records.set(id, { ...record, bytes })
    totalBytes += bytes
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
      const bytes = storable(answer, maxBytes)
      if (bytes === undefined) {
        drop(id)
        return
      }
      put(id, { fingerprint: record.fingerprint, owner: undefined, answer: structuredClone(answer), expiresAt: now() + milliseconds(options.ttlS) }, bytes)
    },
    async release (scope, key) {
      const id = storageKey(scope, key)
      if (live(id)?.owner !== undefined) drop(id)
    },
    async close () {
      records.clear()
      totalBytes = 0
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
// The byte budget of a prefix: a sorted set (KEYS[2]) of the stored answers, member "<bytes>:<id>",
// scored by expiry time (Redis's clock), and their total (KEYS[3]). Entries whose record expired
// by itself are forgotten (at most 100 per call); then, while the total is over the budget, the
// record that expires first (with one TTL: the oldest) is deleted. Both keys expire with the last
// record stored, so an idle prefix leaves nothing behind.
const COMPLETE = `
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ttl = tonumber(ARGV[3])
local total = tonumber(redis.call('GET', KEYS[3]) or '0')
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)) do
  total = total - tonumber(string.match(member, '^(%d+):'))
  redis.call('ZREM', KEYS[2], member)
end
redis.call('HDEL', KEYS[1], 'owner')
redis.call('HSET', KEYS[1], 'answer', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[4] .. ':' .. ARGV[7])
total = total + tonumber(ARGV[4])
while total > tonumber(ARGV[5]) do
  local oldest = redis.call('ZPOPMIN', KEYS[2])
  if #oldest == 0 then break end
  local size, id = string.match(oldest[1], '^(%d+):(.*)$')
  total = total - tonumber(size)
  redis.call('DEL', ARGV[6] .. id)
end
if total < 0 or redis.call('ZCARD', KEYS[2]) == 0 then total = 0 end
redis.call('SET', KEYS[3], total, 'PX', ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
`
const RELEASE = `
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
`

type ClaimReply = ['new'] | ['mismatch'] | ['in_progress'] | ['replay', string]

interface IdempotencyCommands {
  gatewayIdempotencyClaim: (key: string, fingerprint: string, owner: string, inFlightMs: number) => Promise<ClaimReply>
  gatewayIdempotencyComplete: (key: string, index: string, total: string, owner: string, answer: string, ttlMs: number, bytes: number, maxBytes: number, prefix: string, id: string) => Promise<number>
  gatewayIdempotencyRelease: (key: string, owner: string) => Promise<number>
}

export interface RedisStoreOptions extends StoreTimes {
  /** Prefix of every record's Redis key (default `sag:idem:`). */
  prefix?: string
  /** Bytes of stored answers kept at most under this prefix, by every replica together (default 64 MiB). */
  maxBytes?: number
}

/**
 * Idempotency records in Redis, shared by every replica. Each call is one Lua script, so a claim
 * is atomic; any failure to reach Redis rejects with StateUnavailableError. Stored answers are
 * bounded in bytes per prefix (COMPLETE above); an in-flight claim (a few hundred bytes, for at
 * most inFlightTtlS) is not counted. Eviction deletes records the script does not name in its
 * KEYS: a standalone Redis or Valkey (or Sentinel), not Redis Cluster. The store remembers
 * the owner token of the claims it won, so complete() and release() act only on its own claims.
 * The client is the caller's: close() does not close it.
 */
export function createRedisIdempotencyStore (redis: Redis, options: RedisStoreOptions): IdempotencyStore {
  const prefix = options.prefix ?? 'sag:idem:'
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES
  // Not 64 hex digits: these never collide with a record's key.
  const index = `${prefix}budget:answers`
  const total = `${prefix}budget:bytes`
  const inFlightMs = milliseconds(options.inFlightTtlS)
  const ttlMs = milliseconds(options.ttlS)
  redis.defineCommand('gatewayIdempotencyClaim', { numberOfKeys: 1, lua: CLAIM })
  redis.defineCommand('gatewayIdempotencyComplete', { numberOfKeys: 3, lua: COMPLETE })
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
      const hashed = storageKey(scope, key)
      const id = prefix + hashed
      const owner = owned.get(id)
      if (owner === undefined) return
      owned.delete(id)
      if (storable(answer, maxBytes) === undefined) {
        await run(() => commands.gatewayIdempotencyRelease(id, owner))
        return
      }
      const stored = JSON.stringify(answer)
      const bytes = RECORD_OVERHEAD_BYTES + id.length + 64 + Buffer.byteLength(stored)
      await run(() => commands.gatewayIdempotencyComplete(id, index, total, owner, stored, ttlMs, bytes, maxBytes, prefix, hashed))
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
