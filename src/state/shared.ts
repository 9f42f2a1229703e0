import { createRequire } from 'node:module'
import type { FastifyBaseLogger } from 'fastify'
import type { Redis, RedisOptions } from 'ioredis'
import { createMemoryIdempotencyStore, createRedisIdempotencyStore, type IdempotencyStore } from './idempotency.js'

export { StateUnavailableError } from './unavailable.js'

export interface SharedState {
  /** The ioredis client (for @fastify/rate-limit's `redis` option); undefined without REDIS_URL. */
  readonly redis: Redis | undefined
  readonly idempotency: IdempotencyStore
  /** False while Redis is unreachable or does not answer; always true without REDIS_URL. */
  readonly available: boolean
  close: () => Promise<void>
}

export interface SharedStateOptions {
  redisUrl: string | undefined
  idempotencyTtlS: number
  inFlightTtlS: number
  /** IDEMPOTENCY_MAX_BYTES: per replica in memory, per Redis prefix with REDIS_URL (default 64 MiB). */
  idempotencyMaxBytes?: number
  log: FastifyBaseLogger
  /** How often a connected Redis is asked PING, to notice one that stopped answering (default 1000 ms). */
  heartbeatMs?: number
  /** The clock records kept in memory expire by (Redis expires its own by its clock). */
  idempotencyClock?: () => number
}

/**
 * Every call fails fast while Redis is away and nothing is kept to be sent later: a SET replayed
 * after a reconnect could start an action twice. Reconnecting goes on in the background.
 */
export const REDIS_CLIENT_OPTIONS = {
  // A command issued while disconnected is refused at once instead of queued for later.
  enableOfflineQueue: false,
  // Commands already sent when the connection drops are failed, not re-sent on reconnect.
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
  // A Redis that accepts the connection but does not answer (overloaded, stopped) fails the call.
  commandTimeout: 1000,
  connectTimeout: 2000,
  retryStrategy: (attempt: number) => Math.min(100 * 2 ** Math.min(attempt - 1, 5), 2000),
  connectionName: 'synapse-admin-gateway'
} as const satisfies RedisOptions

/** ioredis understands redis:// and rediss:// only; Valkey's schemes mean the same. */
function clientUrl (url: string): string {
  return url.replace(/^valkey(s?):\/\//i, 'redis$1://')
}

/** The URL as it may be logged: user name and password removed. */
export function redactedUrl (url: string): string {
  try {
    const parsed = new URL(url)
    parsed.username = ''
    parsed.password = ''
    return parsed.toString()
  } catch {
    return '(unparsable REDIS_URL)'
  }
}

/**
 * The state every replica shares: in Redis with REDIS_URL, else in this process (memory
 * idempotency store; @fastify/rate-limit then counts in memory too).
 */
export function createSharedState (options: SharedStateOptions): SharedState {
  const times = { ttlS: options.idempotencyTtlS, inFlightTtlS: options.inFlightTtlS, maxBytes: options.idempotencyMaxBytes }
  if (options.redisUrl === undefined) {
    const idempotency = createMemoryIdempotencyStore({ ...times, ...(options.idempotencyClock === undefined ? {} : { now: options.idempotencyClock }) })
    return {
      redis: undefined,
      idempotency,
      available: true,
      close: async () => { await idempotency.close() }
    }
  }

  const where = redactedUrl(options.redisUrl)
  // Loaded only with REDIS_URL: ioredis adds about 10 MiB to the resident memory of a gateway that never uses it.
  const ioredis = createRequire(import.meta.url)('ioredis') as typeof import('ioredis')
  const redis = new ioredis.Redis(clientUrl(options.redisUrl), REDIS_CLIENT_OPTIONS)
  const idempotency = createRedisIdempotencyStore(redis, times)
  let available = false
  /** Connected, but a PING went unanswered for the client's command timeout. */
  let hung = false
  let reported = false
  let closing = false

  redis.on('ready', () => {
    available = true
    hung = false
    if (reported) options.log.warn({ redis: where }, 'Shared state available again: limits and idempotency records are shared')
    else options.log.info({ redis: where }, 'Shared state connected')
    reported = true
  })
  function lost (cause: string): void {
    if (closing) return
    // Only the first failure of an outage is logged, not every reconnect attempt.
    if (!available && reported) return
    available = false
    reported = true
    options.log.warn({ redis: where, cause }, 'Shared state unavailable: acting requests are refused until Redis is back')
  }
  redis.on('error', (error: Error) => { lost(error.message) })
  redis.on('close', () => { hung = false; lost('connection closed') })

  // A Redis that keeps the connection but stops answering (stopped, swapping, a slow script)
  // closes nothing: each command just times out. A PING on a timer tells when that starts and ends.
  const heartbeatMs = options.heartbeatMs ?? 1000
  const patienceMs = REDIS_CLIENT_OPTIONS.commandTimeout
  let heartbeat: NodeJS.Timeout | undefined
  function beat (): void {
    heartbeat = setTimeout(() => {
      if (redis.status !== 'ready') { beat(); return }
      redis.ping().then(() => {
        if (!hung || closing) return
        hung = false
        options.log.info({ redis: where }, 'Redis answers again: acting requests run again')
      }, (error: Error) => {
        if (hung || closing || redis.status !== 'ready' || !/timed out/i.test(error.message)) return
        hung = true
        options.log.warn({ redis: where }, `Redis does not answer within ${patienceMs} ms: acting requests are refused with 503 state_unavailable (reads go on with per-replica limits)`)
      }).finally(() => { if (!closing) beat() })
    }, heartbeatMs)
    heartbeat.unref()
  }
  beat()

  return {
    redis,
    idempotency,
    get available () { return available && !hung },
    async close () {
      closing = true
      clearTimeout(heartbeat)
      await idempotency.close()
      redis.disconnect()
    }
  }
}
