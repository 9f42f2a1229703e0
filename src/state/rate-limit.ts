import { hash } from 'node:crypto'
import rateLimit, { type RateLimitPluginOptions } from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { MemoryLimitStore } from './memory-limit-store.js'
import type { SharedState } from './shared.js'
import { StateUnavailableError, unavailable } from './unavailable.js'

/**
 * Registration options of @fastify/rate-limit for limits that every replica shares: counted in
 * Redis with REDIS_URL (its Lua INCR + PEXPIRE script, keys under `sag:rl:`), in memory without
 * (MemoryLimitStore: the plugin's own memory store miscounts concurrent requests).
 * `skipOnError: false`: when Redis fails, the limiter rejects instead of letting the request
 * through uncounted (its `true` would silently lift every limit during an outage).
 * These are plugin options: `redis` given to `createRateLimit()` instead would be ignored.
 */
export function sharedLimitOptions (state: SharedState): RateLimitPluginOptions {
  if (state.redis === undefined) return { global: false, store: MemoryLimitStore }
  return { global: false, redis: state.redis, nameSpace: 'sag:rl:', skipOnError: false }
}

export interface LimitOptions {
  /** Tells limits apart in the store (`ip`, `caller`): two limits may count the same key. */
  name: string
  max: number
  timeWindow: number
  /** What is counted (an address, a `sub`); stored as its SHA-256 only. */
  keyGenerator: (request: FastifyRequest) => string
}

export interface LimitVerdict {
  allowed: boolean
  max: number
  remaining: number
  /** Seconds until the window resets (at least 1), for Retry-After. */
  retryAfterS: number
  /** `shared` when counted in Redis; `replica` when counted by this process alone. */
  counted: 'shared' | 'replica'
}

/**
 * What a limit does when Redis cannot count the request: `refuse` rejects with
 * StateUnavailableError (acting requests: answer 503 state_unavailable), `per-replica` counts it
 * in this process instead (reads go on, each replica allowing `max`).
 */
export type WhenUnavailable = 'refuse' | 'per-replica'

export type Limit = (request: FastifyRequest, whenUnavailable: WhenUnavailable) => Promise<LimitVerdict>

export interface RateLimits {
  create: (options: LimitOptions) => Limit
}

/** Hashed store keys kept per limit (a few hundred KiB at most); all are forgotten when full. */
const STORE_KEYS_REMEMBERED = 4096

type CreateRateLimit = FastifyInstance['createRateLimit']
type PluginResult = Awaited<ReturnType<ReturnType<CreateRateLimit>>>

/** Each registration in its own encapsulated context, so a shared and a per-replica store can coexist. */
async function registerPlugin (fastify: FastifyInstance, options: RateLimitPluginOptions): Promise<CreateRateLimit> {
  let create: CreateRateLimit | undefined
  await fastify.register(async (scope) => {
    await scope.register(rateLimit, options)
    create = scope.createRateLimit
  })
  return create as CreateRateLimit
}

type CountedResult = Extract<PluginResult, { isAllowed: false }>

function verdict (result: PluginResult, counted: LimitVerdict['counted']): LimitVerdict {
  // `isAllowed: true` only comes from an allow list, which these limits never set.
  const { isExceeded, max, remaining, ttlInSeconds } = result as CountedResult
  return { allowed: !isExceeded, max, remaining, retryAfterS: Math.max(1, ttlInSeconds), counted }
}

/**
 * Registers @fastify/rate-limit (shared store, plus an in-memory fallback when REDIS_URL is set)
 * inside `fastify` and returns a factory of limits. Register @fastify/rate-limit nowhere else
 * above this context: its `createRateLimit` decorator would shadow these.
 */
export async function registerRateLimits (fastify: FastifyInstance, state: SharedState): Promise<RateLimits> {
  if (fastify.hasDecorator('createRateLimit')) {
    throw new Error('@fastify/rate-limit is already registered in this context; let registerRateLimits register it')
  }
  const primary = await registerPlugin(fastify, sharedLimitOptions(state))
  const fallback = state.redis === undefined ? undefined : await registerPlugin(fastify, { global: false, store: MemoryLimitStore })

  return {
    create (options) {
      // The same few addresses and callers come back all the time: their store keys are hashed once.
      const storeKeys = new Map<string, string>()
      const pluginOptions = {
        max: options.max,
        timeWindow: options.timeWindow,
        keyGenerator: (request: FastifyRequest) => {
          const counted = options.keyGenerator(request)
          let storeKey = storeKeys.get(counted)
          if (storeKey === undefined) {
            storeKey = `${options.name}:${hash('sha256', counted, 'hex')}`
            if (storeKeys.size >= STORE_KEYS_REMEMBERED) storeKeys.clear()
            storeKeys.set(counted, storeKey)
          }
          return storeKey
        }
      }
      const counted = state.redis === undefined ? 'replica' : 'shared'
      const primaryLimit = primary(pluginOptions)
      const fallbackLimit = fallback?.(pluginOptions)
      return async (request, whenUnavailable) => {
        if (fallbackLimit === undefined) return verdict(await primaryLimit(request), counted)
        try {
          if (!state.available) throw new StateUnavailableError('not connected')
          return verdict(await primaryLimit(request), counted)
        } catch (error) {
          if (whenUnavailable === 'refuse') throw unavailable(error)
          return verdict(await fallbackLimit(request), 'replica')
        }
      }
    }
  }
}
