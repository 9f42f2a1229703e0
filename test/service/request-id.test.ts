/**
 * x-request-id: a plain id of up to 128 characters ([A-Za-z0-9._:-]) is kept; anything else is
 * replaced by a UUID and the caller's text is kept as `clientRequestId` for the audit entry.
 */
import Fastify from 'fastify'
import t from 'tap'
import { clientRequestIdPlugin, requestIdFor } from '../../src/request-id.js'

t.test('a sent id that does not fit is replaced, and kept cleaned as clientRequestId', async (t) => {
  const app = Fastify({ genReqId: requestIdFor })
  await app.register(clientRequestIdPlugin)
  app.get('/', async (request) => ({ id: request.id, client: request.clientRequestId ?? null }))
  t.after(async () => { await app.close() })
  const send = async (id?: string) => (await app.inject({ url: '/', headers: id === undefined ? {} : { 'x-request-id': id } })).json()

  t.same(await send('ticket-4711'), { id: 'ticket-4711', client: null }, 'a plain id is the request id')
  t.same(await send('a'.repeat(128)), { id: 'a'.repeat(128), client: null }, '128 characters fit')
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
  for (const ticket of ['JIRA/HELP-42', 'ticket #4711', 'Case 00012345 (VIP)']) {
    const answer = await send(ticket)
    t.match(answer.id, uuid, `${ticket}: replaced`)
    t.equal(answer.client, ticket, `${ticket}: kept as clientRequestId`)
  }
  const long = await send(`#${'x'.repeat(300)}`)
  t.equal(long.client.length, 128, 'cut to 128 characters')
  const withControls = await send('ticket\u0007 #1\u007f')
  t.equal(withControls.client, 'ticket #1', 'control characters removed')
  const none = await send()
  t.match(none.id, uuid, 'nothing sent: a new UUID')
  t.equal(none.client, null, 'nothing sent: no clientRequestId')
  t.equal((await send('\u0007\u0007')).client, null, 'only control characters: nothing to keep')
})
