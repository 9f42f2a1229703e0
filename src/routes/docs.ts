import { readFileSync } from 'node:fs'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { Problem } from '../schemas.js'

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }

export const OPENAPI_INFO = {
  title: 'synapse-admin-gateway',
  version,
  description: 'Matrix Synapse admin actions behind your organisation\'s JWTs. Callers never hold the Synapse admin token; every attempt is audited. Errors are RFC 9457 problem details with a stable `code`.',
  license: { name: 'Apache-2.0', identifier: 'Apache-2.0' }
}

/** Headers that responses carry, documented once and referred to from every response. */
const RESPONSE_HEADERS = {
  'x-request-id': {
    description: 'The request ID: the caller\'s x-request-id when it matches `[A-Za-z0-9._:-]{1,128}`, otherwise a new UUID. Also in problem bodies (`request_id`) and the audit entry.',
    schema: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,128}$' }
  },
  'Retry-After': {
    description: 'Seconds to wait before retrying.',
    schema: { type: 'integer', minimum: 0 }
  },
  'WWW-Authenticate': {
    description: 'RFC 6750 bearer challenge: `Bearer` (no token), `Bearer error="invalid_token", error_description="…"` (the failed check), `Bearer error="insufficient_scope"`.',
    schema: { type: 'string' }
  }
}

type Operation = { operationId?: string, security?: unknown[], responses?: Record<string, { headers?: Record<string, unknown> }> }
type OpenApiDocument = { paths?: Record<string, Record<string, Operation>>, components?: Record<string, unknown> }

const ref = (name: string) => ({ $ref: `#/components/headers/${name}` })

/**
 * What the route schemas cannot say by themselves: every operation has an operationId, a
 * route without a security requirement says `security: []` (no token), and each response
 * documents the headers it carries.
 */
export function completeDocument (document: OpenApiDocument): OpenApiDocument {
  document.components = { ...document.components, headers: RESPONSE_HEADERS }
  for (const [path, operations] of Object.entries(document.paths ?? {})) {
    for (const [method, operation] of Object.entries(operations)) {
      if (operation.operationId === undefined) {
        throw new Error(`OpenAPI: ${method.toUpperCase()} ${path} has no operationId; give its route schema one`)
      }
      operation.security ??= []
      for (const [status, response] of Object.entries(operation.responses ?? {})) {
        const headers: Record<string, unknown> = { 'x-request-id': ref('x-request-id') }
        if (status === '429' || status === '503') headers['Retry-After'] = ref('Retry-After')
        if (status === '401' || status === '403') headers['WWW-Authenticate'] = ref('WWW-Authenticate')
        response.headers = { ...response.headers, ...headers }
      }
    }
  }
  return document
}

/**
 * Where the served document says the API is: PUBLIC_URL when set, else the scheme and host
 * the request came with (through trusted proxies only), else relative to the document.
 */
function serverFor (request: FastifyRequest, publicUrl: string | undefined): { url: string, description: string } {
  if (publicUrl !== undefined) return { url: publicUrl, description: 'This gateway (PUBLIC_URL)' }
  // Only a plain host[:port]: anything else in a Host header is not worth echoing into a document.
  if (/^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/.test(request.host)) {
    return { url: `${request.protocol}://${request.host}`, description: 'This gateway, as the request reached it (set PUBLIC_URL to name it)' }
  }
  return { url: '/', description: 'This gateway' }
}

/**
 * OpenAPI 3.1 generated from the route schemas. It collects routes as they are declared, so
 * it is registered before them; `/openapi.json` and the `/docs` page need no token.
 */
async function openapi (fastify: FastifyInstance, { docsEnabled, publicUrl }: { docsEnabled: boolean, publicUrl?: string | undefined }): Promise<void> {
  fastify.addSchema(Problem)
  await fastify.register(swagger, {
    // Shared schemas appear under components.schemas by their $id.
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => typeof json.$id === 'string' ? json.$id : `def-${i}` },
    transformObject: (documentObject) => completeDocument((documentObject as { openapiObject: OpenApiDocument }).openapiObject) as Record<string, unknown>,
    openapi: {
      openapi: '3.1.0',
      info: OPENAPI_INFO,
      servers: [{ url: 'http://127.0.0.1:8080', description: 'The gateway on its default address (npm run demo); use your deployment\'s URL' }],
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'Your organisation\'s JWT, with a role listed in JOIN_ROLES.' }
        }
      },
      tags: [{ name: 'rooms', description: 'Room membership actions' }, { name: 'health', description: 'Liveness and readiness' }]
    }
  })
  if (!docsEnabled) return
  // The generated document (and openapi.yaml) keeps the demo's address; what is served names this gateway.
  const served = (document: object, request: FastifyRequest) => ({ ...document, servers: [serverFor(request, publicUrl)] })
  fastify.get('/openapi.json', { schema: { hide: true } }, async (request) => served(fastify.swagger(), request))
  await fastify.register(swaggerUi, {
    routePrefix: '/docs',
    uiConfig: { docExpansion: 'list', deepLinking: false },
    transformSpecificationClone: false,
    transformSpecification: (document, request) => served(document, request)
  })
}

export default fp(openapi, { name: 'openapi', fastify: '5.x' })
