import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Config } from '../config.js'
import { problem } from '../errors.js'
import type { Metrics } from '../metrics.js'
import { registerRateLimits, type Limit } from '../state/rate-limit.js'
import { StateUnavailableError, type SharedState } from '../state/shared.js'
import { stateUnavailable } from './idempotency.js'

/**
 * The gateway's two request limits, made once per app so that every route counts against the
 * same per-IP and per-caller windows. `acting`: a request that may change Synapse is refused
 * (503 state_unavailable) while shared limits cannot be counted; a read counts per replica.
 */
export interface RequestLimits {
  /** Per client IP, before any token crypto: every authenticated route calls it first. */
  admitAddress: (request: FastifyRequest, acting: boolean) => Promise<void>
  /** Per caller (`request.caller.sub`), once the token is verified. */
  admitCaller: (request: FastifyRequest, acting: boolean) => Promise<void>
}

/** Any Fastify instance: the app's own (pino logger, TypeBox provider) as well as a plugin's scope. */
type AnyFastify = FastifyInstance<any, any, any, any, any>

export async function createRequestLimits (fastify: AnyFastify, { config, state, metrics }: { config: Config, state: SharedState, metrics: Metrics }): Promise<RequestLimits> {
  const limits = await registerRateLimits(fastify as FastifyInstance, state)
  // Per client IP before any token crypto, so a flood of junk tokens stays cheap to refuse.
  const ipLimit = limits.create({ name: 'ip', max: config.rateLimitPerIpPerMinute, timeWindow: 60_000, keyGenerator: (request) => request.ip })
  const callerLimit = limits.create({ name: 'caller', max: config.rateLimitPerMinute, timeWindow: 60_000, keyGenerator: (request) => request.caller?.sub ?? '' })

  async function enforce (limit: Limit, request: FastifyRequest, who: 'address' | 'caller', acting: boolean): Promise<void> {
    let verdict
    try {
      verdict = await limit(request, acting ? 'refuse' : 'per-replica')
    } catch (error) {
      if (error instanceof StateUnavailableError) throw stateUnavailable()
      throw error
    }
    if (!verdict.allowed) {
      metrics.rateLimited.inc({ limit: who === 'address' ? 'ip' : 'caller' })
      throw problem('rate_limited', `Too many requests from this ${who} (${verdict.max} a minute); retry later.`, { retryAfterS: verdict.retryAfterS })
    }
  }

  return {
    admitAddress: async (request, acting) => { await enforce(ipLimit, request, 'address', acting) },
    admitCaller: async (request, acting) => { await enforce(callerLimit, request, 'caller', acting) }
  }
}
