import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { LogController, type FastifyRequest } from 'fastify'
import type { DestinationStream } from 'pino'
import type { Dispatcher } from 'undici'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { CATALOG } from './actions/catalog.js'
import { createRequestLimits } from './actions/limits.js'
import { actionRoutes, actionOfPath } from './actions/routes.js'
import { createApprovalStore } from './approvals/index.js'
import { resultRecord } from './audit/fields.js'
import { createAuditLog } from './audit/log.js'
import authPlugin from './auth/plugin.js'
import type { JwksTiming } from './auth/jwks.js'
import type { Config } from './config.js'
import { problem } from './errors.js'
import errorHandler, { answerClientError, sendProblem } from './error-handler.js'
import { createLogger } from './logging.js'
import { createMetrics, metricsRoute, type Metrics } from './metrics.js'
import { clientRequestIdPlugin, requestIdFor } from './request-id.js'
import { startupSummary } from './startup-summary.js'
import openapi from './routes/docs.js'
import { healthRoutes } from './routes/health.js'
import { meRoute } from './routes/me.js'
import { sharedSchemaCompilers } from './schema-compilers.js'
import { AJV_OPTIONS } from './schemas.js'
import { implicitPolicy, loadPolicyFile, type Policy } from './policy/index.js'
import type { TrackedSynapse } from './synapse/calls.js'
import { createSynapseClient } from './synapse/client.js'
import { createRoomDirectory, type RoomDirectoryOptions } from './synapse/rooms.js'
import { SERVER_VERSION_PATH, createVersionWatch, releaseOf, serverVersionOf } from './synapse/version.js'
import { createSharedState } from './state/shared.js'

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics
    /** SIGHUP: reopen the audit file (logrotate) and read the policy file again. */
    reload: () => void
    /** Shutdown deadline: `unknown` results for attempts still open; returns how many. */
    abandonOpenAttempts: () => number
    /** Writes the audit's `stop` record and closes the file (onClose does it too; once is enough). */
    stopAudit: () => void
  }
}

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }

/** A fingerprint of the configuration without its secrets, for the audit's start record. */
function configFingerprint (config: Config): string {
  const { synapse, jwt, auditChainKey: _key, ...rest } = config
  const { adminToken: _token, ...synapseRest } = synapse
  const { verification, ...jwtRest } = jwt
  const shown = { ...rest, synapse: synapseRest, jwt: { ...jwtRest, kind: verification.kind, algorithms: verification.algorithms }, trustProxy: String(rest.trustProxy), redisUrl: rest.redisUrl === undefined ? undefined : 'set' }
  return createHash('sha256').update(JSON.stringify(shown)).digest('hex').slice(0, 16)
}

export interface BuildOptions {
  /** Where the service log goes (standard output when unset); tests capture it here. */
  logDestination?: DestinationStream
  /** Where Synapse requests go; a keep-alive Pool to SYNAPSE_URL when unset. */
  synapseDispatcher?: Dispatcher
  /** JWKS refetch cooldown and key lifetime (defaults 5 s and 10 min), and the clock they run on; tests shorten or move them. */
  jwksTiming?: JwksTiming
  /** Circuit breaker for Synapse calls (defaults: open after 5 failures, for 5 s). */
  synapseBreaker?: { failureThreshold?: number, openMs?: number, now?: () => number }
  /** How long and how many room facts the policy's decisions may reuse (defaults 60 s, 10 000 rooms); tests shorten them. */
  roomFacts?: RoomDirectoryOptions
  /** When a stalled client gets 408: whole request 10 s, headers 5 s, checked every second; tests shorten them. */
  clientTimeouts?: { requestMs?: number, headersMs?: number, checkEveryMs?: number }
  /** The clock approvals expire by (ms since the epoch; default Date.now) and how often the expiry sweep runs (default 60 000 ms); tests move them. */
  approvals?: { now?: () => number, sweepMs?: number }
  /** The clock idempotency records kept in memory expire by (ms; default performance.now); tests move it. */
  idempotencyClock?: () => number
  /**
   * Ask Synapse its version once listening, without waiting for the answer (src/server.ts does);
   * otherwise /readyz and the first action that needs it read it.
   */
  readSynapseVersionAtStart?: boolean
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
    requestTimeout: options.clientTimeouts?.requestMs ?? 10_000,
    keepAliveTimeout: 5_000,
    http: { headersTimeout: options.clientTimeouts?.headersMs ?? 5_000, connectionsCheckingInterval: options.clientTimeouts?.checkEveryMs ?? 1_000 },
    // Our own 503 (problem+json, audited) for requests that arrive while shutting down.
    return503OnClosing: false,
    clientErrorHandler: answerClientError,
    ajv: { customOptions: AJV_OPTIONS },
    schemaController: { compilersFactory: sharedSchemaCompilers },
    frameworkErrors: (error, request, reply) => {
      // URLs too broken to route still count as attempts when they aim at an action route, named by the route when one matches.
      if (request.url.startsWith('/v1/rooms/') || request.url.startsWith('/v1/users/')) {
        const action = actionOfPath(CATALOG, request.method, request.url) ?? 'unknown'
        reply.raw.once('finish', () => { auditUnroutable(request, action, reply.statusCode, reply.elapsedTime) })
      }
      request.log.debug({ code: error.code }, 'malformed request')
      reply.header('x-request-id', request.id)
      sendProblem(reply, problem('invalid_request', 'The request URL or headers are malformed (check the percent-encoding).'))
    }
  }).withTypeProvider<TypeBoxTypeProvider>()

  // JSON only: without the text/plain parser a JSON body sent as text is a clear 415.
  fastify.removeAllContentTypeParsers()
  const parseJson = fastify.getDefaultJsonParser('error', 'error')
  // A DELETE's body is optional: an empty one with a JSON content type is no body, not an error.
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (request.method === 'DELETE' && body === '') {
      done(null, null)
      return
    }
    parseJson(request, body as string, done)
  })

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
  let auditUnroutable = (_request: FastifyRequest, _action: string, _status: number, _durationMs: number): void => {}
  let ready = false
  const circuitStates = { closed: 0, open: 1, half_open: 2 } as const
  const metrics = createMetrics({
    synapseInFlight: () => synapse.inFlight,
    synapseQueued: () => synapse.queued,
    circuitState: () => circuitStates[synapse.circuit],
    callCircuitStates: () => synapse.circuits,
    ready: () => ready
  })
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
    queueTimeoutMs: config.synapse.queueTimeoutMs,
    breaker: options.synapseBreaker,
    dispatcher: options.synapseDispatcher,
    onReachabilityChange: (reachable) => {
      if (reachable) logger.info({ synapse_url: config.synapse.url }, 'Synapse can be reached again')
      else logger.warn({ synapse_url: config.synapse.url }, 'Synapse cannot be reached: check SYNAPSE_URL and that Synapse is running')
    }
  })
  const rooms = createRoomDirectory(options.roomFacts)
  // Synapse's version: logged once known (and when it changes); read at start without waiting for it.
  const versions = createVersionWatch({
    onChange: (version, previous) => {
      const readable = releaseOf(version) !== undefined
      const fields = { synapse_version: version, ...(previous === undefined ? {} : { previous_version: previous }), synapse_url: config.synapse.url }
      if (readable) logger.info(fields, previous === undefined ? `Synapse version ${version}` : `Synapse version changed from ${previous} to ${version}`)
      else logger.warn(fields, `Synapse reports version "${version}", which is not a release number: actions that need a newer Synapse are not refused for it`)
    }
  })
  if (options.readSynapseVersionAtStart === true) {
    fastify.addHook('onListen', (done) => {
      synapse.probe(SERVER_VERSION_PATH, Math.min(config.synapse.timeoutMs, 5000))
        .then((response) => { versions.note(serverVersionOf(response)) })
        .catch((error: unknown) => { logger.info({ err: { message: (error as Error).message } }, 'Synapse\'s version could not be read at start; /readyz and the actions that need it read it again') })
      done()
    })
  }
  const state = createSharedState({
    redisUrl: config.redisUrl,
    idempotencyTtlS: config.idempotencyTtlS,
    idempotencyMaxBytes: config.idempotencyMaxBytes,
    ...(options.idempotencyClock === undefined ? {} : { idempotencyClock: options.idempotencyClock }),
    // A replica that died mid-request must not hold the key for ever: the request's whole budget (a deactivation's, the longest) and a margin.
    inFlightTtlS: Math.ceil((Math.max(config.synapse.timeoutMs, config.synapse.deactivateTimeoutMs) + config.synapse.queueTimeoutMs) / 1000) + 30,
    log: logger
  })
  const approvals = createApprovalStore(state.redis, { ...config.approvals, ...(options.approvals?.now === undefined ? {} : { now: options.approvals.now }) })
  const audit = createAuditLog({ file: config.auditLogFile, chainKey: config.auditChainKey, checkpoint: config.auditCheckpoint, log: logger, onWriteFailure: () => { metrics.auditWriteFailures.inc() } })
  const fingerprint = configFingerprint(config)
  audit.start({ version, config_fingerprint: fingerprint, pid: process.pid })

  // Without POLICY_FILE: version 1's single rule. A bad file stops the start (PolicyError).
  const loadPolicy = (): Policy => config.policyFile === undefined
    ? implicitPolicy(config.joinRoles)
    : loadPolicyFile(config.policyFile, { onEvaluationError: conditionErrorLogger(logger) })
  let policy = loadPolicy()
  // One line that says everything a reload did, so logrotate's operator sees the audit file too.
  fastify.decorate('reload', () => {
    audit.reopen()
    const auditFile = config.auditLogFile ?? null
    const reopened = auditFile === null
      ? 'audit on standard output (nothing to reopen)'
      : audit.available ? `audit file ${auditFile} reopened` : `audit file ${auditFile} could not be reopened (see the error above)`
    if (config.policyFile === undefined) {
      logger.info({ audit_file: auditFile }, `reloaded: no POLICY_FILE to read; ${reopened}`)
      return
    }
    try {
      policy = loadPolicy()
      logger.info({ policy: policy.source, rules: policy.ruleCount, audit_file: auditFile }, `reloaded: policy ${policy.source} (${policy.ruleCount} ${policy.ruleCount === 1 ? 'rule' : 'rules'}); ${reopened}`)
    } catch (error) {
      logger.error({ err: { message: (error as Error).message }, audit_file: auditFile }, `the new policy file is not valid: the previous policy stays in force; ${reopened}`)
    }
  })
  fastify.decorate('abandonOpenAttempts', () => audit.abandonOpen({ outcome: 'unknown', code: 'shutting_down', detail: 'the gateway shut down before the attempt ended' }))
  fastify.decorate('stopAudit', () => { audit.stop({ version, config_fingerprint: fingerprint, pid: process.pid }) })

  let adminUserId: string | undefined
  const adminAccount = async (tracked: TrackedSynapse): Promise<string> => {
    if (adminUserId !== undefined) return adminUserId
    const response = await tracked.whoami()
    const userId = (response.json as { user_id?: unknown } | undefined)?.user_id
    if (response.status !== 200 || typeof userId !== 'string') {
      throw problem('upstream_error', 'Synapse did not say which account the admin token belongs to (whoami).')
    }
    adminUserId = userId
    return userId
  }

  // Refused before routing: the route the path names, and the fields of any result record.
  auditUnroutable = (request, action, status, durationMs) => {
    audit.result(request.id, resultRecord({
      action,
      outcome: 'invalid',
      status,
      code: 'invalid_request',
      actor: null,
      origin: { ip: request.ip, userAgent: request.headers['user-agent'] },
      fields: { target: { room: null, user_id: null }, detail: `${request.method} with a malformed URL` },
      durationMs
    }))
  }
  fastify.addHook('onClose', async () => {
    await approvals.close()
    await state.close()
    await synapse.close()
    fastify.stopAudit()
  })

  for (const warning of config.warnings) logger.warn(warning)
  logger.info({ summary: startupSummary(config) }, 'starting')

  await fastify.register(errorHandler)
  await fastify.register(clientRequestIdPlugin)
  await fastify.register(openapi, { docsEnabled: config.docsEnabled, publicUrl: config.publicUrl })
  await fastify.register(authPlugin, { jwt: config.jwt, jwksTiming: options.jwksTiming, onJwksFetch: (result: 'ok' | 'failed') => { metrics.jwksFetches.inc({ result }) } })
  await fastify.register(healthRoutes, { synapse, versions, auditAvailable: () => audit.available, onReadiness: (now) => { ready = now } })
  // One per-IP and one per-caller window for every authenticated route (approvals included).
  const limits = await createRequestLimits(fastify, { config, state, metrics })
  await fastify.register(meRoute, { policy: () => policy, limits })
  await fastify.register(actionRoutes, { config, synapse, rooms, audit, state, metrics, limits, policy: () => policy, actions: CATALOG, adminUserId: adminAccount, versions, approvals, approvalSweepMs: options.approvals?.sweepMs })
  if (config.metricsEnabled && config.metricsPort === undefined) fastify.route(metricsRoute(metrics.registry))

  return fastify
}

function conditionErrorLogger (logger: { warn: (obj: object, msg: string) => void }) {
  const reported = new Set<string>()
  return (rule: string, error: Error, effect: 'allow' | 'deny') => {
    if (reported.has(rule)) return
    reported.add(rule)
    const consequence = effect === 'deny' ? 'the deny rule matches (fails closed)' : 'the rule does not match'
    logger.warn({ rule, effect, err: { message: error.message.slice(0, 300) } }, `a policy condition failed to evaluate: ${consequence} (logged once per rule)`)
  }
}

export type App = Awaited<ReturnType<typeof buildApp>>
