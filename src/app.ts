import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { LogController } from 'fastify'
import type { DestinationStream } from 'pino'
import type { Dispatcher } from 'undici'
import { createAuditLog } from './audit.js'
import authPlugin from './auth/plugin.js'
import type { JwksTiming } from './auth/jwks.js'
import type { Config } from './config.js'
import { problem } from './errors.js'
import errorHandler, { sendProblem } from './error-handler.js'
import { createLogger } from './logging.js'
import { requestIdFor } from './request-id.js'
import { healthRoutes } from './routes/health.js'
import { roomRoutes } from './routes/rooms.js'
import { MATRIX_FORMATS } from './schemas.js'
import { createSynapseClient } from './synapse/client.js'

export interface BuildOptions {
  /** Where the service log goes (standard output when unset); tests capture it here. */
  logDestination?: DestinationStream
  /** Where Synapse requests go; a keep-alive Pool to SYNAPSE_URL when unset. */
  synapseDispatcher?: Dispatcher
  /** JWKS refetch cooldown and key lifetime (defaults 5 s and 10 min); tests shorten them. */
  jwksTiming?: JwksTiming
}

/** Builds the gateway; never listens (src/server.ts does). */
export async function buildApp (config: Config, options: BuildOptions = {}) {
  const logger = createLogger(config.logLevel, options.logDestination)
  const fastify = Fastify({
    loggerInstance: logger,
    genReqId: requestIdFor,
    // Fastify's two lines per request are replaced by the one access line below.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'request_id' }),
    // Aliases reach 255 bytes, each of which may be percent-encoded.
    routerOptions: { maxParamLength: 1024 },
    bodyLimit: 4096,
    trustProxy: false,
    ajv: {
      customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false, formats: MATRIX_FORMATS }
    },
    frameworkErrors: (error, request, reply) => {
      request.log.debug({ code: error.code }, 'malformed request')
      sendProblem(reply, problem('invalid_request', 'The request URL or headers are malformed (check the percent-encoding).'))
    }
  }).withTypeProvider<TypeBoxTypeProvider>()

  // JSON only: without the text/plain parser a JSON body sent as text is a clear 415.
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, fastify.getDefaultJsonParser('error', 'error'))

  fastify.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id)
  })
  // Once closing, answers that are still in flight end their keep-alive connection, so the
  // server can stop as soon as they are done.
  let closing = false
  fastify.addHook('preClose', async () => { closing = true })
  fastify.addHook('onSend', async (_request, reply, payload) => {
    if (closing) reply.header('connection', 'close')
    return payload
  })
  fastify.addHook('onResponse', async (request, reply) => {
    // The one access line per request; the query string is left out (it may carry tokens).
    request.log.info({
      method: request.method,
      path: request.url.split('?', 1)[0]?.slice(0, 512),
      status: reply.statusCode,
      duration_ms: Math.round(reply.elapsedTime * 10) / 10
    }, 'request')
  })

  const synapse = createSynapseClient({
    url: config.synapse.url,
    adminToken: config.synapse.adminToken,
    timeoutMs: config.synapse.timeoutMs,
    dispatcher: options.synapseDispatcher
  })
  const audit = createAuditLog(config.auditLogFile, logger)
  fastify.addHook('onClose', async () => {
    await synapse.close()
    audit.close()
  })

  await fastify.register(errorHandler)
  await fastify.register(authPlugin, { config, jwksTiming: options.jwksTiming })
  await fastify.register(healthRoutes, { synapse })
  await fastify.register(roomRoutes, { config, synapse, audit })
  fastify.route({
    method: ['GET', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
    url: '/v1/rooms/:roomIdOrAlias/members',
    handler: async (_request, reply) =>
      await sendProblem(reply, problem('method_not_allowed', 'Use POST to join a user to a room.', { headers: { allow: 'POST' } }))
  })

  return fastify
}

export type App = Awaited<ReturnType<typeof buildApp>>
