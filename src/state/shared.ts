import { createRequire } from 'node:module'
import type { FastifyBaseLogger } from 'fastify'
import type { Redis, RedisOptions } from 'ioredis'
import { createMemoryIdempotencyStore, createRedisIdempotencyStore, type IdempotencyStore } from './idempotency.js'

export { StateUnavailableError } from './unavailable.js'

export interface SharedState {
  /** The ioredis client (for @fastify/rate-limit's `redis` option); undefined without REDIS_URL. */
  readonly redis: Redis | undefined
  readonly idempotency: IdempotencyStore
  /** False while Redis is unreachable; always true without REDIS_URL. */
  readonly available: boolean
  close: () => Promise<void>
}

export interface SharedStateOptions {
  redisUrl: string | undefined
  idempotencyTtlS: number
  inFlightTtlS: number
  log: FastifyBaseLogger
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
  const times = { ttlS: options.idempotencyTtlS, inFlightTtlS: options.inFlightTtlS }
  if (options.redisUrl === undefined) {
    const idempotency = createMemoryIdempotencyStore(times)
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
  let reported = false
  let closing = false

  redis.on('ready', () => {
    available = true
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
  redis.on('close', () => { lost('connection closed') })

  return {
    redis,
    idempotency,
    get available () { return available },
    async close () {
      closing = true
      await idempotency.close()
      redis.disconnect()
    }
  }
}
