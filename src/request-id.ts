import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/** A caller's x-request-id is kept when it is short and plain; anything else is replaced. */
export const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/
// eslint-disable-next-line no-control-regex -- removing them is the point
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * The x-request-id the caller sent when it did not fit the accepted form (a ticket number
     * with `/`, `#` or spaces), for the audit entry: control characters removed, cut to 128.
     */
    clientRequestId: string | undefined
  }
}

export function requestIdFor (request: IncomingMessage): string {
  const sent = request.headers['x-request-id']
  return typeof sent === 'string' && SANE_REQUEST_ID.test(sent) ? sent : randomUUID()
}

/** The caller's own id when requestIdFor replaced it; undefined when it was kept or not sent. */
export function clientRequestIdFor (request: IncomingMessage): string | undefined {
  const sent = request.headers['x-request-id']
  if (typeof sent !== 'string' || SANE_REQUEST_ID.test(sent)) return undefined
  const cleaned = sent.replace(CONTROL_CHARACTERS, '').trim().slice(0, 128)
  return cleaned === '' ? undefined : cleaned
}

/** Decorates every request with `clientRequestId` (register it at the root, before the routes). */
async function clientRequestIds (fastify: FastifyInstance): Promise<void> {
  fastify.decorateRequest('clientRequestId', undefined)
  fastify.addHook('onRequest', (request, _reply, done) => {
    request.clientRequestId = clientRequestIdFor(request.raw)
    done()
  })
}

export const clientRequestIdPlugin = fp(clientRequestIds, { name: 'client-request-id', fastify: '5.x' })
