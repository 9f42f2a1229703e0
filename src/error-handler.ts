import { randomUUID } from 'node:crypto'
import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import type { FastifyBaseLogger, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { DETAILS, GatewayError, PROBLEMS, problem, problemBody, type ProblemCode } from './errors.js'
import { INVALID_KEY_DETAIL } from './actions/idempotency.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The problem this request was answered with, for the audit entry. */
    gatewayError: GatewayError | undefined
  }
}

type ForeignError = FastifyError & { name?: string }

/** The fields a body schema takes (an optional body is a union with null). */
function bodyFields (schema: unknown): string[] {
  const candidates = [schema, ...((schema as { anyOf?: unknown[] } | undefined)?.anyOf ?? [])]
  const fields = candidates.flatMap((candidate) => Object.keys((candidate as { properties?: object } | undefined)?.properties ?? {}))
  return [...new Set(fields)]
}

/**
 * Which part and field failed validation decides the code: a `:userId` path parameter or a body
 * `user_id` is invalid_user_id, another path parameter invalid_room, the rest invalid_body.
 * `body`: the route's body schema, to name the fields it takes.
 */
function fromValidation (error: ForeignError, body?: unknown): GatewayError {
  const first = error.validation?.[0]
  if (error.validationContext === 'params') {
    if (first?.instancePath === '/userId') return problem('invalid_user_id', DETAILS.invalid_user_id)
    return problem('invalid_room', DETAILS.invalid_room)
  }
  // The only header a route schema declares.
  if (error.validationContext === 'headers') return problem('invalid_request', INVALID_KEY_DETAIL)
  if (error.validationContext === 'querystring') {
    return problem('invalid_request', 'The only query parameter is dry_run=true or dry_run=false.')
  }
  if (first?.instancePath === '/reason') {
    return problem('invalid_body', 'reason must be text of at most 512 characters, without control characters.')
  }
  if (first?.instancePath === '/user_id' && first.keyword === 'format') {
    return problem('invalid_user_id', DETAILS.invalid_user_id)
  }
  if (first?.keyword === 'additionalProperties') {
    const field = String((first.params as { additionalProperty?: unknown }).additionalProperty).slice(0, 64)
    const known = bodyFields(body)
    return problem('invalid_body', `Unknown field "${field}"${known.length === 0 ? '' : `: the body takes only ${known.join(' and ')}`}.`)
  }
  return problem('invalid_body', DETAILS.invalid_body)
}

/** Turns anything thrown inside the app, Fastify's and plugins' errors included, into our problem. */
export function toGatewayError (error: ForeignError, bodySchema?: unknown): GatewayError {
  if (error instanceof GatewayError) return error
  if (error.validation !== undefined) return fromValidation(error, bodySchema)
  const code = error.code ?? ''
  // app.authenticate names the failed check itself; a verifier error reaching here is still a 401.
  if (code.startsWith('FST_JWT_') || code.startsWith('FAST_JWT_') || error.name === 'TokenError') {
    return problem('invalid_token', 'The token is not acceptable.', { headers: { 'www-authenticate': 'Bearer error="invalid_token"' } })
  }
  switch (code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_TYPE':
      return problem('unsupported_media_type', DETAILS.unsupported_media_type)
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return problem('payload_too_large', 'The body is larger than this API accepts (4 KiB).')
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return problem('invalid_body', 'The body is empty; send {"user_id": "@alice:example.com"}.')
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return problem('invalid_request', 'The Content-Length header does not match the body.')
  }
  if (error.statusCode === 400 && (error.name === 'SyntaxError' || code === 'FST_ERR_CTP_INVALID_JSON_BODY')) {
    return problem('invalid_body', 'The body is not valid JSON.')
  }
  if (error.statusCode === 413) return problem('payload_too_large', 'The request is larger than this API accepts.')
  if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
    return problem('invalid_request', 'The request is malformed.')
  }
  return problem('internal_error', 'An unexpected error occurred; the request ID helps the operator find it in the logs.')
}

/** The problems the operator must see in the service log: bugs, and a rejected admin token. */
export function logProblem (log: FastifyBaseLogger, error: unknown, gatewayError: GatewayError): void {
  if (gatewayError.problem === 'internal_error') {
    log.error({ err: error }, 'unexpected error')
  } else if (gatewayError.problem === 'upstream_auth_failed') {
    log.error('Synapse rejected the admin token: set SYNAPSE_ADMIN_TOKEN to a valid server admin token')
  }
}

export function sendProblem (reply: FastifyReply, error: GatewayError): FastifyReply {
  reply.request.gatewayError = error
  if (error.headers !== undefined) reply.headers(error.headers)
  if (error.retryAfterS !== undefined) reply.header('retry-after', String(error.retryAfterS))
  return reply
    .code(error.statusCode as number)
    .type('application/problem+json')
    .send(problemBody(error, reply.request.id))
}

const CLIENT_ERRORS: Record<string, { code: ProblemCode, detail: string }> = {
  HPE_HEADER_OVERFLOW: { code: 'headers_too_large', detail: 'The request headers are too large.' },
  ERR_HTTP_REQUEST_TIMEOUT: { code: 'request_timeout', detail: 'The request was not received in time.' }
}

/** Requests Node's HTTP parser refuses before Fastify sees them still get a problem+json. */
export function answerClientError (error: Error & { code?: string }, socket: Duplex): void {
  if (!socket.writable) {
    socket.destroy()
    return
  }
  const { code, detail } = CLIENT_ERRORS[error.code ?? ''] ?? { code: 'invalid_request' as const, detail: 'The request is not valid HTTP.' }
  const requestId = randomUUID()
  const body = JSON.stringify(problemBody(problem(code, detail), requestId))
  socket.end(`HTTP/1.1 ${PROBLEMS[code].status} ${STATUS_CODES[PROBLEMS[code].status] ?? ''}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nX-Request-Id: ${requestId}\r\nConnection: close\r\n\r\n${body}`)
}

async function errorHandler (fastify: FastifyInstance): Promise<void> {
  fastify.decorateRequest('gatewayError', undefined)
  fastify.setErrorHandler(function handle (error: ForeignError, request: FastifyRequest, reply: FastifyReply) {
    const gatewayError = toGatewayError(error, request.routeOptions.schema?.body)
    logProblem(request.log, error, gatewayError)
    return sendProblem(reply, gatewayError)
  })

  fastify.setNotFoundHandler(function notFound (request, reply) {
    const path = request.url.split('?', 1)[0] ?? ''
    const hint = /^\/v1\/rooms\/?(\/members)?$/.test(path)
      ? ' The room is missing: an alias must be sent with # encoded as %23, e.g. /v1/rooms/%23help:example.com/members.'
      : ''
    return sendProblem(reply, problem('not_found', `No route ${request.method} ${path.slice(0, 200)}.${hint}`))
  })
}

export default fp(errorHandler, { name: 'error-handler', fastify: '5.x' })
