import type { FastifyInstance } from 'fastify'
import { problem } from '../errors.js'
import { sendProblem } from '../error-handler.js'

/** The methods a URL may be asked with and is answered 405 for, when it does not take them. */
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE'] as const

/**
 * 405 method_not_allowed with `Allow` (RFC 9110, 15.5.6) for every method `url` does not take,
 * instead of a 404 that would say the URL does not exist. HEAD comes with GET (Fastify's own).
 */
export function answerOtherMethods (fastify: FastifyInstance, url: string, methods: readonly string[]): void {
  const taken = methods.includes('GET') ? [...methods, 'HEAD'] : methods
  fastify.route({
    method: METHODS.filter((method) => !taken.includes(method)),
    url,
    schema: { hide: true },
    handler: async (_request, reply) => await sendProblem(reply, problem('method_not_allowed', `Use ${methods.join(' or ')} on this URL.`, { headers: { allow: methods.join(', ') } }))
  })
}
