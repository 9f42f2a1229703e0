import { readFileSync } from 'node:fs'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Problem } from '../schemas.js'

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }

export const OPENAPI_INFO = {
  title: 'synapse-admin-gateway',
  version,
  description: 'Matrix Synapse admin actions behind your organisation\'s JWTs. Callers never hold the Synapse admin token; every attempt is audited. Errors are RFC 9457 problem details with a stable `code`.'
}

/**
 * OpenAPI 3.1 generated from the route schemas. It collects routes as they are declared, so
 * it is registered before them; `/openapi.json` and the `/docs` page need no token.
 */
async function openapi (fastify: FastifyInstance, { docsEnabled }: { docsEnabled: boolean }): Promise<void> {
  fastify.addSchema(Problem)
  await fastify.register(swagger, {
    // Shared schemas appear under components.schemas by their $id.
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => typeof json.$id === 'string' ? json.$id : `def-${i}` },
    openapi: {
      openapi: '3.1.0',
      info: OPENAPI_INFO,
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'Your organisation\'s JWT, with a role listed in JOIN_ROLES.' }
        }
      },
      tags: [{ name: 'rooms', description: 'Room membership actions' }, { name: 'health', description: 'Liveness and readiness' }]
    }
  })
  if (!docsEnabled) return
  fastify.get('/openapi.json', { schema: { hide: true } }, async () => fastify.swagger())
  await fastify.register(swaggerUi, { routePrefix: '/docs', uiConfig: { docExpansion: 'list', deepLinking: false } })
}

export default fp(openapi, { name: 'openapi', fastify: '5.x' })
