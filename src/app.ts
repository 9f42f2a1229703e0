import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { LogController } from 'fastify'
import type { DestinationStream } from 'pino'
import type { Dispatcher } from 'undici'
import { createAuditLog } from './audit.js'
import authPlugin from './auth/plugin.js'
import type { JwksTiming } from './auth/jwks.js'
import type { Config } from './config.js'
import { problem } from './errors.js'
import errorHandler, { answerClientError, sendProblem } from './error-handler.js'
import { createLogger } from './logging.js'
import { createMetrics, metricsRoute, type Metrics } from './metrics.js'
import { requestIdFor } from './request-id.js'
import openapi from './routes/docs.js'
import { healthRoutes } from './routes/health.js'
import { roomRoutes } from './routes/rooms.js'
import { MATRIX_FORMATS } from './schemas.js'
import { createSynapseClient } from './synapse/client.js'

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics
  }
}

export interface BuildOptions {
  /** Where the service log goes (standard output when unset); tests capture it here. */
  logDestination?: DestinationStream
  /** Where Synapse requests go; a keep-alive Pool to SYNAPSE_URL when unset. */
  synapseDispatcher?: Dispatcher
  /** JWKS refetch cooldown and key lifetime (defaults 5 s and 10 min); tests shorten them. */
  jwksTiming?: JwksTiming
  /** Circuit breaker for Synapse calls (defaults: open after 5 failures, for 5 s). */
  synapseBreaker?: { failureThreshold?: number, openMs?: number }
}

/** Builds the gateway; never listens (src/server.ts does). */
export async function buildApp (config: Config, options: BuildOptions = {}) {
  const logger = createLogger(config.logLevel, { destination: options.logDestination, pretty: config.logPretty })
  const fastify = Fastify({
    loggerInstance: logger,
    genReqId: requestIdFor,
    // Fastify's two lines per request are replaced by the one access line below.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'request_id' }),
    // Aliases reach 255 bytes, each of which may be percent-encoded.
    routerOptions: { maxParamLength: 1024 },
    bodyLimit: 4096,
    trustProxy: config.trustProxy,
    // Slow or stalled clients get 408 within seconds instead of holding a connection.
    requestTimeout: 10_000,
    keepAliveTimeout: 5_000,
    http: { headersTimeout: 5_000, connectionsCheckingInterval: 1_000 },
    // Our own 503 (problem+json, audited) for requests that arrive while shutting down.
    return503OnClosing: false,
    clientErrorHandler: answerClientError,
    ajv: {
      customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false, formats: MATRIX_FORMATS }
    },
    frameworkErrors: (error, request, reply) => {
      request.log.debug({ code: error.code }, 'malformed request')
      reply.header('x-request-id', request.id)
      sendProblem(reply, problem('invalid_request', 'The request URL or headers are malformed (check the percent-encoding).'))
    }
  }).withTypeProvider<TypeBoxTypeProvider>()

  // JSON only: without the text/plain parser a JSON body sent as text is a clear 415.
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, fastify.getDefaultJsonParser('error', 'error'))

  // Hooks on every request are synchronous (callback style): cheaper than async ones.
  // Once closing, new requests are refused and answers still in flight end their keep-alive
  // connection, so the server stops as soon as they are done.
  let closing = false
  fastify.addHook('preClose', async () => { closing = true })
  fastify.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    if (closing) {
      sendProblem(reply, problem('shutting_down', 'The gateway is shutting down; retry on another instance.', { retryAfterS: 5 }))
      return
    }
    done()
  })
  fastify.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close')
    done(null, payload)
  })
  const metrics = createMetrics()
  fastify.decorate('metrics', metrics)
  fastify.addHook('onResponse', (request, reply, done) => {
    metrics.httpRequests.inc({ route: request.routeOptions.url ?? 'unmatched', method: request.method, status: reply.statusCode })
    // The one access line per request; the query string is left out (it may carry tokens).
    request.log.info({
      method: request.method,
      path: request.url.split('?', 1)[0]?.slice(0, 512),
      status: reply.statusCode,
      duration_ms: Math.round(reply.elapsedTime * 10) / 10
    }, 'request')
    done()
  })

  const synapse = createSynapseClient({
    url: config.synapse.url,
    adminToken: config.synapse.adminToken,
    timeoutMs: config.synapse.timeoutMs,
    maxConcurrency: config.synapse.maxConcurrency,
    breaker: options.synapseBreaker,
    dispatcher: options.synapseDispatcher
  })
  const audit = createAuditLog(config.auditLogFile, logger, () => { metrics.auditWriteFailures.inc() })
  fastify.addHook('onClose', async () => {
    await synapse.close()
    audit.close()
  })

  await fastify.register(errorHandler)
  await fastify.register(openapi, { docsEnabled: config.docsEnabled })
  await fastify.register(authPlugin, { config, jwksTiming: options.jwksTiming, onJwksFetch: (result: 'ok' | 'failed') => { metrics.jwksFetches.inc({ result }) } })
  await fastify.register(healthRoutes, { synapse })
  await fastify.register(roomRoutes, { config, synapse, audit, metrics })
  if (config.metricsEnabled && config.metricsPort === undefined) fastify.route(metricsRoute(metrics.registry))
  fastify.route({
    method: ['GET', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
    url: '/v1/rooms/:roomIdOrAlias/members',
    schema: { hide: true },
    handler: async (_request, reply) =>
      await sendProblem(reply, problem('method_not_allowed', 'Use POST to join a user to a room.', { headers: { allow: 'POST' } }))
  })

  return fastify
}

export type App = Awaited<ReturnType<typeof buildApp>>
